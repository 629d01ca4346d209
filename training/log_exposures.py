"""Training rows from the decision log: randomised decisions, their outcomes and their features.

The service (and batch runs that log) write every decision with the probability with which the
policy chose it. A decision is usable for learning effects when that choice was random with a
known probability:
- **holdout** decisions (a hash of the customer id, independent of features and outcomes, puts
  the customer in the control group): logged probability 1 of control within the holdout;
- **epsilon-greedy** decisions whose logged probability is below 1: the exploration draw made
  the chosen option random (explored options have probability epsilon / allowed options, the
  greedy one 1 - epsilon + epsilon / allowed options), and the log holds that exact probability.
Decisions with probability 1 outside the holdout (only one option was allowed, or exploration
was off) carry no randomisation and are dropped, counted in the report.

Each kept decision gets outcomes from the `window_days` after `decided_at` (orders, revenue,
unsubscribe events at or after the decision, none before: point in time) and snapshot features
as of the first decision of its day (strictly earlier data, so no row sees its own outcome).
Decisions whose window is not yet complete are dropped. The logged probability enters learning
as the known propensity of the row's arm; its inverse is the row's weight, capped at
`max_weight` (probabilities floored at 1 / max_weight); how many rows were capped is reported.
Arms are offers (no message and holdout = `control`); the logged probability is the one of the
(offer, channel) option, which equals the offer's when the offer had one allowed channel.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CONTROL_OFFER_ID
from features.dataset import Dataset
from features.snapshot import data_bounds, parse_timestamp

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_WEIGHT",
    "LoggedExposures",
    "decision_features",
    "decision_outcomes",
    "log_exposures",
    "read_decision_log",
    "snapshot_feature_columns",
]

DEFAULT_MAX_WEIGHT = 200.0
#: Logged offer ids that mean "nothing was sent".
CONTROL_LABELS = ("no_message", "holdout", CONTROL_OFFER_ID)
OUTCOME_COLUMNS = ("outcome_convert", "outcome_revenue", "outcome_unsubscribe")


@dataclass
class LoggedExposures:
    """Kept decisions (one row each) with arm, probability, weight, outcomes and features."""

    frame: pd.DataFrame
    feature_columns: list[str]
    report: dict[str, Any] = field(default_factory=dict)


def read_decision_log(path: str | Path) -> pd.DataFrame:
    """Every logged decision: decision_id, customer_id, decided_at (tz-naive UTC), offer_id
    (`control` for no message and holdout), channel, propensity, holdout, explored, model_version."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decision log {path} does not exist; point --log at the service's NBO_DECISION_LOG")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            frame = pd.read_sql_query(
                "SELECT decision_id, customer_id, decided_at, offer_id, channel, propensity, holdout, explored, "
                "model_version FROM decisions ORDER BY decided_at, rowid",
                connection,
            )
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a decision log (SQLite table 'decisions'): {error}") from None
    if frame.empty:
        raise ValueError(f"decision log {path} holds no decisions")
    frame["decided_at"] = (
        pd.to_datetime(frame["decided_at"], utc=True, format="ISO8601").dt.tz_localize(None).astype("datetime64[us]")
    )
    frame["logged_offer_id"] = frame["offer_id"]
    frame["offer_id"] = frame["offer_id"].where(~frame["offer_id"].isin(CONTROL_LABELS), CONTROL_OFFER_ID)
    frame["holdout"] = frame["holdout"].astype(bool)
    frame["explored"] = frame["explored"].astype(bool)
    frame["propensity"] = frame["propensity"].astype(float)
    bad = ~((frame["propensity"] > 0) & (frame["propensity"] <= 1))
    if bad.any():
        raise ValueError(
            f"decision log {path}: {int(bad.sum())} decisions have a probability outside (0, 1], e.g. "
            f"{frame.loc[bad, 'propensity'].head(3).tolist()}"
        )
    frame["campaign_id"] = "nbo-" + frame["decided_at"].dt.strftime("%Y-%m-%d")
    return frame


def decision_outcomes(dataset: Dataset, decisions: pd.DataFrame, window_days: float) -> pd.DataFrame:
    """outcome_convert / outcome_revenue / outcome_unsubscribe per decision_id from the
    transactions (and unsubscribe events) in [decided_at, decided_at + window_days)."""
    window = pd.Timedelta(days=float(window_days))
    start, stop = decisions["decided_at"].min(), decisions["decided_at"].max() + window
    keys = decisions[["decision_id", "customer_id", "decided_at"]]
    customers = sorted(set(keys["customer_id"]))

    def rows_in_window(table: Any) -> pd.DataFrame:
        near = table.filter(
            (table.ts >= start.to_pydatetime()) & (table.ts < stop.to_pydatetime()) & table.customer_id.isin(customers)
        )
        found = near.to_pandas()
        joined = keys.merge(found, on="customer_id", how="inner")
        inside = (joined["ts"] >= joined["decided_at"]) & (joined["ts"] < joined["decided_at"] + window)
        return joined[inside]

    transactions = dataset["transactions"]
    orders = rows_in_window(transactions.select("customer_id", "ts", "amount"))
    result = pd.DataFrame({"decision_id": decisions["decision_id"].to_numpy()})
    counts = orders.groupby("decision_id")["amount"].agg(["count", "sum"])
    result["outcome_convert"] = (result["decision_id"].map(counts["count"]).fillna(0) > 0).astype(float)
    result["outcome_revenue"] = result["decision_id"].map(counts["sum"]).fillna(0.0).astype(float)
    if dataset.has("events"):
        events = dataset["events"]
        unsubscribes = rows_in_window(events.filter(events.event_type == "unsubscribe").select("customer_id", "ts"))
        result["outcome_unsubscribe"] = result["decision_id"].isin(set(unsubscribes["decision_id"])).astype(float)
    else:
        result["outcome_unsubscribe"] = np.nan
    return result


def decision_features(
    dataset: Dataset, decisions: pd.DataFrame, feature_set: str = "all", offer_ids: Sequence[str] = ()
) -> pd.DataFrame:
    """Per decision_id the decision input (snapshot + customer context) as of the first decision
    of its day, built from data strictly before that time."""
    from training.decide import decision_frame

    offers = sorted({*offer_ids, *(set(decisions["offer_id"]) - {CONTROL_OFFER_ID})})
    parts = []
    for _, day in decisions.groupby("campaign_id", sort=True):
        as_of = day["decided_at"].min()
        frame = decision_frame(dataset, as_of, offers, feature_set=feature_set)
        merged = day[["decision_id", "customer_id"]].merge(frame, on="customer_id", how="inner")
        parts.append(merged)
    features = pd.concat(parts, ignore_index=True)
    lost = len(decisions) - len(features)
    if lost:
        logger.info("%d logged decisions have customers unknown to the data before their decision", lost)
    return features


def snapshot_feature_columns(frame: pd.DataFrame) -> list[str]:
    """The snapshot features of a decision input: no keys, labels, time stamps or customer
    context (consents, time zone, unsubscribe time, last sends), which the policy reads but
    learners must not."""
    from training.churn import feature_columns
    from training.decide import CUSTOMER_COLUMNS

    context = {*CUSTOMER_COLUMNS, "decision_id"}
    return [
        column
        for column in feature_columns(frame)
        if column not in context
        and not column.startswith("last_sent_at__")
        and not pd.api.types.is_datetime64_any_dtype(frame[column])
    ]


def log_exposures(
    log_path: str | Path,
    dataset: Dataset,
    *,
    window_days: float = 14.0,
    feature_set: str = "all",
    observed_until: object | None = None,
    max_weight: float = DEFAULT_MAX_WEIGHT,
    offer_ids: Sequence[str] = (),
) -> LoggedExposures:
    """Randomised logged decisions with outcomes, features, propensity and capped IPW weight.

    `observed_until` (default: the last transaction) is when outcomes stop being known; a
    decision is kept only when its whole window ends by then. See the module docstring.
    """
    if window_days <= 0:
        raise ValueError(f"--window-days must be positive, got {window_days}")
    if max_weight < 1:
        raise ValueError(f"--max-weight must be at least 1 (weights are 1 / probability), got {max_weight}")
    logged = read_decision_log(log_path)
    report: dict[str, Any] = {"logged": len(logged)}
    first_in_day = ~logged.duplicated(["customer_id", "campaign_id"], keep="first")
    report["repeat_same_day"] = int((~first_in_day).sum())
    decisions = logged[first_in_day]
    randomised = decisions["holdout"] | (decisions["propensity"] < 1.0)
    report["deterministic_dropped"] = int((~randomised).sum())
    decisions = decisions[randomised]
    until = data_bounds(dataset)[1] if observed_until is None else parse_timestamp(observed_until, "--observed-until")
    complete = decisions["decided_at"] + pd.Timedelta(days=float(window_days)) <= until
    report["incomplete_window_dropped"] = int((~complete).sum())
    report["observed_until"] = str(until)
    decisions = decisions[complete].reset_index(drop=True)
    if decisions.empty:
        raise ValueError(
            f"no randomised decision in the log has a complete {window_days:g}-day outcome window by {until} "
            f"({report['logged']} logged, {report['deterministic_dropped']} not randomised, "
            f"{report['incomplete_window_dropped']} with windows still open); "
            "wait for outcomes or shorten --window-days"
        )
    outcomes = decision_outcomes(dataset, decisions, window_days)
    features = decision_features(dataset, decisions, feature_set, offer_ids)
    keep = ["decision_id", "campaign_id", "offer_id", "logged_offer_id", "channel", "decided_at", "propensity",
            "holdout", "explored", "model_version"]  # fmt: skip
    frame = decisions[keep].merge(outcomes, on="decision_id").merge(features, on="decision_id", how="inner")
    frame = frame.rename(columns={"decided_at": "assigned_at"}).copy()  # consolidated blocks
    floor = 1.0 / max_weight
    report["clipped"] = int((frame["propensity"] < floor).sum())
    report["max_weight"] = float(max_weight)
    frame["propensity"] = frame["propensity"].clip(lower=floor)
    frame["weight"] = 1.0 / frame["propensity"]
    report["rows"] = len(frame)
    report["holdout_rows"] = int(frame["holdout"].sum())
    report["explored_rows"] = int(frame["explored"].sum())
    report["arms"] = {str(arm): int(count) for arm, count in frame["offer_id"].value_counts().sort_index().items()}
    report["effective_sample_size"] = float(frame["weight"].sum() ** 2 / (frame["weight"] ** 2).sum())
    columns = snapshot_feature_columns(features)
    logger.info(
        "decision log %s: %d logged, %d kept (%d holdout, %d explored), %d weights capped at %g",
        log_path, report["logged"], report["rows"], report["holdout_rows"], report["explored_rows"],
        report["clipped"], max_weight,
    )  # fmt: skip
    return LoggedExposures(frame=frame, feature_columns=columns, report=report)
