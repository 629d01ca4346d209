"""Promotion and rollback switch the served model under load with zero failed requests (issue 10).

`training.promotion.promote` (the gates of `nbo promote`) moves the `champion` alias of its own
registered name, `nbo_promote`; the running service notices through its one-second poll, with no
restart. A refused promotion leaves the served version alone; `rollback` brings the previous one back.
How the gate metrics are computed is tested in tests/training/test_promotion.py; here they are given.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import mlflow
import pytest

from tests.serving.conftest import API_KEY, service_environment
from tests.serving.model_fixture import register_version
from tests.serving.server import ServiceProcess
from tests.serving.test_reload import VersionedLoad
from training.promotion import PromotionGates, promote, rollback

pytestmark = pytest.mark.slow

NAME = "nbo_promote"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAMPION = {"churn_auc": 0.70, "churn_brier": 0.20, "uplift_qini": 0.010, "policy_value": 0.050}
BETTER = {"churn_auc": 0.72, "churn_brier": 0.19, "uplift_qini": 0.012, "policy_value": 0.055}
WORSE = {**BETTER, "churn_brier": 0.25}


@pytest.fixture(scope="module")
def promote_service(serving_fixture, tmp_path_factory) -> Iterator[ServiceProcess]:
    register_version(serving_fixture, name=NAME, seed=None, alias="champion")
    environment = service_environment(
        serving_fixture, "promote-decisions.sqlite", NBO_API_KEY=API_KEY, NBO_MODEL_URI=f"models:/{NAME}@champion",
        NBO_RELOAD_SECONDS="1",
    )  # fmt: skip
    process = ServiceProcess(environment, tmp_path_factory.mktemp("promote-logs") / "service.log").start()
    yield process
    process.stop()


def _served_version(service: ServiceProcess) -> str:
    response = httpx.get(f"{service.url}/metadata", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["model_versions"]["nbo"]


def _wait_for_version(service: ServiceProcess, version: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _served_version(service) == version:
            return
        time.sleep(0.25)
    raise AssertionError(f"the service still serves {_served_version(service)} {timeout_s} s after {version} won")


def test_promote_refuse_and_rollback_switch_the_served_model_without_a_failed_request(
    promote_service, serving_fixture
):
    mlflow.set_tracking_uri(serving_fixture.tracking_uri)
    assert _served_version(promote_service) == "1"
    challenger = register_version(serving_fixture, name=NAME, seed=23)
    ids = serving_fixture.snapshot["customer_id"].astype(str).head(300).tolist()
    load = VersionedLoad(promote_service, ids, duration_s=25)
    time.sleep(2)

    refused = promote(NAME, challenger, WORSE, CHAMPION, PromotionGates(), champion_version="1")
    assert not refused.promoted and [r.gate for r in refused.results if not r.passed] == ["churn_brier"]
    time.sleep(2.5)
    assert _served_version(promote_service) == "1", "a refused challenger must not be served"

    promoted = promote(NAME, challenger, BETTER, CHAMPION, PromotionGates(), champion_version="1")
    assert promoted.promoted and promoted.replaced_version == "1"
    _wait_for_version(promote_service, challenger)

    restored, replaced = rollback(NAME)
    assert (restored, replaced) == ("1", challenger)
    _wait_for_version(promote_service, "1")
    result = load.join()

    assert result.failures == 0, (result.statuses, result.errors[:3])
    versions = [version for _, version, _ in sorted(result.kept)]
    assert challenger in versions, "no request was answered by the promoted version during the load"
    switches = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    assert switches[0] == "1" and switches[-1] == "1" and challenger in switches[1:-1], switches
