"""Batch decisions: `nbo decide --data DIR --as-of ... --out decisions.parquet`.

Opens the data, builds the point-in-time snapshot at `as_of`, lays each customer's current
consents, time zone, unsubscribe time and the last send of every catalog offer over it, loads
the deployable `nbo` model (by default `models:/nbo@champion`), decides for every customer,
writes the decisions as Parquet (atomically) and returns the summary with stage timings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.catalog import MESSAGE_CHANNELS
from features.dataset import Dataset
from features.snapshot import build_snapshot, parse_timestamp
from features.storage import write_parquet_atomic
from models.policy import Decisions
from models.policy_config import column_for
from models.policy_summary import DecisionSummary, summarise_decisions
from training.nbo_model import MODEL_NAME, NboModel

logger = logging.getLogger(__name__)

__all__ = [
    "CHAMPION_URI",
    "DecideResult",
    "customer_context",
    "decision_frame",
    "load_nbo_model",
    "run_decide",
]

CHAMPION_URI = f"models:/{MODEL_NAME}@champion"
CUSTOMER_COLUMNS = ("timezone", *(f"{channel}_consent" for channel in MESSAGE_CHANNELS), "unsubscribed_at")


@dataclass
class DecideResult:
    """What a batch run produced: the decisions, their summary, where they went, stage seconds."""

    decisions: Decisions
    summary: DecisionSummary
    out: Path | None
    seconds: dict[str, float] = field(default_factory=dict)


def _last_sends(dataset: Dataset, as_of: pd.Timestamp, offer_ids: Sequence[str]) -> pd.DataFrame | None:
    """Per customer, the last send of each offer before `as_of` (events `send` rows with an offer
    id, and non-control exposures), wide as `last_sent_at__<offer>`."""
    cutoff = as_of.to_pydatetime()
    parts = []
    if dataset.has("events") and "offer_id" in dataset["events"].columns:
        events = dataset["events"]
        sends = events.filter(
            (events.event_type == "send") & events.offer_id.isin(list(offer_ids)) & (events.ts < cutoff)
        )
        parts.append(sends.select("customer_id", "offer_id", sent_at=sends.ts))
    if dataset.has("exposures"):
        exposures = dataset["exposures"]
        assigned = exposures.filter(exposures.offer_id.isin(list(offer_ids)) & (exposures.assigned_at < cutoff))
        parts.append(assigned.select("customer_id", "offer_id", sent_at=assigned.assigned_at))
    if not parts:
        return None
    union = parts[0] if len(parts) == 1 else parts[0].union(parts[1])
    last = union.group_by(["customer_id", "offer_id"]).aggregate(last_sent_at=union.sent_at.max()).to_pandas()
    if last.empty:
        return None
    wide = last.pivot(index="customer_id", columns="offer_id", values="last_sent_at")
    wide.columns = [column_for("last_sent_at", str(offer)) for offer in wide.columns]
    return wide.reset_index()


def customer_context(dataset: Dataset, as_of: pd.Timestamp, offer_ids: Sequence[str]) -> pd.DataFrame | None:
    """Consents, time zone and unsubscribe time from `customers`, and the last send per offer.

    None when the data has neither; customers without a consent column get no message (the
    policy never assumes consent).
    """
    context = None
    if dataset.has("customers"):
        customers = dataset["customers"]
        present = [column for column in CUSTOMER_COLUMNS if column in customers.columns]
        context = customers.select("customer_id", *present).to_pandas()
    else:
        logger.warning("no customers table: without consents nobody can be messaged")
    sends = _last_sends(dataset, as_of, offer_ids)
    if sends is not None:
        context = sends if context is None else context.merge(sends, on="customer_id", how="left")
    return context


def decision_frame(dataset: Dataset, as_of: object, offer_ids: Sequence[str], feature_set: str = "all") -> pd.DataFrame:
    """The decision input for every customer known at `as_of`: snapshot + customer context."""
    as_of = parse_timestamp(as_of, "--as-of")
    snapshot = build_snapshot(dataset, as_of, feature_set=feature_set)
    context = customer_context(dataset, as_of, offer_ids)
    if context is None:
        return snapshot
    overlap = [column for column in context.columns if column != "customer_id" and column in snapshot.columns]
    return snapshot.merge(context.drop(columns=overlap), on="customer_id", how="left")


def load_nbo_model(model_uri: str = CHAMPION_URI) -> NboModel:
    """The NboModel inside a logged pyfunc (`models:/nbo@champion`, `runs:/...`, or a folder)."""
    import mlflow

    loaded = mlflow.pyfunc.load_model(model_uri)
    model = loaded.unwrap_python_model()
    if not isinstance(model, NboModel):
        raise ValueError(
            f"{model_uri} is not an nbo decision model (found {type(model).__name__}); package one with `nbo package`"
        )
    return model


def run_decide(
    dataset: Dataset,
    as_of: object,
    out: str | Path | None,
    *,
    model: NboModel | None = None,
    model_uri: str = CHAMPION_URI,
    now: object | None = None,
    feature_set: str | None = None,
    threads: int | None = None,
) -> DecideResult:
    """Decide for every customer at `as_of` (decision time `now`, default `as_of`); write `out`.

    `threads` sets the models' prediction threads (None: as trained).
    """
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    nbo = model if model is not None else load_nbo_model(model_uri)
    if threads is not None:
        nbo.threads = threads
    seconds["load_model"] = time.perf_counter() - started
    as_of = parse_timestamp(as_of, "--as-of")
    feature_set = feature_set or nbo.metadata.get("decision_feature_set", "all")

    started = time.perf_counter()
    frame = decision_frame(dataset, as_of, nbo.catalog.offer_ids, feature_set=feature_set)
    seconds["snapshot"] = time.perf_counter() - started

    started = time.perf_counter()
    decisions = nbo.decisions(frame, now=now, as_of=as_of)
    seconds["decide"] = time.perf_counter() - started

    path = None
    if out is not None:
        started = time.perf_counter()
        path = write_parquet_atomic(decisions.table, out)
        seconds["write"] = time.perf_counter() - started
    summary = summarise_decisions(decisions)
    logger.info(
        "decided %d customers as of %s: %d messages, %d in holdout (%s)",
        summary.customers, as_of, summary.messages, summary.holdout,
        ", ".join(f"{name} {value:.1f}s" for name, value in seconds.items()),
    )  # fmt: skip
    return DecideResult(decisions, summary, path, seconds)


def summary_lines(result: DecideResult) -> list[str]:
    """Plain-text summary lines (for logs and tests; the CLI prints tables)."""
    summary = result.summary
    lines = [
        f"customers {summary.customers:,}, messages {summary.messages:,}, holdout {summary.holdout:,}, "
        f"explored {summary.explored:,}",
        f"expected incremental profit {summary.expected_value:,.2f}, incremental revenue "
        f"{summary.expected_incremental_revenue:,.2f}, cost {summary.expected_cost:,.2f}",
    ]
    for row in summary.by_offer_channel.itertuples(index=False):
        lines.append(f"  {row.offer_id}/{row.channel}: {row.messages:,}")
    for row in summary.suppressed_by_rule.itertuples(index=False):
        if row.customers:
            lines.append(f"  suppressed by {row.rule}: {row.customers:,} customers, {row.options:,} options")
    return lines


def as_dict(result: DecideResult) -> dict[str, Any]:
    """JSON-ready summary with timings."""
    return {
        **result.summary.as_dict(),
        "seconds": result.seconds,
        "out": None if result.out is None else str(result.out),
    }
