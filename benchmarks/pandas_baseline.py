"""The straightforward pandas version of the RFM + engagement features (the benchmark's yardstick).

What a data scientist would write without a query engine: read the Parquet files into pandas,
filter by time, one `groupby` per window, merge. It computes exactly the columns of the
`rfm_engagement` feature set with the same definitions (features/families/rfm.py and
engagement.py), so its output can be compared value by value with `build_snapshot`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WINDOWS = (7, 30, 90, 365)
CHANNELS = ("email", "sms", "push")
MESSAGE_EVENTS = (("sends", "send"), ("opens", "open"), ("clicks", "click"))
OPT_OUT_EVENTS = (("unsubscribed", "unsubscribe"), ("bounced", "bounce"), ("complained", "complaint"))
LAST_SEEN = ("send", "open", "click", "visit", "login")
PRIOR_SENDS = 10.0
COLUMNS = {
    "customers": ["customer_id", "signup_at", "unsubscribed_at"],
    "transactions": ["customer_id", "ts", "amount", "order_id"],
    "events": ["customer_id", "ts", "channel", "event_type"],
}


def read_world(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The three tables the subset needs, read whole into pandas (only the needed columns)."""
    folder = Path(folder)
    return {name: pd.read_parquet(folder / f"{name}.parquet", columns=columns) for name, columns in COLUMNS.items()}


def _days_ago(timestamps: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """Days from each timestamp to as_of, counting whole seconds (as the snapshot does)."""
    whole_seconds = timestamps.astype("datetime64[us]").dt.floor("s")
    return (as_of - whole_seconds).dt.total_seconds() / 86_400.0


def _score(values: pd.Series) -> pd.Series:
    worse = values.rank(method="min") - 1
    return (5 * worse // len(values) + 1).astype("float64")


def rfm(transactions: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """RFM per buyer: recency, frequency and monetary (all history and per window), scores."""
    history = transactions[transactions["ts"] < as_of]
    orders = history.groupby(["customer_id", "order_id"], as_index=False).agg(
        ts=("ts", "min"), amount=("amount", "sum")
    )
    by_customer = orders.groupby("customer_id")
    result = pd.DataFrame(
        {
            "last_order_at": by_customer["ts"].max(),
            "frequency": by_customer.size(),
            "monetary": by_customer["amount"].sum(),
        }
    )
    for days in WINDOWS:
        recent = orders[orders["ts"] >= as_of - pd.Timedelta(days=days)]
        grouped = recent.groupby("customer_id")
        result[f"frequency_{days}d"] = grouped.size().reindex(result.index, fill_value=0)
        result[f"monetary_{days}d"] = grouped["amount"].sum().reindex(result.index, fill_value=0.0)
    result["recency_days"] = _days_ago(result["last_order_at"], as_of)
    result["avg_order_value"] = result["monetary"] / result["frequency"]
    result["r_score"] = _score(result["last_order_at"])
    result["f_score"] = _score(result["frequency"])
    result["m_score"] = _score(result["monetary"].round(6))
    total = result["r_score"] + result["f_score"] + result["m_score"]
    result["rfm_segment"] = np.select([total >= 14, total >= 11, total >= 8, total >= 5], ["A", "B", "C", "D"], "E")
    return result.drop(columns="last_order_at")


def _column(table: pd.DataFrame, key: object, population: pd.Index) -> pd.Series:
    """`table[key]` aligned to the population, 0 where the key or the customer is absent."""
    if key not in table.columns:
        return pd.Series(0, index=population, dtype="int64")
    return table[key].reindex(population, fill_value=0).astype("int64")


def engagement(
    events: pd.DataFrame, customers: pd.DataFrame, population: pd.Index, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Per-channel counts per window, pooled-prior rates, trends, flags and days since last."""
    history = events[events["ts"] < as_of]
    columns: dict[str, pd.Series] = {}
    keys = ["customer_id", "channel", "event_type"]
    for days in WINDOWS:
        recent = history[history["ts"] >= as_of - pd.Timedelta(days=days)]
        counts = recent.groupby(keys).size().unstack(["channel", "event_type"], fill_value=0)
        for channel in CHANNELS:
            for plural, event_type in MESSAGE_EVENTS:
                columns[f"{channel}_{plural}_{days}d"] = _column(counts, (channel, event_type), population)
    prior = history[
        (history["ts"] >= as_of - pd.Timedelta(days=60))
        & (history["ts"] < as_of - pd.Timedelta(days=30))
        & history["event_type"].isin(["open", "click"])
    ]
    prior_counts = prior.groupby(["customer_id", "channel"]).size().unstack(fill_value=0)
    ever = history.groupby(keys).size().unstack(["channel", "event_type"], fill_value=0)
    for channel in CHANNELS:
        sends = columns[f"{channel}_sends_365d"]
        for kind, plural in (("open", "opens"), ("click", "clicks")):
            hits = columns[f"{channel}_{plural}_365d"]
            pooled = hits.sum() / sends.sum() if sends.sum() > 0 else np.nan
            columns[f"{channel}_{kind}_rate_365d"] = (hits + PRIOR_SENDS * pooled) / (sends + PRIOR_SENDS)
        recent = columns[f"{channel}_opens_30d"] + columns[f"{channel}_clicks_30d"]
        before = _column(prior_counts, channel, population)
        total = recent + before
        columns[f"{channel}_engagement_trend_30d"] = ((recent - before) / total).where(total > 0)
        for flag, event_type in OPT_OUT_EVENTS:
            columns[f"{channel}_{flag}"] = (_column(ever, (channel, event_type), population) > 0).astype("int64")
    unsubscribed = customers.loc[customers["unsubscribed_at"] < as_of, "customer_id"]
    columns["email_unsubscribed"] = (
        (columns["email_unsubscribed"] > 0) | population.isin(unsubscribed).astype(bool)
    ).astype("int64")
    last_seen = (
        history[history["event_type"].isin(LAST_SEEN)].groupby(["customer_id", "event_type"])["ts"].max().unstack()
    )
    for event_type in LAST_SEEN:
        when = last_seen[event_type].reindex(population)
        columns[f"days_since_last_{event_type}"] = _days_ago(when, as_of)
    by_type = {}
    for days in (30, 90):
        recent = history[history["ts"] >= as_of - pd.Timedelta(days=days)]
        by_type[days] = recent.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
    for plural, event_type in (("visits", "visit"), ("logins", "login")):
        for days in (30, 90):
            columns[f"{plural}_{days}d"] = _column(by_type[days], event_type, population)
    columns["support_tickets_90d"] = _column(by_type[90], "support_ticket", population)
    columns["failed_payments_30d"] = _column(by_type[30], "payment_failed", population)
    click_rates = pd.DataFrame(
        {
            channel: columns[f"{channel}_click_rate_365d"].where(columns[f"{channel}_sends_365d"] > 0)
            for channel in CHANNELS
        }
    )
    best = click_rates.fillna(-1.0).idxmax(axis=1)
    columns["best_channel"] = best.where(click_rates.notna().any(axis=1))
    return pd.DataFrame(columns, index=population)


def rfm_engagement(frames: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """The `rfm_engagement` feature set, one row per customer known before as_of."""
    customers, transactions = frames["customers"], frames["transactions"]
    buyers = transactions.loc[transactions["ts"] < as_of, "customer_id"]
    signed_up = customers.loc[customers["signup_at"] < as_of, "customer_id"]
    population = pd.Index(sorted(set(buyers) | set(signed_up)), name="customer_id")
    recency = rfm(transactions, as_of).reindex(population)
    for column in [name for name in recency.columns if name.startswith("frequency")]:
        recency[column] = recency[column].fillna(0).astype("int64")
    for column in [name for name in recency.columns if name.startswith("monetary")]:
        recency[column] = recency[column].fillna(0.0)
    recency["rfm_segment"] = recency["rfm_segment"].where(recency["frequency"] > 0)
    result = recency.join(engagement(frames["events"], customers, population, as_of))
    return result.reset_index()
