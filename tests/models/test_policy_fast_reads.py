"""The one-customer shortcuts of the policy read exactly what pandas reads.

`FrameColumns` reads columns straight from the frame's blocks along a layout worked out once per
column layout, several columns at a time; the send time looks UTC offsets up with zoneinfo,
remembering whole hours; the decisions table is assembled from arrays already in their stored
form. These tests pin each against the plain pandas reading, including the cases a cache could
get wrong: frames with equal labels but other dtypes or block layouts, zones sharing hours, DST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import features
from features.catalog import load_catalog
from models import policy_options, send_time
from models.policy import DECISION_COLUMNS, decide
from models.policy_config import PolicyConfig
from models.policy_options import FrameColumns
from models.send_time import QuietHours, schedule_send_times

CATALOG = load_catalog(Path(features.__file__).parent / "default_catalog.yaml")


def _mixed_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": [f"C{i}" for i in range(n)],
            "count": rng.integers(0, 5, n),
            "share": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
            "flag": rng.random(n) < 0.5,
            "small": rng.integers(0, 3, n).astype(np.int8),
            "big": np.arange(n, dtype=np.uint64) + np.uint64(2**63),
            "stage": pd.array(rng.choice(np.array(["a", "b", None], dtype=object), n), dtype="str"),
            "seen_at": np.where(
                rng.random(n) < 0.5, np.datetime64("2026-01-01T10:00", "us"), np.datetime64("NaT", "us")
            ),
        }
    )
    frame["later"] = rng.random(n)  # a block of its own, after the others
    return frame


def _expected_floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=float, na_value=np.nan)


@pytest.mark.parametrize("n_rows", [1, 7])
def test_reads_equal_pandas_for_every_column_kind(n_rows: int) -> None:
    frame = _mixed_frame(n_rows)
    columns = FrameColumns(frame)
    numeric = ["count", "share", "flag", "small", "big", "later"]
    for name in numeric:
        np.testing.assert_array_equal(columns.floats(name), _expected_floats(frame, name))
    matrix = columns.float_matrix([*numeric, "absent"])
    expected = np.column_stack([_expected_floats(frame, name) for name in numeric] + [np.full(n_rows, np.nan)])
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.flags.c_contiguous
    flags = columns.boolean_matrix(["count", "flag", "share"], False)
    np.testing.assert_array_equal(
        flags, np.column_stack([frame[n].fillna(0).to_numpy() > 0 for n in ("count", "flag", "share")])
    )
    np.testing.assert_array_equal(columns.contain(["share", "absent", "stage"]), [True, False, True])
    for name in ("id", "stage"):
        assert [repr(value) for value in columns.objects(name)] == [
            repr(value) for value in frame[name].to_numpy(dtype=object)
        ]
    np.testing.assert_array_equal(columns.timestamps("seen_at"), frame["seen_at"].to_numpy("datetime64[us]"))


def test_equal_labels_with_other_dtypes_or_block_layouts_are_read_right() -> None:
    """The layout cache is keyed on dtypes and block positions as well as labels."""
    first = pd.DataFrame({"a": np.array([1, 2]), "b": np.array([0.5, 1.5])})
    swapped = pd.DataFrame({"a": np.array([0.25, 0.75]), "b": np.array([3, 4])})
    text = pd.DataFrame({"a": pd.array(["x", "y"], dtype="str"), "b": np.array([5.0, 6.0])})
    split = pd.DataFrame({"a": np.array([7.0, 8.0])})
    split["b"] = np.array([9.0, 10.0])  # same labels and dtypes, two blocks instead of one
    joined = split.copy()  # consolidated: one block
    for frame in (first, swapped, split, joined, first):
        columns = FrameColumns(frame)
        for name in ("a", "b"):
            np.testing.assert_array_equal(columns.floats(name), _expected_floats(frame, name))
        np.testing.assert_array_equal(columns.float_matrix(["b", "a"]), frame[["b", "a"]].to_numpy(dtype=float))
    columns = FrameColumns(text)
    with pytest.raises(ValueError, match="must be numeric"):
        columns.floats("a")
    np.testing.assert_array_equal(columns.float_matrix(["b"]), [[5.0], [6.0]])
    assert list(columns.objects("a")) == ["x", "y"]


def test_large_frames_and_nullable_columns_take_the_column_path(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _mixed_frame(12, seed=3)
    frame["nullable"] = pd.array([1, None] * 6, dtype="Int64")
    monkeypatch.setattr(policy_options, "_BLOCK_ROWS", 5)  # 12 rows: one column at a time
    columns = FrameColumns(frame)
    names = ["nullable", "share", "absent", "big"]
    expected = np.column_stack([_expected_floats(frame, n) for n in ("nullable", "share")] + [np.full(12, np.nan)])
    np.testing.assert_array_equal(
        columns.float_matrix(names), np.column_stack([expected, _expected_floats(frame, "big")])
    )
    np.testing.assert_array_equal(columns.boolean_matrix(["nullable", "absent"], True)[:, 1], np.ones(12, dtype=bool))


def _pandas_schedule_reference(now: str, zone: str, n_slots: int) -> tuple[np.ndarray, list[str]]:
    """Local hour and ISO text of each slot, by pandas' own time zone conversion."""
    slots = send_time._slot_grid(pd.Timestamp(now), n_slots)
    local = pd.DatetimeIndex(slots).tz_localize("UTC").tz_convert(zone)
    return np.asarray(local.hour), [moment.isoformat(timespec="minutes") for moment in local]


@pytest.mark.parametrize(
    ("now", "zone"),
    [
        ("2026-03-28T23:17:00", "Europe/London"),  # spring forward at 01:00 UTC
        ("2026-10-24T22:05:00", "Europe/London"),  # fall back
        ("2026-11-01T02:40:00", "America/St_Johns"),  # -03:30 / -02:30
        ("2026-04-04T12:10:00", "Australia/Lord_Howe"),  # half-hour DST
        ("2026-01-02T10:00:00", "Asia/Kathmandu"),  # +05:45
    ],
)
def test_send_times_agree_with_pandas_time_zones_across_transitions(now: str, zone: str) -> None:
    send_time._hour_offsets.clear()
    reference_hour, reference_text = _pandas_schedule_reference(now, zone, 27)
    for hour in range(24):  # each preferred hour in turn: every slot gets chosen (a skipped hour: the next best)
        preference = np.full((1, 24), 0.001)
        preference[0, hour] = 1.0
        for timezones in (np.array([zone], dtype=object), np.array(["UTC", zone], dtype=object)):
            rows = len(timezones)
            schedule = schedule_send_times(
                now,
                timezones,
                np.repeat(preference, rows, axis=0),
                quiet_hours=QuietHours(start_minute=0, end_minute=0),
            )
            slot = int(np.flatnonzero(send_time._slot_grid(pd.Timestamp(now), 27) == schedule.send_at[-1])[0])
            assert schedule.local_hour[-1] == reference_hour[slot]
            assert schedule.send_at_local[-1] == reference_text[slot]


def test_remembered_offsets_are_per_zone() -> None:
    """Two zones at the same whole hours (second one served from the memo of the first) keep their own offsets."""
    send_time._hour_offsets.clear()
    slots = send_time._slot_grid(pd.Timestamp("2026-07-01T09:30:00"), 26)
    for zones in (["Europe/Berlin"], ["America/Chicago"], ["Europe/Berlin", "America/Chicago", "Asia/Tokyo"]):
        hour, weekday, minute = send_time._local_slot_tables(slots, zones)
        for row, zone in enumerate(zones):
            local = pd.DatetimeIndex(slots).tz_localize("UTC").tz_convert(zone)
            np.testing.assert_array_equal(hour[row], local.hour)
            np.testing.assert_array_equal(weekday[row], local.weekday)
            np.testing.assert_array_equal(minute[row], local.hour * 60 + local.minute)


def test_decisions_table_is_an_ordinary_frame_with_its_own_labels() -> None:
    rng = np.random.default_rng(5)
    n = 4
    frame = pd.DataFrame(
        {
            "customer_id": [f"T{i}" for i in range(n)],
            "lifecycle_stage": pd.array(["active", "at_risk", None, "lapsed"], dtype="str"),
            "email_consent": np.ones(n, dtype=bool),
            "avg_order_value": rng.gamma(2.0, 40.0, n),
            "subscriber_value": rng.gamma(2.0, 10.0, n),
            "p_convert__control": rng.random(n) * 0.2,
            "churn_risk": rng.random(n),
            "uplift_convert__discount_10": rng.normal(0.05, 0.02, n),
        }
    )
    first = decide(frame, CATALOG, "2026-01-02T10:00:00", PolicyConfig(holdout_share=0.0, exploration_share=0.0))
    table = first.table
    rebuilt = pd.DataFrame({name: table[name].to_numpy() for name in DECISION_COLUMNS}).astype(table.dtypes.to_dict())
    pd.testing.assert_frame_equal(table, rebuilt, check_exact=True)
    assert list(table.columns) == list(DECISION_COLUMNS) and isinstance(table.index, pd.RangeIndex)
    assert table["send_at"].dtype == np.dtype("datetime64[us]") and table["offer_id"].dtype == "str"
    table.columns.name = "renamed"
    second = decide(frame, CATALOG, "2026-01-02T10:00:00", PolicyConfig(holdout_share=0.0, exploration_share=0.0))
    assert second.table.columns.name is None
    table.loc[0, "reason_codes"] = "changed"  # the text arrays are not shared with the next table
    assert second.table.loc[0, "reason_codes"] != "changed"
