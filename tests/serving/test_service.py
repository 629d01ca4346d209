"""The running service: decisions, scores, explanations, metadata, auth, limits and idempotency."""

from __future__ import annotations

import httpx
import pytest

from serving.decision_log import DecisionLog
from serving.schemas import DecideResponse, ExplainResponse, Metadata, ScoreResponse

pytestmark = pytest.mark.slow


def _ids(serving_fixture, count: int) -> list[str]:
    return serving_fixture.snapshot["customer_id"].astype(str).head(count).tolist()


def _post(service, path: str, body, headers, **extra) -> httpx.Response:
    return httpx.post(f"{service.url}{path}", json=body, headers={**headers, **extra}, timeout=60)


def test_health_probes_need_no_key(service):
    for path in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(f"{service.url}{path}").status_code == 200


@pytest.mark.parametrize("path", ["/decide", "/score", "/explain"])
def test_endpoints_need_the_key(service, serving_fixture, path):
    body = {"customers": [{"customer_id": _ids(serving_fixture, 1)[0]}]}
    assert _post(service, path, body, {}).status_code == 401
    assert _post(service, path, body, {"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{service.url}/metadata").status_code == 401
    assert httpx.get(f"{service.url}/docs.json").status_code == 401


def test_decide_answers_known_customers_and_reports_unknown_ones(service, serving_fixture, headers):
    first, second = _ids(serving_fixture, 2)
    no_consent = {"email_consent": False, "sms_consent": False, "push_consent": False}
    body = {
        "customers": [
            {"customer_id": first},
            {"customer_id": "no-such-customer"},
            {"customer_id": second, "context": no_consent},
        ]
    }
    response = _post(service, "/decide", body, headers)
    assert response.status_code == 200, response.text
    answer = DecideResponse.model_validate_json(response.content)
    assert [d.index for d in answer.decisions] == [0, 2]
    assert [d.customer_id for d in answer.decisions] == [first, second]
    assert [(e.index, e.code) for e in answer.errors] == [(1, "unknown_customer")]
    withdrawn = answer.decisions[1]
    assert withdrawn.offer_id == "no_message" and withdrawn.channel is None
    assert {"no_email_consent", "no_sms_consent", "no_push_consent"} <= set(withdrawn.reason_codes)
    assert 0.0 <= withdrawn.churn_risk <= 1.0
    assert answer.model.model_versions["nbo"] == "1"
    assert answer.model.catalog_version
    logged = DecisionLog(serving_fixture.registry_dir / "decisions.sqlite").decision_ids()
    assert {d.decision_id for d in answer.decisions} <= logged


def test_consent_in_context_overrides_the_snapshot(service, serving_fixture, headers):
    ids = _ids(serving_fixture, 200)
    everyone = {"email_consent": True, "sms_consent": True, "push_consent": True}
    nobody = {"email_consent": False, "sms_consent": False, "push_consent": False}
    allowed = _post(service, "/decide", {"customers": [{"customer_id": i, "context": everyone} for i in ids]}, headers)
    refused = _post(service, "/decide", {"customers": [{"customer_id": i, "context": nobody} for i in ids]}, headers)
    messaged = [d for d in DecideResponse.model_validate_json(allowed.content).decisions if d.send_message]
    assert messaged, "with every consent some of 200 customers should get a message"
    assert all(d.channel in ("email", "sms", "push") and d.send_at is not None for d in messaged)
    assert not [d for d in DecideResponse.model_validate_json(refused.content).decisions if d.send_message]


def test_retry_with_the_same_key_returns_the_same_decisions(service, serving_fixture, headers):
    body = {"customers": [{"customer_id": i} for i in _ids(serving_fixture, 3)]}
    keyed_headers = {**headers, "Idempotency-Key": "retry-1"}
    first = DecideResponse.model_validate_json(_post(service, "/decide", body, keyed_headers).content)
    again = DecideResponse.model_validate_json(_post(service, "/decide", body, keyed_headers).content)
    assert [d.decision_id for d in again.decisions] == [d.decision_id for d in first.decisions]
    assert (first.replayed, again.replayed) == (False, True)
    keyed = {**body, "idempotency_key": "retry-2"}
    one = DecideResponse.model_validate_json(_post(service, "/decide", keyed, headers).content)
    two = DecideResponse.model_validate_json(_post(service, "/decide", keyed, headers).content)
    assert [d.decision_id for d in one.decisions] == [d.decision_id for d in two.decisions]
    assert set(d.decision_id for d in one.decisions).isdisjoint(d.decision_id for d in first.decisions)
    other = {"customers": [{"customer_id": "someone-else"}, *body["customers"]]}
    assert _post(service, "/decide", other, headers, **{"Idempotency-Key": "retry-1"}).status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "customers"),
        ({"customers": []}, "customers"),
        ({"customers": [{"customer_id": ""}]}, "customer_id"),
        ({"customers": [{"customer_id": "C1", "email": "a@example.com"}]}, "email"),
        ({"customers": [{"customer_id": "C1", "context": {"sms_consent": "maybe"}}]}, "sms_consent"),
        ({"customers": [{"customer_id": f"C{i}"} for i in range(10_001)]}, "customers"),
    ],
)
def test_malformed_input_is_a_400_naming_the_field(service, headers, body, field):
    response = _post(service, "/decide", body, headers)
    assert response.status_code == 400
    assert field in response.text
    assert "a@example.com" not in response.text


def test_bodies_over_the_limit_get_413(service, headers):
    big = {"customers": [{"customer_id": "x" * 120} for _ in range(20_000)]}
    assert _post(service, "/decide", big, headers).status_code == 413


def test_score_gives_churn_risk_and_uplift_per_offer(service, serving_fixture, headers):
    ids = _ids(serving_fixture, 5)
    response = _post(service, "/score", {"customers": [{"customer_id": i} for i in [*ids, "nobody"]]}, headers)
    answer = ScoreResponse.model_validate_json(response.content)
    assert [s.customer_id for s in answer.scores] == ids
    assert answer.errors[0].index == 5
    assert {"discount_10", "free_shipping", "content_reminder"} <= set(answer.scores[0].uplift)
    assert len({s.churn_risk for s in answer.scores}) > 1


def test_explain_gives_top_k_contributions_with_values(service, serving_fixture, headers):
    ids = _ids(serving_fixture, 3)
    body = {"customers": [{"customer_id": i} for i in ids], "top_k": 4, "offer_id": "discount_10"}
    answer = ExplainResponse.model_validate_json(_post(service, "/explain", body, headers).content)
    first = answer.explanations[0]
    assert len(first.churn) == 4 and len(first.uplift) == 4
    magnitudes = [abs(c.contribution) for c in first.churn]
    assert magnitudes == sorted(magnitudes, reverse=True)
    row = serving_fixture.snapshot.set_index("customer_id").loc[ids[0]]
    numeric = [c for c in first.uplift if isinstance(c.value, float)]
    assert numeric and all(c.value == pytest.approx(float(row[c.feature])) for c in numeric)
    bad = _post(service, "/explain", {**body, "offer_id": "no_such_offer"}, headers)
    assert bad.status_code == 400 and "no_such_offer" in bad.text


def test_metadata_names_versions_snapshot_and_catalog(service, headers):
    answer = Metadata.model_validate_json(httpx.get(f"{service.url}/metadata", headers=headers).content)
    assert answer.model_versions["nbo"] == "1"
    assert answer.snapshot_as_of.isoformat().startswith("2025-09-01")
    assert answer.snapshot_customers == 1000
    assert "discount_10" in answer.offers
