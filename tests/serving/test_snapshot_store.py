"""The published snapshot comes back from a lookup with the values and dtypes it was published with."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from serving.snapshot_store import open_snapshot_store, publish_snapshot


def _snapshot(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    stamps = pd.Timestamp("2025-06-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s")
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{k}" for k in range(rows)], dtype="str"),
            "as_of": np.full(rows, np.datetime64("2025-09-01T00:00:00", "us")),
            "recency_days": rng.uniform(0, 400, rows),
            "frequency_90d": rng.integers(0, 9, rows).astype(np.int64),
            "orders_total": pd.array(rng.integers(0, 50, rows), dtype="Int64"),
            "email_consent": rng.random(rows) < 0.8,
            "sms_consent": pd.array(rng.random(rows) < 0.3, dtype="boolean"),
            "last_purchase_at": stamps.to_numpy(dtype="datetime64[us]"),
            "rfm_segment": pd.array(rng.choice(["A", "B", "C"], rows), dtype="str"),
            "timezone": pd.array(rng.choice(["Europe/Paris", "America/New_York"], rows), dtype="str"),
        }
    )
    # Missing values of every kind, in different rows.
    frame.loc[1, "recency_days"] = np.nan
    frame.loc[2, "orders_total"] = pd.NA
    frame.loc[3, "sms_consent"] = pd.NA
    frame.loc[4, "last_purchase_at"] = pd.NaT
    frame.loc[5, "rfm_segment"] = None
    return frame


@pytest.mark.parametrize("memory_rows", [0, 1_000], ids=["file", "memory"])
@pytest.mark.parametrize("ids", [["C7"], ["C1"], ["C2", "C3", "C4", "C5"], None])
def test_lookup_returns_the_published_rows_and_dtypes(tmp_path, ids, memory_rows):
    snapshot = _snapshot()
    publish_snapshot(snapshot, tmp_path / "snapshot.sqlite")
    store = open_snapshot_store(tmp_path / "snapshot.sqlite", memory_rows=memory_rows)
    assert (store._memory is not None) == (memory_rows > 0)
    wanted = list(snapshot["customer_id"]) if ids is None else ids
    found = store.lookup([*wanted, "nobody"])
    order = pd.Index(found["customer_id"]).get_indexer(wanted)
    assert (order >= 0).all() and len(found) == len(wanted), "each known customer once, unknown ones absent"
    expected = snapshot.set_index("customer_id").loc[wanted].reset_index()
    pd.testing.assert_frame_equal(found.iloc[order].reset_index(drop=True), expected, check_exact=True)


def test_a_lookup_of_nobody_is_an_empty_frame_with_the_columns(tmp_path):
    snapshot = _snapshot(8)
    publish_snapshot(snapshot, tmp_path / "snapshot.sqlite")
    found = open_snapshot_store(tmp_path / "snapshot.sqlite").lookup(["nobody"])
    assert len(found) == 0 and list(found.columns) == list(snapshot.columns)


@pytest.mark.parametrize("memory_rows", [0, 1_000], ids=["file", "memory"])
def test_sample_gives_up_to_n_published_rows(tmp_path, memory_rows):
    snapshot = _snapshot(8)
    publish_snapshot(snapshot, tmp_path / "snapshot.sqlite")
    store = open_snapshot_store(tmp_path / "snapshot.sqlite", memory_rows=memory_rows)
    sample = store.sample(3)
    assert len(sample) == 3 and list(sample.columns) == list(snapshot.columns)
    expected = snapshot.set_index("customer_id").loc[list(sample["customer_id"])].reset_index()
    pd.testing.assert_frame_equal(sample, expected, check_exact=True)
    assert len(store.sample(100)) == 8


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_republished_snapshot_replaces_the_one_in_memory_without_a_gap(tmp_path):
    path = tmp_path / "snapshot.sqlite"
    first = _snapshot(20)
    publish_snapshot(first, path)
    store = open_snapshot_store(path, memory_rows=100)
    second = first.copy()
    second["recency_days"] = second["recency_days"] + 1000.0
    publish_snapshot(second, path)
    answered = store.lookup(["C9"])  # answered at once, from the snapshot it holds
    assert answered["recency_days"].iloc[0] in (first["recency_days"].iloc[9], second["recency_days"].iloc[9])
    assert _wait_for(lambda: store.lookup(["C9"])["recency_days"].iloc[0] == second["recency_days"].iloc[9])
    assert store._memory is not None


def test_a_republished_snapshot_too_large_for_memory_is_read_from_the_file(tmp_path):
    path = tmp_path / "snapshot.sqlite"
    publish_snapshot(_snapshot(10), path)
    store = open_snapshot_store(path, memory_rows=15)
    assert store._memory is not None and store.customer_count == 10
    larger = _snapshot(40)
    publish_snapshot(larger, path)
    store.lookup(["C1"])  # notices the new file and loads it in the background
    assert _wait_for(lambda: store._memory is None and store._loader is None)
    found = store.lookup(["C33"])
    expected = larger.set_index("customer_id").loc[["C33"]].reset_index()
    pd.testing.assert_frame_equal(found, expected, check_exact=True)
    assert store.customer_count == 40


@pytest.mark.parametrize("memory_rows", [0, 1_000], ids=["file", "memory"])
@pytest.mark.parametrize(
    "ids",
    [["C7"], ["C2", "C3", "C4"], ["C9", "C2", "C30", "C0"], ["C3", "nobody", "C5"], ["C4", "C4", "C1"], ["nobody"]],
    ids=["one", "stored-order", "other-order", "unknown", "repeated", "nobody"],
)
def test_build_frame_gives_the_rows_in_request_order_with_errors_for_unknown_ids(tmp_path, ids, memory_rows):
    from serving.schemas import CustomerContext, CustomerRequest
    from serving.service import build_frame

    snapshot = _snapshot()
    publish_snapshot(snapshot, tmp_path / "snapshot.sqlite")
    store = open_snapshot_store(tmp_path / "snapshot.sqlite", memory_rows=memory_rows)
    context = CustomerContext(email_consent=False)
    customers = [
        CustomerRequest(customer_id=customer, context=context if k == 0 else None) for k, customer in enumerate(ids)
    ]
    frame, positions, errors = build_frame(store, customers)
    known = [k for k, customer in enumerate(ids) if customer != "nobody"]
    assert positions == known
    assert [(error.index, error.customer_id, error.code) for error in errors] == [
        (k, "nobody", "unknown_customer") for k, customer in enumerate(ids) if customer == "nobody"
    ]
    expected = snapshot.set_index("customer_id").loc[[ids[k] for k in known]].reset_index()
    if known and known[0] == 0:  # the first customer's fresh context overrides its snapshot consent
        expected.loc[0, "email_consent"] = False
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
