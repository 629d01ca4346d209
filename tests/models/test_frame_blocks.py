"""RowTaker: rows of a fixed frame assembled from its blocks equal pandas' own take."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.frame_blocks import RowTaker, block_layout, column_lists, is_consolidated


@pytest.fixture(scope="module")
def frame():
    """The kinds of columns a published snapshot has, each in several blocks, with missing values."""
    rng = np.random.default_rng(3)
    n = 50
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i:04d}" for i in range(n)], dtype="str"),
            "recency_days": rng.random(n),
            "orders": rng.integers(0, 9, n),
            "first_order_at": pd.to_datetime("2025-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
            "email_consent": rng.random(n) < 0.5,
            "segment": pd.array([None if i % 7 == 0 else "ABCDE"[i % 5] for i in range(n)], dtype="str"),
            "monetary": np.where(rng.random(n) < 0.2, np.nan, rng.random(n) * 100),
            "last_order_at": pd.to_datetime("2025-06-01") + pd.to_timedelta(rng.integers(0, 90, n), unit="h"),
            "tenure_days": rng.integers(0, 900, n),
            "timezone": pd.array(["Europe/Berlin", "America/New_York"] * (n // 2), dtype="str"),
            "sms_consent": rng.random(n) < 0.3,
        }
    )
    assert len(frame._mgr.blocks) >= 6  # numbers, datetimes, booleans and one block per text column
    return frame


@pytest.mark.parametrize("positions", [[0], [49], [17], [3, 1, 40], list(range(50)), [5, 5, 2], []])
def test_rows_equal_pandas_take_with_the_same_layout(frame, positions):
    expected = frame.take(positions).reset_index(drop=True)
    taken = RowTaker(frame).take(positions)
    pd.testing.assert_frame_equal(taken, expected, check_exact=True)
    assert block_layout(taken)[2] == block_layout(expected)[2]  # the readers' per-layout plans apply


def test_the_rows_are_the_callers_own(frame):
    original = frame.copy(deep=True)
    taken = RowTaker(frame).take([7])
    taken.loc[0, "recency_days"] = -1.0
    taken.loc[0, "segment"] = "Z"
    taken.loc[0, "first_order_at"] = pd.Timestamp("2000-01-01")
    taken["orders"] = 99
    pd.testing.assert_frame_equal(frame, original, check_exact=True)


def test_column_lists_equal_what_pandas_gives_per_column(frame):
    names = tuple(frame.columns)
    expected = frame.take([4, 0, 14, 21]).reset_index(drop=True)
    lists = column_lists(expected, names)
    for name in names:
        column = expected[name]
        if column.dtype.kind in "biuf":
            assert lists[name] == column.tolist()
        elif column.dtype.kind == "M":  # Python datetimes: the same instants, the same isoformat
            assert lists[name] == column.dt.to_pydatetime().tolist()
            assert [value.isoformat() for value in lists[name]] == [value.isoformat() for value in column]
        else:
            assert lists[name] == column.to_numpy(dtype=object, na_value=None).tolist()
    assert lists["segment"][1] is None  # a missing text value is None, not NaN
    assert type(lists["orders"][0]) is int and type(lists["email_consent"][0]) is bool


def test_column_lists_keep_missing_timestamps_and_other_units():
    frame = pd.DataFrame({"send_at": pd.to_datetime(["2026-01-02 18:00", None]).astype("datetime64[ns]")})
    frame["send_at"] += pd.Timedelta(7, "ns")
    values = column_lists(frame, ("send_at",))["send_at"]
    assert values[1] is None
    assert values[0].isoformat() == "2026-01-02T18:00:00.000000007"  # nanoseconds are not cut off


def test_column_lists_name_a_missing_column(frame):
    with pytest.raises(KeyError, match="offer_id"):
        column_lists(frame, ("customer_id", "offer_id"))


def test_is_consolidated_tells_whether_a_copy_would_merge_blocks(frame):
    scattered = pd.DataFrame({"a": [1.0]})
    scattered["b"] = 2.0  # a second float block
    assert not is_consolidated(scattered)
    assert is_consolidated(scattered.copy()) and is_consolidated(frame)
