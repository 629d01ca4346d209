"""Session fixtures: a real small nbo model in a local MLflow registry, and a running service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serving.model_fixture import ServingFixture, build_serving_fixture
from tests.serving.server import ServiceProcess

API_KEY = "test-key-not-a-secret"


@pytest.fixture(scope="session")
def serving_fixture(tmp_path_factory) -> ServingFixture:
    return build_serving_fixture(tmp_path_factory.mktemp("nbo-serving"), customers=1000)


def service_environment(fixture: ServingFixture, log_name: str, **extra: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": fixture.tracking_uri,
        "NBO_MODEL_URI": fixture.model_uri,
        "NBO_SNAPSHOT": str(fixture.snapshot_path),
        "NBO_DECISION_LOG": str(fixture.registry_dir / log_name),
        **extra,
    }


@pytest.fixture(scope="session")
def service(serving_fixture, tmp_path_factory) -> Iterator[ServiceProcess]:
    """The service with NBO_API_KEY set, a small body limit, and its own decision log."""
    environment = service_environment(
        serving_fixture, "decisions.sqlite", NBO_API_KEY=API_KEY, NBO_MAX_BODY_BYTES=str(2 * 1024 * 1024)
    )
    process = ServiceProcess(environment, tmp_path_factory.mktemp("logs") / "service.log").start()
    yield process
    process.stop()


@pytest.fixture
def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}
