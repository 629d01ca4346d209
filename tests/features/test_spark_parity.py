"""The feature definitions run unchanged on Spark and give DuckDB's snapshot.

One simulated world, written as Parquet, is read by both engines; the full snapshot with labels
must match value by value: counts, scores, dates and text exactly, floats to 1e-9 relative
(the engines sum in different orders). Skipped, with the reason, without PySpark or Java.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import DataContractError
from features.io import open_dataset
from features.simulate import simulate_world, write_world
from features.snapshot import build_snapshot
from features.spark import spark_problem

AS_OF = "2025-07-01"
pytestmark = pytest.mark.skipif(spark_problem() is not None, reason=f"Spark unavailable: {spark_problem()}")


@pytest.fixture(scope="session")
def spark_con():
    """A local[2] Spark session shared by every Spark test (started once, ~10-30 s)."""
    from features.spark import SMALL_DATA_CONFIG, spark_connection, spark_session

    return spark_connection(spark_session(shuffle_partitions=2, driver_memory="1g", config=SMALL_DATA_CONFIG))


@pytest.fixture(scope="module")
def world_folder(tmp_path_factory):
    world = simulate_world(600, months=8, seed=21)
    return write_world(world, tmp_path_factory.mktemp("spark_parity") / "world")


def assert_same_snapshot(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Exact for integers, text, booleans and times; 1e-9 relative for floats; same nulls."""
    assert list(spark.columns) == list(duck.columns)
    assert spark["customer_id"].tolist() == duck["customer_id"].tolist()
    for column in duck.columns:
        expected, actual = duck[column], spark[column]
        assert actual.dtype == expected.dtype, column
        if pd.api.types.is_float_dtype(expected):
            np.testing.assert_allclose(
                actual.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=0, equal_nan=True, err_msg=column
            )
        else:
            same = (actual == expected) | (actual.isna() & expected.isna())
            assert same.all(), f"{column}: {int((~same).sum())} rows differ, e.g. {actual[~same].head(3).tolist()}"


def test_full_snapshot_with_labels_is_the_same_on_spark_and_duckdb(world_folder, spark_con):
    from features.spark import open_spark_dataset

    duck = build_snapshot(open_dataset(world_folder), AS_OF, horizon_days=30)
    spark = build_snapshot(open_spark_dataset(world_folder, con=spark_con), AS_OF, horizon_days=30)
    assert len(duck) > 400
    # the comparison covers every kind of column with real, varied values
    kinds = {str(dtype) for dtype in duck.dtypes}
    assert {"int64", "float64", "str", "datetime64[us]"} <= kinds
    assert duck["rfm_segment"].nunique() == 5 and duck["label_churned"].between(0, 1).all()
    assert duck["recency_days"].notna().sum() > 200 and duck["hour_profile_10"].nunique() > 50
    assert_same_snapshot(duck, spark)


def test_the_comparison_notices_a_last_digit_change(world_folder):
    duck = build_snapshot(open_dataset(world_folder), AS_OF, feature_set="transactions_only")
    changed = duck.copy()
    changed.loc[3, "recency_days"] = duck.loc[3, "recency_days"] * (1 + 1e-8)
    with pytest.raises(AssertionError, match="recency_days"):
        assert_same_snapshot(duck, changed)
    counted = duck.copy()
    counted.loc[5, "frequency"] += 1
    with pytest.raises(AssertionError, match="frequency"):
        assert_same_snapshot(duck, counted)


def test_spark_reader_refuses_what_it_cannot_read(tmp_path):
    from features.spark import open_spark_dataset

    with pytest.raises(ValueError, match="not a folder"):
        open_spark_dataset(tmp_path / "missing")
    pd.DataFrame({"customer_id": ["a"], "ts": ["2025-01-01"], "amount": [1.0]}).to_csv(
        tmp_path / "transactions.csv", index=False
    )
    with pytest.raises(ValueError, match=r"Parquet only.*transactions\.csv"):
        open_spark_dataset(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataContractError, match=r"no transactions\.parquet"):
        open_spark_dataset(empty)
