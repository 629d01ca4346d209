"""Shared fixtures: where the real data lives, skipping cleanly when it is absent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """Path of a real data set in ../shared/data; skips the test when it is not there."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {name} not found at {path} (it lives in ../shared/data)")
    return path


def benchmark_module(name: str) -> ModuleType:
    """A script of benchmarks/ imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def online_retail_path() -> Path:
    return shared_file("online_retail.parquet")


@pytest.fixture
def hillstrom_path() -> Path:
    return shared_file("hillstrom.csv")


@pytest.fixture(scope="module")
def tracking_store(tmp_path_factory):
    """One MLflow SQLite store per test module (creating its tables takes seconds), set as the default."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # restored on exit (set_experiment exports it)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("Default")  # not an experiment id cached from another module's store
        yield folder
        mlflow.set_tracking_uri(None)
