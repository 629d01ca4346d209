"""Hot reload of the champion under load: no failed request, answers switch to the new version.

The service here serves `models:/nbo_reload@champion` (its own registered name in the fixture's
registry, so moving its alias cannot disturb the session service the other tests share) and
polls the alias every second. The tests run in file order and share that service: POST /reload
to version 2 under load, the poll alone picking up version 3, and a broken version 4 refused
while version 3 keeps serving. The first tests check `ModelHolder` alone, with stand-in models.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import mlflow
import pandas as pd
import pytest

from serving.decision_log import iter_payloads
from serving.loadtest import LoadResult, RequestSpec, run_load
from serving.model_holder import ModelHolder, alias_of
from tests.serving.conftest import API_KEY, service_environment
from tests.serving.model_fixture import register_version
from tests.serving.server import ServiceProcess

NAME = "nbo_reload"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LOG_NAME = "reload-decisions.sqlite"


@pytest.fixture(scope="module")
def reload_service(serving_fixture, tmp_path_factory) -> Iterator[ServiceProcess]:
    register_version(serving_fixture, name=NAME, seed=None, alias="champion")
    environment = service_environment(
        serving_fixture, LOG_NAME, NBO_API_KEY=API_KEY, NBO_MODEL_URI=f"models:/{NAME}@champion",
        NBO_RELOAD_SECONDS="1",
    )  # fmt: skip
    process = ServiceProcess(environment, tmp_path_factory.mktemp("reload-logs") / "service.log").start()
    yield process
    process.stop()


class StandInModel:
    """Answers like `LoadedModel` (one decision and one score per row), or fails like a broken one."""

    def __init__(self, version: str, broken: bool = False) -> None:
        self.versions = {"nbo": version}
        self.uri = f"models:/{NAME}/{version}"
        self.broken = broken

    def decide(self, frame: pd.DataFrame, now, explain: bool) -> pd.DataFrame:
        if self.broken:
            raise KeyError("no_such_feature")
        return pd.DataFrame({"customer_id": frame["customer_id"], "offer_id": "no_message", "propensity": 1.0})

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"churn_risk": [0.5] * len(frame)})


def _holder(registry: dict[str, str], broken: frozenset[str] = frozenset()) -> tuple[ModelHolder, list[str]]:
    loads: list[str] = []

    def load(uri: str) -> StandInModel:
        loads.append(uri)
        version = uri.rsplit("/", 1)[1]
        return StandInModel(version, broken=version in broken)

    holder = ModelHolder(f"models:/{NAME}@champion", StandInModel("1"), load, lambda name, alias: registry[alias])
    return holder, loads


def test_holder_swaps_only_a_version_that_answers_and_reports_why_not():
    registry = {"champion": "1"}
    holder, loads = _holder(registry, broken=frozenset({"3"}))
    assert holder.reload().outcome == "unchanged" and loads == []
    registry["champion"] = "2"
    first = holder.reload()
    assert first.outcome == "failed" and "no rows to smoke-test" in first.error
    assert holder.current.versions["nbo"] == "1"
    holder.remember(pd.DataFrame({"customer_id": ["C1", "C2"]}))
    assert holder.reload().outcome == "reloaded" and holder.current.versions["nbo"] == "2"
    assert loads == [f"models:/{NAME}/2"] and holder.current.uri == f"models:/{NAME}@champion"
    registry["champion"] = "3"
    refused = holder.reload()
    assert refused.outcome == "failed" and "no_such_feature" in refused.error and refused.target_version == "3"
    assert holder.current.versions["nbo"] == "2" and holder.last_status is refused
    assert holder.reload(retry_refused=False) is refused and len(loads) == 2, "the poll must not retry it"
    assert holder.reload().outcome == "failed" and len(loads) == 3, "POST /reload tries again"


def test_only_registry_alias_uris_can_be_reloaded():
    assert alias_of("models:/nbo@champion") == ("nbo", "champion")
    assert alias_of("models:/nbo/3") is None and alias_of("runs:/abc/model") is None
    holder = ModelHolder("models:/nbo/3", StandInModel("3"), load=lambda uri: StandInModel("4"))
    outcome = holder.reload()
    assert outcome.outcome == "failed" and "not a registry alias" in outcome.error


def _metadata(service: ServiceProcess) -> dict:
    response = httpx.get(f"{service.url}/metadata", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


class VersionedLoad:
    """Steady /decide load in a thread, remembering per request when it was sent and which version answered."""

    def __init__(self, service: ServiceProcess, customer_ids: list[str], duration_s: float) -> None:
        self.sent_at: dict[int, float] = {}
        self.result: LoadResult | None = None

        def make(index: int) -> RequestSpec:
            self.sent_at[index] = time.monotonic()
            body = {"customers": [{"customer_id": customer_ids[index % len(customer_ids)]}]}
            return RequestSpec("/decide", body, {**AUTH, "X-Load-Index": str(index)})

        def keep(spec: RequestSpec, response: httpx.Response) -> tuple[float, str, list[str]]:
            answer = response.json()
            decision_ids = [decision["decision_id"] for decision in answer["decisions"]]
            sent = self.sent_at[int(spec.headers["X-Load-Index"])]
            return sent, answer["model"]["model_versions"]["nbo"], decision_ids

        def load() -> None:
            self.result = run_load(service.url, make, rate=30, duration_s=duration_s, concurrency=16, keep=keep)

        self._thread = threading.Thread(target=load)
        self._thread.start()

    def join(self) -> LoadResult:
        self._thread.join(timeout=120)
        assert self.result is not None, "the load did not finish"
        return self.result


def _ids(serving_fixture) -> list[str]:
    return serving_fixture.snapshot["customer_id"].astype(str).head(300).tolist()


@pytest.mark.slow
def test_post_reload_under_load_switches_without_a_failed_request(reload_service, serving_fixture):
    assert _metadata(reload_service)["model_versions"]["nbo"] == "1"
    new_version = register_version(serving_fixture, name=NAME, seed=17)
    load = VersionedLoad(reload_service, _ids(serving_fixture), duration_s=8)
    time.sleep(2)
    mlflow.MlflowClient(serving_fixture.tracking_uri).set_registered_model_alias(NAME, "champion", new_version)
    reloaded = httpx.post(f"{reload_service.url}/reload", headers=AUTH, timeout=60)
    reloaded_at = time.monotonic()
    result = load.join()

    assert reloaded.status_code == 200, reloaded.text
    answer = reloaded.json()
    # The one-second poll may have swapped first; either way the new version serves now.
    assert answer["outcome"] in ("reloaded", "unchanged") and answer["target_version"] == new_version
    assert answer["model"]["model_versions"]["nbo"] == new_version
    assert result.failures == 0, (result.statuses, result.errors[:3])
    versions = [version for _, version, _ in result.kept]
    assert "1" in versions and new_version in versions, f"no switch seen: {set(versions)}"
    after = [version for sent, version, _ in result.kept if sent > reloaded_at]
    assert after and set(after) == {new_version}, "requests sent after the reload answered must use the new model"
    logged = {record["decision_id"]: record["model_version"]
              for record in iter_payloads(serving_fixture.registry_dir / LOG_NAME)}  # fmt: skip
    for _, version, decision_ids in result.kept:
        assert all(f"nbo={version}" in logged[decision_id].split(",") for decision_id in decision_ids)
    metadata = _metadata(reload_service)
    assert metadata["model_versions"]["nbo"] == new_version
    assert metadata["last_reload"]["target_version"] == new_version


@pytest.mark.slow
def test_the_poll_picks_up_a_new_champion_without_a_request(reload_service, serving_fixture):
    # No request is sent first: the service smoke-tests a new version on snapshot rows it sampled
    # at start-up (pytest-xdist may give this test a fresh service that has answered nothing).
    new_version = register_version(serving_fixture, name=NAME, seed=23, alias="champion")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _metadata(reload_service)["model_versions"]["nbo"] != new_version:
        time.sleep(0.5)
    metadata = _metadata(reload_service)
    assert metadata["model_versions"]["nbo"] == new_version
    assert metadata["last_reload"]["outcome"] in ("reloaded", "unchanged")


@pytest.mark.slow
def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(reload_service, serving_fixture):
    serving = _metadata(reload_service)["model_versions"]["nbo"]
    broken = register_version(serving_fixture, name=NAME, broken=True)
    load = VersionedLoad(reload_service, _ids(serving_fixture), duration_s=5)
    time.sleep(1)
    mlflow.MlflowClient(serving_fixture.tracking_uri).set_registered_model_alias(NAME, "champion", broken)
    refused = httpx.post(f"{reload_service.url}/reload", headers=AUTH, timeout=60)
    result = load.join()

    assert refused.status_code == 409, refused.text
    answer = refused.json()
    assert answer["outcome"] == "failed" and answer["target_version"] == broken
    assert "no_such_feature" in answer["error"]
    assert answer["model"]["model_versions"]["nbo"] == serving
    assert result.failures == 0, (result.statuses, result.errors[:3])
    assert {version for _, version, _ in result.kept} == {serving}
    metadata = _metadata(reload_service)
    assert metadata["model_versions"]["nbo"] == serving
    assert metadata["last_reload"]["outcome"] == "failed" and "no_such_feature" in metadata["last_reload"]["error"]
