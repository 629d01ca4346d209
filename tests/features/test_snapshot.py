"""The snapshot API: populations, feature sets, training sets, bad input, the registry, and
agreement with the benchmark's pandas implementation."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from features import registry
from features.dataset import Dataset
from features.families import FAMILIES
from features.snapshot import as_of_range, build_snapshot, build_training_set
from tests.conftest import benchmark_module


def _ts(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, format="ISO8601"), dtype="datetime64[us]")


def order_export() -> dict[str, pd.DataFrame]:
    """Transactions only, without order_id: each row is an order."""
    return {
        "transactions": pd.DataFrame(
            {
                "customer_id": ["a", "a", "b", "c", "c", "c"],
                "ts": _ts(["2024-01-05", "2024-02-05", "2024-02-10", "2024-01-01", "2024-01-01", "2024-06-01"]),
                "amount": [10.0, 20.0, 5.0, 7.0, 8.0, 9.0],
            }
        )
    }


@pytest.fixture(scope="module")
def export_snapshot() -> pd.DataFrame:
    return build_snapshot(Dataset.from_frames(order_export()), "2024-03-01", horizon_days=60)


def test_order_export_alone_gives_the_transaction_families(export_snapshot: pd.DataFrame) -> None:
    dataset = Dataset.from_frames(order_export())
    producible = [definition.name for definition in registry.features_for(dataset)]
    assert list(export_snapshot.columns) == [
        "customer_id",
        "as_of",
        *producible,
        "label_churned",
        "label_purchases",
        "label_revenue",
    ]
    families = {registry.FEATURES[name].family for name in producible}
    assert families == {"rfm", "rhythm", "tenure", "timing", "lifecycle"}
    # Without order_id every row is an order: c has two rows at the same time, two orders.
    assert export_snapshot.set_index("customer_id")["frequency"].to_dict() == {"a": 2, "b": 1, "c": 2}
    # c's order on 06-01 is after the as-of time and outside the 60-day label window.
    assert export_snapshot.set_index("customer_id")["label_churned"].to_dict() == {"a": 1, "b": 1, "c": 1}


def test_snapshot_dtypes_follow_the_declarations(export_snapshot: pd.DataFrame) -> None:
    for name in export_snapshot.columns[2:]:
        declared = registry.FEATURES[name].dtype if name in registry.FEATURES else None
        if declared == "int64":
            assert export_snapshot[name].dtype == np.int64, name
        elif declared == "float64":
            assert export_snapshot[name].dtype == np.float64, name
    assert export_snapshot["as_of"].dtype == "datetime64[us]"


def test_feature_set_selects_columns() -> None:
    snapshot = build_snapshot(Dataset.from_frames(order_export()), "2024-03-01", feature_set="rfm")
    assert list(snapshot.columns) == ["customer_id", "as_of", *registry.FEATURE_SETS["rfm"].features]


def test_feature_set_with_nothing_producible_is_refused() -> None:
    with pytest.raises(ValueError, match="feature set 'engagement' has no feature"):
        build_snapshot(Dataset.from_frames(order_export()), "2024-03-01", feature_set="engagement")
    with pytest.raises(ValueError, match="unknown feature set 'nope'; known sets: all"):
        build_snapshot(Dataset.from_frames(order_export()), "2024-03-01", feature_set="nope")


@pytest.mark.parametrize(
    ("as_of", "horizon", "message"),
    [
        (
            "2023-12-31",
            None,
            r"as_of 2023-12-31 00:00:00 is not after the first transaction "
            r"\(2024-01-01 00:00:00\)",
        ),
        ("2024-01-01", None, "is not after the first transaction"),
        (
            "2024-05-15",
            30,
            r"runs past the end of the data: the last transaction is at "
            r"2024-06-01 00:00:00",
        ),
        ("2024-03-01", 0, "horizon_days must be a positive whole number of days, got 0"),
        ("yesterday-ish", None, "as_of 'yesterday-ish' is not a timestamp"),
    ],
)
def test_bad_input_is_refused_clearly(as_of: str, horizon: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_snapshot(Dataset.from_frames(order_export()), as_of, horizon_days=horizon)


def test_training_set_stacks_snapshots() -> None:
    dataset = Dataset.from_frames(order_export())
    dates = as_of_range("2024-02-01", "2024-03-02", every="30d")
    assert dates == [pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-02")]
    training = build_training_set(dataset, dates, horizon_days=30, feature_set="rfm")
    assert training.groupby("as_of").size().to_dict() == {pd.Timestamp("2024-02-01"): 2, pd.Timestamp("2024-03-02"): 3}
    first = training[training["as_of"] == dates[0]].set_index("customer_id")
    assert first.loc["a", "label_purchases"] == 1  # the 02-05 order
    with pytest.raises(ValueError, match="repeats"):
        build_training_set(dataset, [dates[0], dates[0]], horizon_days=None)


def test_as_of_range_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match="every 'monthly' is not a duration"):
        as_of_range("2024-01-01", "2024-03-01", every="monthly")
    with pytest.raises(ValueError, match="end 2023-01-01 00:00:00 is before start"):
        as_of_range("2024-01-01", "2023-01-01")


def test_registry_is_complete_and_consistent() -> None:
    declared = [definition for family in FAMILIES for definition in family.features]
    assert len(declared) == len(registry.FEATURES)  # names are unique
    assert {"all", "transactions_only", "rfm"} <= set(registry.FEATURE_SETS)
    for feature_set in registry.FEATURE_SETS.values():
        assert set(feature_set.features) <= set(registry.FEATURES)
        assert len(feature_set.fingerprint) == 12
    for definition in declared:
        assert definition.description and definition.unit and definition.source_table
        assert definition.window_days in (None, 7, 30, 90, 365)
    table = registry.markdown_table()
    assert table.count("\n") == len(registry.FEATURES) + 2
    assert "| `r_score` | rfm | all history | score 1-5 | transactions |" in table


def _pandas_baseline() -> ModuleType:
    return benchmark_module("pandas_baseline")


def test_pandas_baseline_agrees_with_the_snapshot() -> None:
    from tests.features.test_leakage import random_world

    world = random_world(7)
    as_of = pd.Timestamp("2024-06-01")
    ours = build_snapshot(Dataset.from_frames(world), as_of, feature_set="rfm_engagement")
    theirs = _pandas_baseline().rfm_engagement(world, as_of)
    ours = ours.drop(columns="as_of")
    assert set(theirs.columns) == set(ours.columns)
    pd.testing.assert_frame_equal(ours, theirs[ours.columns], check_exact=False, rtol=1e-9, check_dtype=False)


def test_lines_without_an_order_id_form_one_order_per_timestamp() -> None:
    transactions = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a"],
            "ts": _ts(["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-02", "2024-01-03"]),
            "amount": [1.0, 2.0, 3.0, 4.0],
            "order_id": [None, None, "o1", "o1"],
        }
    )
    snapshot = build_snapshot(Dataset.from_frames({"transactions": transactions}), "2024-02-01")
    assert snapshot.loc[0, "frequency"] == 2
    assert snapshot.loc[0, "monetary"] == 10.0
