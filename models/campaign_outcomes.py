"""Campaign outcomes per exposure, point in time: what each assigned customer did afterwards.

Contract rule (docs/CONTRACT.md): outcomes are read from transactions and events in a window
after `assigned_at` — only rows with `assigned_at <= ts < assigned_at + window` count, so
nothing before the exposure leaks in. Also the offers' costs per exposure from the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.catalog import Catalog
from features.contract import CONTROL_OFFER_ID

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = pd.Timedelta(days=14)
EXPOSURE_COLUMNS = ("customer_id", "campaign_id", "offer_id", "assigned_at")
# Outcomes read from events: name -> event_type.
EVENT_OUTCOMES = {"visit": "visit", "unsubscribe": "unsubscribe"}


def _require(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{table} lacks column(s) {missing}; it has {list(frame.columns)} (see docs/CONTRACT.md)"
        )


def campaign_ids(exposures: pd.DataFrame) -> list[str]:
    """The campaigns in an exposures table, sorted."""
    _require(exposures, ["campaign_id"], "exposures")
    return sorted(exposures["campaign_id"].dropna().astype(str).unique())


def select_campaign(exposures: pd.DataFrame, campaign_id: str | None) -> pd.DataFrame:
    """One campaign's exposures; with None, the only campaign there is.

    An unknown or missing id raises a ValueError listing the known campaigns.
    """
    known = campaign_ids(exposures)
    if not known:
        raise ValueError("the exposures table is empty: no campaign to analyse")
    if campaign_id is None:
        if len(known) > 1:
            raise ValueError(f"several campaigns in the exposures; pick one with --campaign-id: {', '.join(known)}")
        campaign_id = known[0]
    if campaign_id not in known:
        raise ValueError(f"unknown campaign id {campaign_id!r}; known campaigns: {', '.join(known)}")
    return exposures.loc[exposures["campaign_id"] == campaign_id].reset_index(drop=True)


def _window_counts(
    base: pd.DataFrame, rows: pd.DataFrame, window: pd.Timedelta, value: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per exposure row: number of `rows` in its window and the sum of `value` over them."""
    joined = base[["row", "customer_id", "assigned_at"]].merge(rows, on="customer_id", how="inner")
    inside = (joined["ts"] >= joined["assigned_at"]) & (joined["ts"] < joined["assigned_at"] + window)
    joined = joined.loc[inside]
    counts = np.bincount(joined["row"].to_numpy(), minlength=len(base)).astype("int64")
    if value is None:
        return counts, np.zeros(len(base))
    sums = np.bincount(
        joined["row"].to_numpy(), weights=joined[value].to_numpy(dtype="float64"), minlength=len(base)
    )
    return counts, sums


def campaign_outcomes(
    exposures: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    window: pd.Timedelta = DEFAULT_WINDOW,
    events: pd.DataFrame | None = None,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The exposures with `orders`, `conversion` (0/1), `revenue` and, from events, `visit` and
    `unsubscribe` (0/1) counted in [assigned_at, assigned_at + window).

    With `data_end` (where the data stops), `window_complete` says whether the whole window
    lies before it; outcomes of incomplete windows are undercounted.
    """
    _require(exposures, EXPOSURE_COLUMNS, "exposures")
    _require(transactions, ["customer_id", "ts", "amount"], "transactions")
    window = pd.Timedelta(window)
    if window <= pd.Timedelta(0):
        raise ValueError(f"the outcome window must be positive, got {window}")
    repeated = exposures.duplicated(["customer_id", "campaign_id"])
    if repeated.any():
        examples = exposures.loc[repeated, "customer_id"].head(3).tolist()
        raise ValueError(
            f"exposures: {int(repeated.sum())} (customer_id, campaign_id) pairs repeat "
            f"(examples: {examples}); each customer is assigned once per campaign"
        )
    base = exposures.reset_index(drop=True).copy()
    base["customer_id"] = base["customer_id"].astype("str")
    base["row"] = np.arange(len(base))
    orders = transactions[["customer_id", "ts", "amount"]].astype({"customer_id": "str"})
    counts, revenue = _window_counts(base, orders, window, "amount")
    base["orders"] = counts
    base["conversion"] = (counts > 0).astype("int64")
    base["revenue"] = revenue
    if events is not None:
        _require(events, ["customer_id", "ts", "event_type"], "events")
        for outcome, event_type in EVENT_OUTCOMES.items():
            chosen = events.loc[events["event_type"] == event_type, ["customer_id", "ts"]]
            chosen = chosen.astype({"customer_id": "str"})
            event_counts, _ = _window_counts(base, chosen, window, None)
            base[outcome] = (event_counts > 0).astype("int64")
    if data_end is not None:
        base["window_complete"] = (base["assigned_at"] + window) <= pd.Timestamp(data_end)
    return base.drop(columns="row")


def decision_log_arms(exposures: pd.DataFrame) -> pd.DataFrame:
    """Decision-log exposures relabelled for analysis: the random holdout is the control.

    `serving.decision_log.read_exposures` maps both the holdout and "no message" decisions to
    `control`; only the holdout is randomised, so no-message decisions become arm `no_message`.
    """
    _require(exposures, [*EXPOSURE_COLUMNS, "holdout"], "decision log exposures")
    frame = exposures.copy()
    holdout = frame["holdout"].astype(bool)
    frame["offer_id"] = frame["offer_id"].astype("str")
    frame.loc[~holdout & (frame["offer_id"] == CONTROL_OFFER_ID), "offer_id"] = "no_message"
    frame.loc[holdout, "offer_id"] = CONTROL_OFFER_ID
    return frame


def attach_costs(
    outcomes: pd.DataFrame,
    *,
    arm_col: str = "offer_id",
    control: str = CONTROL_OFFER_ID,
    catalog: Catalog | None = None,
    cost_per_send: float | None = None,
    conversion_col: str | None = "conversion",
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Add `send_cost` and `redemption_cost` per exposure; return them with each arm's margin.

    Send cost: `cost_per_send` when given, else the catalog's cost on the exposure's channel.
    Redemption cost: the catalog's `fixed_cost` for every converting customer (free shipping is
    paid by everyone who orders, including those who would have ordered anyway). Discounts are
    already netted out of revenue (transactions.amount is after discount). Arms the catalog does
    not know, or sent on a channel it has no cost for, get NaN costs unless `cost_per_send` is
    given. Control rows cost nothing.
    """
    _require(outcomes, [arm_col], "campaign table")
    if cost_per_send is not None and (not np.isfinite(cost_per_send) or cost_per_send < 0):
        raise ValueError(f"cost per send must be >= 0, got {cost_per_send!r}")
    frame = outcomes.copy()
    arms = frame[arm_col].astype("str")
    frame["send_cost"] = np.nan
    frame["redemption_cost"] = np.nan
    frame.loc[arms == str(control), ["send_cost", "redemption_cost"]] = 0.0
    known = set(catalog.offer_ids) if catalog is not None else set()
    margins: dict[str, float] = {}
    for arm in sorted(set(arms) - {str(control)}):
        rows = arms == arm
        offer = catalog.offer(arm) if arm in known else None
        if cost_per_send is not None:
            frame.loc[rows, "send_cost"] = float(cost_per_send)
        elif offer is not None:
            frame.loc[rows, "send_cost"] = _send_costs(frame.loc[rows], offer, arm)
        if offer is not None:
            margins[arm] = float(offer.margin)
            fixed = float(offer.fixed_cost or 0.0)
            converted = frame.loc[rows, conversion_col] if conversion_col in frame else 0
            frame.loc[rows, "redemption_cost"] = fixed * converted
        elif cost_per_send is not None:
            frame.loc[rows, "redemption_cost"] = 0.0
    return frame, margins


def _send_costs(rows: pd.DataFrame, offer, arm: str) -> pd.Series:
    """The catalog's cost of each row's channel; a single-channel offer needs no channel column."""
    if "channel" not in rows or rows["channel"].isna().all():
        if len(offer.cost_per_send) == 1:
            return pd.Series(next(iter(offer.cost_per_send.values())), index=rows.index)
        raise ValueError(
            f"exposures of offer {arm!r} have no channel, and its cost depends on the channel "
            f"({offer.cost_per_send}); add a channel column or give --cost-per-send"
        )
    costs = rows["channel"].map(lambda channel: offer.cost_per_send.get(channel, np.nan))
    unknown = sorted(set(rows.loc[costs.isna(), "channel"].dropna().astype(str)))
    if unknown:
        logger.warning(
            "offer %r was sent on channel(s) %s with no cost in the catalog (costs: %s); its cost is unknown",
            arm, unknown, offer.cost_per_send,
        )  # fmt: skip
    return costs.astype("float64")
