"""Outcomes of logged decisions drawn from the simulator's truth, and a policy's true value.

The simulator's `ground_truth` gives, per customer at the end of the world, the control arm's
14-day conversion probability and expected revenue and each offer's true effect on both (and on
unsubscribes). For decisions logged at that time, `draw_decision_outcomes` realises those
outcomes as contract rows (an order inside the window for a converter, an unsubscribe event), so
the log can be joined back to "what happened"; `true_policy_value` is the exact expected outcome
of any assignment of offers to those customers, the yardstick for off-policy estimates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.contract import CONTROL_OFFER_ID

__all__ = ["CONTROL_LABELS", "draw_decision_outcomes", "true_outcome_means", "true_policy_value"]

#: Logged offer ids that mean "nothing was sent" (the control arm).
CONTROL_LABELS = (CONTROL_OFFER_ID, "no_message", "holdout")
_QUANTITIES = ("convert", "revenue", "unsubscribe")
_BASE_COLUMNS = {
    "convert": "p_convert_control",
    "revenue": "expected_revenue_control",
    "unsubscribe": "p_unsubscribe_control",
}


def true_outcome_means(
    ground_truth: pd.DataFrame, customer_ids: Sequence[str], offer_ids: Sequence[str], quantity: str
) -> np.ndarray:
    """Expected `quantity` (convert, revenue, unsubscribe) per row when the row's customer gets
    the row's offer (control labels: nothing); probabilities are clipped to [0, 1]."""
    if quantity not in _QUANTITIES:
        raise ValueError(f"quantity must be one of {_QUANTITIES}, got {quantity!r}")
    customers = pd.Index(np.asarray(customer_ids, dtype=object).astype(str))
    offers = np.asarray(offer_ids, dtype=object).astype(str)
    if len(customers) != len(offers):
        raise ValueError(f"{len(customers)} customer ids but {len(offers)} offer ids")
    truth = ground_truth.set_index("customer_id")
    unknown = customers.difference(truth.index)
    if len(unknown):
        raise ValueError(f"{len(unknown)} customers are not in ground_truth, e.g. {list(unknown[:3])}")
    rows = truth.loc[customers]
    means = rows[_BASE_COLUMNS[quantity]].to_numpy(dtype=float).copy()
    treated = ~np.isin(offers, CONTROL_LABELS)
    for offer in np.unique(offers[treated]):
        column = f"tau_{quantity}_{offer}"
        if column not in truth.columns:
            raise ValueError(f"offer {offer!r} has no true effect in ground_truth (no column {column!r})")
        hit = offers == offer
        means[hit] += rows[column].to_numpy(dtype=float)[hit]
    if quantity != "revenue":
        means = np.clip(means, 0.0, 1.0)
    return np.maximum(means, 0.0)


def true_policy_value(
    ground_truth: pd.DataFrame, customer_ids: Sequence[str], offer_ids: Sequence[str], quantity: str = "convert"
) -> float:
    """Mean expected `quantity` per customer when each customer gets its offer: a policy's true value."""
    return float(true_outcome_means(ground_truth, customer_ids, offer_ids, quantity).mean())


def draw_decision_outcomes(
    ground_truth: pd.DataFrame,
    decisions: pd.DataFrame,
    *,
    window_days: float = 14.0,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Contract rows realising each decision's outcome within `window_days` after `decided_at`.

    `decisions`: customer_id, decided_at, offer_id (control labels: nothing sent). A converter
    gets one order at a uniform time in the window whose amount is the arm's expected revenue
    over its conversion probability (so expected revenue matches the truth); an unsubscriber one
    e-mail `unsubscribe` event. Returns {"transactions": ..., "events": ...}. The draws depend on
    `seed` and the decisions, not on their row order (rows are drawn sorted by customer, time
    and offer), so a log read back in another order realises the same outcomes.
    """
    missing = [column for column in ("customer_id", "decided_at", "offer_id") if column not in decisions.columns]
    if missing:
        raise ValueError(f"decisions lack columns {missing}")
    if window_days <= 0:
        raise ValueError(f"window_days must be positive, got {window_days}")
    rng = np.random.default_rng(seed)
    customers = decisions["customer_id"].astype(str).to_numpy(dtype=object)
    offers = decisions["offer_id"].astype(str).to_numpy(dtype=object)
    decided_at = pd.to_datetime(decisions["decided_at"]).to_numpy(dtype="datetime64[us]")
    p_convert = true_outcome_means(ground_truth, customers, offers, "convert")
    revenue = true_outcome_means(ground_truth, customers, offers, "revenue")
    p_unsubscribe = true_outcome_means(ground_truth, customers, offers, "unsubscribe")
    window = np.timedelta64(int(window_days * 86_400e6), "us")
    order = (
        pd.DataFrame({"customer": customers, "at": decided_at, "offer": offers})
        .sort_values(["customer", "at", "offer"], kind="stable")
        .index.to_numpy()
    )

    def uniform() -> np.ndarray:
        """One uniform per row, drawn in the canonical (sorted) row order."""
        values = np.empty(len(customers))
        values[order] = rng.random(len(customers))
        return values

    converted = uniform() < p_convert
    order_at = decided_at + (uniform() * window).astype("timedelta64[us]")
    amount = np.where(p_convert > 0, revenue / np.maximum(p_convert, 1e-12), 0.0)
    transactions = pd.DataFrame(
        {
            "customer_id": pd.array(customers[converted], dtype="str"),
            "ts": pd.to_datetime(order_at[converted]),
            "amount": np.round(amount[converted], 2),
            "order_id": pd.array([f"LOGGED-{seed}-{i}" for i in np.flatnonzero(converted)], dtype="str"),
        }
    )
    unsubscribed = uniform() < p_unsubscribe
    unsubscribe_at = decided_at + (uniform() * window).astype("timedelta64[us]")
    events = pd.DataFrame(
        {
            "customer_id": pd.array(customers[unsubscribed], dtype="str"),
            "ts": pd.to_datetime(unsubscribe_at[unsubscribed]),
            "channel": pd.array(["email"] * int(unsubscribed.sum()), dtype="str"),
            "event_type": pd.array(["unsubscribe"] * int(unsubscribed.sum()), dtype="str"),
        }
    )
    return {"transactions": transactions, "events": events}
