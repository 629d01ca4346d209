"""Labels from the window after the as-of time: [as_of, as_of + horizon).

`label_churned` is 1 when the customer places no order in the window, `label_purchases`
counts orders (distinct order_id; rows when there is no order_id column) and `label_revenue` sums their amount.
Labels are only defined when the data reaches the window's end, so a window that runs past
the last transaction is refused rather than silently calling everyone a churner.
"""

from __future__ import annotations

import numbers

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.dataset import Dataset
from features.families.common import join_on_customer, order_key

LABEL_COLUMNS = ("label_churned", "label_purchases", "label_revenue")
LABEL_DTYPES = {"label_churned": "int64", "label_purchases": "int64", "label_revenue": "float64"}


def check_horizon(horizon_days: int, as_of: pd.Timestamp, last_timestamp: pd.Timestamp) -> None:
    """ValueError unless the label window [as_of, as_of + horizon) ends within the data."""
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, numbers.Integral) or horizon_days < 1:
        raise ValueError(f"horizon_days must be a positive whole number of days, got {horizon_days!r}")
    window_end = as_of + pd.Timedelta(days=int(horizon_days))
    if window_end > last_timestamp:
        latest_as_of = last_timestamp - pd.Timedelta(days=int(horizon_days))
        raise ValueError(
            f"the label window [{as_of}, {window_end}) runs past the end of the data: the last "
            f"transaction is at {last_timestamp}. Use an as-of time no later than {latest_as_of} "
            f"or a horizon of at most {(last_timestamp - as_of).days} days"
        )


def label_table(dataset: Dataset, as_of: pd.Timestamp, horizon_days: int) -> ir.Table:
    """Orders and revenue per customer in [as_of, as_of + horizon), buyers only."""
    transactions = dataset["transactions"]
    start = ibis.timestamp(as_of.to_pydatetime())
    end = ibis.timestamp((as_of + pd.Timedelta(days=int(horizon_days))).to_pydatetime())
    window = transactions.filter((transactions.ts >= start) & (transactions.ts < end))
    purchases = order_key(window).nunique() if "order_id" in window.columns else window.count()
    return window.group_by("customer_id").aggregate(label_purchases=purchases, label_revenue=window.amount.sum())


def attach_labels(table: ir.Table, dataset: Dataset, as_of: pd.Timestamp, horizon_days: int) -> ir.Table:
    """Add the three label columns to a snapshot keyed by customer_id."""
    joined = join_on_customer(table, label_table(dataset, as_of, horizon_days))
    purchases = joined.label_purchases.fill_null(0)
    return joined.mutate(
        label_churned=(purchases == 0).cast("int64"),
        label_purchases=purchases,
        label_revenue=joined.label_revenue.fill_null(0.0),
    )
