"""Point-in-time correctness: rows at or after the as-of time never change a feature.

Random worlds (a few seeded draws) get arbitrary rows appended at or after the as-of time:
orders and events of existing customers, customers who sign up later (with their own orders
and events), subscriptions that start later. Every feature must stay exactly the same.
A control appends one row *before* the as-of time and must change something, so the
comparison is known to be able to fail. Floats are compared to 1e-12 relative: DuckDB's
parallel sums may add the same numbers in a different order (last-bit differences); any leaked
row moves a count by at least 1 or a sum by a whole amount.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.dataset import Dataset
from features.families.products import purchase_recency
from features.snapshot import build_snapshot

AS_OF = pd.Timestamp("2024-06-01")
START = pd.Timestamp("2023-01-01")
END = pd.Timestamp("2024-12-31")
CHANNELS = ["email", "sms", "push", "web", "app"]
EVENT_TYPES = [
    "send", "open", "click", "unsubscribe", "bounce", "complaint", "visit", "login",
    "feature_use", "support_ticket", "payment_failed",
]  # fmt: skip
ZONES = ["Europe/London", "America/New_York", "Asia/Tokyo", "UTC", None]


def _times(rng: np.random.Generator, n: int, low: pd.Timestamp, high: pd.Timestamp) -> pd.Series:
    seconds = rng.integers(0, int((high - low).total_seconds()), size=n)
    times = low + pd.to_timedelta(seconds, unit="s")
    # Some rows land exactly on the boundary `low` (the as-of time when appending).
    times = times.where(rng.random(n) > 0.1, low)
    return pd.Series(times, dtype="datetime64[us]")


def _customers(rng: np.random.Generator, ids: list[str], low, high) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "signup_at": _times(rng, n, low, high),
            "acquisition_channel": rng.choice(["organic", "paid", "social"], n),
            "timezone": [ZONES[i] for i in rng.integers(0, len(ZONES), n)],
            "unsubscribed_at": _times(rng, n, low, END).where(rng.random(n) < 0.2),
        }
    )


def _transactions(rng, ids, n, low, high, order_prefix: str) -> pd.DataFrame:
    orders = rng.integers(0, max(1, n // 2), n)
    return pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n),
            "ts": _times(rng, n, low, high),
            "amount": rng.gamma(2.0, 20.0, n).round(2),
            "order_id": [f"{order_prefix}{order}" for order in orders],
            "product_id": [f"p{i}" for i in range(n)],
            "category": rng.choice(["books", "garden", "toys"], n),
            "discount_amount": np.where(rng.random(n) < 0.3, 2.5, 0.0),
        }
    )


def _events(rng, ids, n, low, high) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n),
            "ts": _times(rng, n, low, high),
            "channel": rng.choice(CHANNELS, n),
            "event_type": rng.choice(EVENT_TYPES, n),
        }
    )


def _subscriptions(rng, ids, n, low, high) -> pd.DataFrame:
    started = _times(rng, n, low, high)
    return pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n),
            "plan": rng.choice(["basic", "pro"], n),
            "started_at": started,
            "renews_at": started + pd.Timedelta(days=30),
            "status": "active",
            "usage": rng.uniform(0, 120, n),
            "usage_limit": 100.0,
        }
    )


def random_world(seed: int) -> dict[str, pd.DataFrame]:
    """A world with history on both sides of the as-of time."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(25)]
    customers = _customers(rng, ids, START, AS_OF)
    return {
        "customers": customers,
        "transactions": _transactions(rng, ids, 120, START, END, "o"),
        "events": _events(rng, ids, 300, START, END),
        "subscriptions": _subscriptions(rng, ids, 10, START, END),
    }


def later_rows(seed: int, world: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Arbitrary rows at or after the as-of time, including customers who sign up later."""
    rng = np.random.default_rng(seed + 1000)
    newcomers = [f"n{i}" for i in range(5)]
    everyone = [*world["customers"]["customer_id"], *newcomers]
    return {
        "customers": _customers(rng, newcomers, AS_OF, END),
        "transactions": _transactions(rng, everyone, 60, AS_OF, END, "late"),
        "events": _events(rng, everyone, 150, AS_OF, END),
        "subscriptions": _subscriptions(rng, everyone, 8, AS_OF, END),
    }


def assert_same_features(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """Equal frames: exactly for everything but floats, floats to 1e-12 relative."""
    floats = before.select_dtypes("float64").columns
    pd.testing.assert_frame_equal(before.drop(columns=floats), after.drop(columns=floats))
    pd.testing.assert_frame_equal(before[floats], after[floats], check_exact=False, rtol=1e-12, atol=1e-12)


def _append(world, extra) -> dict[str, pd.DataFrame]:
    return {name: pd.concat([world[name], extra[name]], ignore_index=True) for name in world}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_after_as_of_change_no_feature(seed: int) -> None:
    world = random_world(seed)
    before = build_snapshot(Dataset.from_frames(world), AS_OF)
    after = build_snapshot(Dataset.from_frames(_append(world, later_rows(seed, world))), AS_OF)
    assert len(before) > 0
    assert_same_features(before, after)


def test_category_recency_ignores_later_rows() -> None:
    world = random_world(3)
    grown = _append(world, later_rows(3, world))
    before = purchase_recency(Dataset.from_frames(world), AS_OF)
    after = purchase_recency(Dataset.from_frames(grown), AS_OF)
    assert_same_features(before, after)


def test_control_a_row_before_as_of_does_change_features() -> None:
    world = random_world(4)
    before = build_snapshot(Dataset.from_frames(world), AS_OF)
    customer = world["customers"]["customer_id"].iloc[0]
    one_order = pd.DataFrame(
        {
            "customer_id": [customer],
            "ts": pd.Series([AS_OF - pd.Timedelta(seconds=1)], dtype="datetime64[us]"),
            "amount": [10.0],
            "order_id": ["control"],
            "product_id": ["p-control"],
            "category": ["books"],
            "discount_amount": [0.0],
        }
    )
    grown = dict(world, transactions=pd.concat([world["transactions"], one_order]))
    after = build_snapshot(Dataset.from_frames(grown), AS_OF)
    changed = before.set_index("customer_id").loc[customer] != after.set_index("customer_id").loc[customer]
    assert changed["recency_days"]
    assert changed["frequency"]


def test_a_later_unsubscribe_time_is_not_history() -> None:
    world = random_world(5)
    customers = world["customers"].copy()
    customers["unsubscribed_at"] = pd.Series([pd.NaT] * len(customers), dtype="datetime64[us]")
    later = customers.copy()
    later["unsubscribed_at"] = pd.Series([AS_OF] * len(customers), dtype="datetime64[us]")
    before = build_snapshot(Dataset.from_frames(dict(world, customers=customers)), AS_OF, feature_set="engagement")
    after = build_snapshot(Dataset.from_frames(dict(world, customers=later)), AS_OF, feature_set="engagement")
    assert_same_features(before, after)
