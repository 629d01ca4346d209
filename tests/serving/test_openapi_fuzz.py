"""Schemathesis against the running service's own /docs.json: no 5xx, every answer as documented.

Every operation of the served OpenAPI document gets generated requests, valid ones and invalid
ones (Schemathesis's positive and negative modes, plus its content-type and auth probes), with
the API key; each answer goes through all of Schemathesis's checks (no server error, documented
status code, content type, headers and body schema; invalid input rejected with a 4xx; valid
input accepted) and one of ours: a 400 for a malformed body names the offending field. Hypothesis
runs derandomized, so the same requests are sent on every run.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import PositiveDataAcceptanceConfig

from tests.serving.conftest import API_KEY

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: Errors about the body as a whole (not one field), where an empty `loc` is right.
WHOLE_BODY_ERRORS = {"json_invalid", "model_type", "model_attributes_type"}


@pytest.fixture(scope="module")
def api_schema(service):
    """The OpenAPI document the running service serves (read with the key, as a client would)."""
    schema = schemathesis.openapi.from_url(f"{service.url}/docs.json", headers=AUTH, timeout=30)
    schema.config.generation.update(deterministic=True)
    # A valid /decide body whose Idempotency-Key was already used for other customers gets the
    # documented 422 (as the IETF Idempotency-Key draft prescribes); Hypothesis reuses short keys,
    # so 422 joins the statuses a valid request may get. Undocumented 422s still fail
    # status_code_conformance.
    accepted = schema.config.checks.positive_data_acceptance.expected_statuses
    schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(expected_statuses=[*accepted, "422"])
    return schema


def malformed_body_names_the_field(ctx, response, case) -> bool | None:
    """A 400 with validation details points at the offending field (`loc`) for every problem."""
    if response.status_code != 400:
        return None
    body = response.json()
    assert body.get("error"), f"400 without an error message: {response.text[:300]}"
    for problem in body.get("detail") or []:
        if problem.get("type") not in WHOLE_BODY_ERRORS:
            assert problem.get("loc"), f"400 detail does not name the field: {problem}"
    return True


#: (method, path, generation mode, examples) for every operation of the served document. GETs and
#: /reload take no input (only the bearer token varies, and the real key is always sent), so a few
#: calls cover them; the three POST operations get the bulk, valid and invalid bodies.
OPERATIONS = [
    ("POST", "/decide", GenerationMode.POSITIVE, 100),
    ("POST", "/decide", GenerationMode.NEGATIVE, 60),
    ("POST", "/score", GenerationMode.POSITIVE, 100),
    ("POST", "/score", GenerationMode.NEGATIVE, 60),
    ("POST", "/explain", GenerationMode.POSITIVE, 100),
    ("POST", "/explain", GenerationMode.NEGATIVE, 60),
    ("GET", "/metadata", GenerationMode.POSITIVE, 20),
    ("POST", "/reload", GenerationMode.POSITIVE, 20),
    ("GET", "/healthz", GenerationMode.POSITIVE, 5),
    ("GET", "/livez", GenerationMode.POSITIVE, 5),
    ("GET", "/readyz", GenerationMode.POSITIVE, 5),
    ("GET", "/metrics", GenerationMode.POSITIVE, 3),
]


def with_known_customers(strategy, customer_ids: list[str]):
    """Valid bodies where some generated ids are swapped for customers in the snapshot.

    Random ids are all unknown, so without this the model and the context overrides would only
    ever see empty frames (the year-1 time-zone overflow hid there).
    """

    def swap(drawn):
        case, picks = drawn
        customers = case.body.get("customers") if isinstance(case.body, dict) else None
        for customer, pick in zip(customers or [], picks, strict=False):
            if pick is not None and isinstance(customer, dict):
                customer["customer_id"] = customer_ids[pick]
        return case

    picks = st.lists(st.one_of(st.none(), st.integers(0, len(customer_ids) - 1)), max_size=20)
    return st.tuples(strategy, picks).map(swap)


def _fuzz_operation(api_schema, service, serving_fixture, method, path, mode, examples, sent, statuses) -> None:
    """Generated requests (Hypothesis, derandomized) to one operation; every answer passes every check.

    Schemathesis's pytest `from_fixture` loader does not work with pytest 9 (it sets the removed
    `Node._nodeid`), so each operation's strategy is driven with Hypothesis's `@given` directly.
    """
    strategy = api_schema[path][method].as_strategy(generation_mode=mode)
    if method == "POST" and mode is GenerationMode.POSITIVE:
        strategy = with_known_customers(strategy, serving_fixture.snapshot["customer_id"].astype(str).tolist())

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case) -> None:
        response = case.call_and_validate(
            base_url=service.url, headers=AUTH, timeout=60, additional_checks=[malformed_body_names_the_field]
        )
        sent[f"{method} {path}"] += 1
        statuses[response.status_code] += 1

    call()


def test_every_answer_is_documented_no_5xx_in_500_requests_to_every_endpoint(api_schema, service, serving_fixture):
    """Every operation in turn (one test, so the totals below see every request whatever the test
    scheduler does); a failing operation does not hide the others' problems."""
    sent: Counter = Counter()
    statuses: Counter = Counter()
    failures = []
    for method, path, mode, examples in OPERATIONS:
        try:
            _fuzz_operation(api_schema, service, serving_fixture, method, path, mode, examples, sent, statuses)
        except Exception as error:  # collected and reported below, with the falsifying example
            failures.append(f"{method} {path} ({mode.value}): {type(error).__name__}: {error}")
    assert not failures, "\n\n".join(failures)
    for operation in ("POST /decide", "POST /score", "POST /explain", "GET /metadata", "GET /healthz",
                      "GET /readyz", "POST /reload"):  # fmt: skip
        assert sent[operation] >= 1, f"{operation} was never called: {dict(sent)}"
    assert sum(sent.values()) >= 500, dict(sent)
    assert not [status for status in statuses if status >= 500], dict(statuses)
