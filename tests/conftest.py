"""Shared fixtures: where the real data lives, skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """Path of a real data set in ../shared/data; skips the test when it is not there."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {name} not found at {path} (it lives in ../shared/data)")
    return path


@pytest.fixture
def online_retail_path() -> Path:
    return shared_file("online_retail.parquet")


@pytest.fixture
def hillstrom_path() -> Path:
    return shared_file("hillstrom.csv")
