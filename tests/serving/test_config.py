"""Serving settings from the environment: defaults, values, and errors that name the variable."""

from __future__ import annotations

import pytest

from serving.config import DEFAULT_SNAPSHOT_MEMORY_ROWS, ServingSettings


def test_defaults_and_given_values():
    assert ServingSettings.from_env({}).snapshot_memory_rows == DEFAULT_SNAPSHOT_MEMORY_ROWS
    settings = ServingSettings.from_env({"NBO_SNAPSHOT_MEMORY_ROWS": "0", "NBO_RELOAD_SECONDS": "5"})
    assert settings.snapshot_memory_rows == 0 and settings.reload_seconds == 5.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [("NBO_SNAPSHOT_MEMORY_ROWS", "lots"), ("NBO_SNAPSHOT_MEMORY_ROWS", "-1"), ("NBO_RELOAD_SECONDS", "soon"),
     ("NBO_MAX_BODY_BYTES", "12"), ("NBO_MAX_BODY_BYTES", "big")],
)  # fmt: skip
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        ServingSettings.from_env({variable: value})
