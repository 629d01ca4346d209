"""The next-best-offer decision: which offer, on which channel, when, or nothing, and why.

`decide` runs over a frame of customers (one row each: snapshot features, scores, request
context) in vectorised chunks: price every (offer, channel) option (decision_value), remove
what the hard rules forbid (policy_rules), pick the best allowed option or "no message" (worth
0), draw a small exploration share uniformly among allowed options, log the probability of what
was chosen, schedule the send time (send_time) and write reason codes (reasons).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.catalog import Catalog
from models.decision_value import ValueTerms, value_terms
from models.policy_config import NO_MESSAGE, PolicyConfig
from models.policy_options import FrameColumns, OptionGrid, float_column, timestamp_column, utc_now
from models.policy_rules import (
    NOT_SUPPRESSED,
    RULES,
    RuleMasks,
    apply_sms_preference,
    evaluate_rules,
    hash_uniform,
    reason_flags,
    snapshot_age_days,
    suppression_codes,
)
from models.reasons import Contributions, describe_drivers, join_codes
from models.send_time import (
    HOURS,
    RESPONSES_COLUMN,
    SendSchedule,
    SendTimeModel,
    counts_from_profiles,
    profile_probabilities,
    schedule_send_times,
)

logger = logging.getLogger(__name__)

__all__ = ["DECISION_COLUMNS", "Decisions", "decide"]

#: Columns of `Decisions.table`, in order.
DECISION_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "offer_id",
    "channel",
    "send_at",
    "send_at_local",
    "expected_value",
    "expected_incremental_revenue",
    "expected_cost",
    "uplift_convert",
    "churn_risk",
    "lifecycle_stage",
    "holdout",
    "explored",
    "propensity",
    "eligible_options",
    "reason_codes",
    "churn_drivers",
    "uplift_drivers",
)
#: The text columns' dtype ("str"), resolved once rather than per column and call.
_TEXT = pd.api.types.pandas_dtype("str")
#: `DECISION_COLUMNS` as the tables' column labels (each table gets its own view: names stay apart).
_DECISION_INDEX = pd.Index(DECISION_COLUMNS, dtype=_TEXT)
#: Snapshot feature (engagement family): days since the last send on any channel.
LAST_SEND_DAYS = "days_since_last_send"


@dataclass(frozen=True)
class Decisions:
    """One decision per customer (`table`, columns `DECISION_COLUMNS`) and the option matrices.

    `suppression[i, k]` is 0 when option k (`option_labels[k]`, "offer/channel") was allowed for
    customer i, else 1 + the index in `RULES` of the rule that removed it; `values[i, k]` is its
    expected incremental profit (NaN where it could not be priced). `terms` keeps every value
    term when asked for (`keep_terms=True`).
    """

    table: pd.DataFrame
    option_labels: tuple[str, ...]
    suppression: NDArray[np.uint8]
    values: NDArray[np.float32]
    terms: ValueTerms | None = None

    def rule_of(self, row: int, option: int) -> str | None:
        """Name of the rule that removed `option` for customer `row`, None when it was allowed."""
        code = int(self.suppression[row, option])
        return None if code == NOT_SUPPRESSED else RULES[code - 1]

    def options_for(self, row: int) -> pd.DataFrame:
        """Every option for one customer: its value (and terms when kept) and the rule that removed it."""
        offer_channel = [label.split("/", 1) for label in self.option_labels]
        result = pd.DataFrame(
            {
                "offer_id": [offer for offer, _ in offer_channel],
                "channel": [channel for _, channel in offer_channel],
                "value": self.values[row].astype(float),
                "suppressed_by": [self.rule_of(row, k) for k in range(len(self.option_labels))],
            }
        )
        if self.terms is not None:
            for name in ("uplift_convert", "p_convert", "incremental_margin", "send_cost", "discount_cost", "harm"):
                result[name] = getattr(self.terms, name)[row]
        return result


# ----------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------


def _send_preferences(
    frame: FrameColumns, config: PolicyConfig, model: SendTimeModel | None
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Hour and weekday preference per customer: the model's, else the snapshot profile, else flat."""
    hours, weekdays = profile_probabilities(frame)
    if model is not None:
        hour_counts, weekday_counts = counts_from_profiles(hours, weekdays, frame.floats(RESPONSES_COLUMN))
        segments = frame.objects(config.segment_column) if config.segment_column in frame else None
        return model.predict_proba(hour_counts, weekday_counts, segments=segments)
    if hours is None:
        return np.full((len(frame), HOURS), 1.0 / HOURS), None
    return hours, weekdays


def _earliest_send(
    frame: FrameColumns, config: PolicyConfig, now: np.datetime64, as_of: object | None
) -> NDArray[np.datetime64] | None:
    """Last message (request context, and the snapshot's days since the last send) + minimum gap."""
    if config.min_hours_between_messages <= 0:
        return None
    gap = np.timedelta64(round(config.min_hours_between_messages * 3600e6), "us")
    earliest = np.full(len(frame), np.datetime64("NaT", "us"))
    last_message = timestamp_column(frame, config.last_message_column)
    if last_message is not None:
        earliest = last_message + gap
    days = float_column(frame, LAST_SEND_DAYS)
    if days is not None:
        elapsed = (days + snapshot_age_days(now, as_of)) * 86_400e6
        from_days = now + gap - np.round(np.nan_to_num(elapsed, nan=0.0)).astype("timedelta64[us]")
        from_days = np.where(np.isnan(days), np.datetime64("NaT", "us"), from_days)
        earliest = np.where(np.isnat(earliest) | (from_days > earliest), from_days, earliest)
    return None if np.isnat(earliest).all() else earliest


def _schedule(
    timezones: NDArray[np.object_] | None,
    config: PolicyConfig,
    now: np.datetime64,
    preferences: tuple[NDArray, NDArray | None],
    earliest: NDArray | None,
    urgent: NDArray[np.bool_] | None = None,
) -> SendSchedule:
    return schedule_send_times(
        now,
        timezones,
        preferences[0],
        preferences[1],
        quiet_hours=config.quiet_hours,
        horizon_hours=config.send_horizon_hours,
        earliest=earliest,
        urgent=urgent,
        default_timezone=config.default_timezone,
    )


def _choose(
    values: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    holdout: NDArray[np.bool_],
    explore_draw: NDArray[np.float64],
    pick_draw: NDArray[np.float64],
    epsilon: float,
) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.bool_], NDArray[np.intp], NDArray[np.intp]]:
    """Epsilon-greedy choice with propensities.

    Choice 0 is "no message" (value 0, always allowed), choice k + 1 is option k (its value is
    only read where allowed, so NaN needs no filling). Greedy takes the highest value; ties,
    including a best value of exactly 0, go to "no message". With probability epsilon the choice
    is uniform over allowed choices instead. Returns (choice, propensity, explored, greedy
    choice, number of allowed choices).
    """
    n_rows = len(values)
    scored = np.where(allowed, values, -np.inf)
    scored = np.hstack([np.zeros((n_rows, 1)), scored])
    greedy = np.argmax(scored, axis=1)
    choices_allowed = np.hstack([np.ones((n_rows, 1), dtype=bool), allowed])
    n_allowed = choices_allowed.sum(axis=1)
    explored = (explore_draw < epsilon) & ~holdout
    pick = np.minimum((pick_draw * n_allowed).astype(np.intp), n_allowed - 1)
    uniform = np.argmax(np.cumsum(choices_allowed, axis=1) > pick[:, None], axis=1)
    choice = np.where(explored, uniform, greedy)
    propensity = (1.0 - epsilon) * (choice == greedy) + epsilon / n_allowed
    choice = np.where(holdout, 0, choice)
    propensity = np.where(holdout, 1.0, propensity)
    return choice, propensity, explored, greedy, n_allowed


def _drivers_for_offers(
    contributions: Mapping[str, Contributions],
    frame: pd.DataFrame,
    chunk: slice,
    chosen_offer: NDArray[np.object_],
    top_k: int,
) -> NDArray[np.object_]:
    drivers = np.full(len(chosen_offer), "", dtype=object)
    for offer_id, offer_contributions in contributions.items():
        rows = np.flatnonzero(chosen_offer == offer_id)
        if len(rows) == 0:
            continue
        part = offer_contributions.take(np.arange(chunk.start, chunk.stop)[rows])
        drivers[rows] = describe_drivers(
            part, frame.iloc[rows], top_k=top_k, raises="raises uplift", lowers="lowers uplift"
        )
    return drivers


def _check_contributions(
    frame: pd.DataFrame,
    churn: Contributions | None,
    uplift: Mapping[str, Contributions] | None,
    catalog: Catalog,
) -> None:
    if churn is not None and len(churn.values) != len(frame):
        raise ValueError(f"churn contributions have {len(churn.values)} rows, the frame {len(frame)}")
    for offer_id, contributions in (uplift or {}).items():
        if offer_id not in catalog.offer_ids:
            raise ValueError(f"uplift contributions for unknown offer {offer_id!r}; catalog has {catalog.offer_ids}")
        if len(contributions.values) != len(frame):
            raise ValueError(
                f"uplift contributions of {offer_id!r} have {len(contributions.values)} rows, the frame {len(frame)}"
            )


# ----------------------------------------------------------------------------------------------
# The decision
# ----------------------------------------------------------------------------------------------


def decide(
    frame: pd.DataFrame,
    catalog: Catalog,
    now: object,
    config: PolicyConfig | None = None,
    *,
    as_of: object | None = None,
    send_time_model: SendTimeModel | None = None,
    churn_contributions: Contributions | None = None,
    uplift_contributions: Mapping[str, Contributions] | None = None,
    keep_terms: bool = False,
) -> Decisions:
    """Decide for every customer (row) of `frame` at time `now` (UTC unless tz-aware).

    `frame` carries the snapshot features, `churn_risk`, the per-offer uplift columns and any
    request context (see docs in models/policy_config.py). `as_of` is the snapshot time, used to
    age its day counts. SHAP contributions, rows aligned with `frame`, feed the driver phrases.
    `keep_terms` keeps every value term (for explaining a few customers; memory grows with rows).
    """
    config = config or PolicyConfig()
    now_value = utc_now(now)
    if config.customer_id_column not in frame.columns:
        raise ValueError(f"column {config.customer_id_column!r} (customer id) is missing from the decision input")
    _check_contributions(frame, churn_contributions, uplift_contributions, catalog)
    grid = OptionGrid.cached(catalog, config.channels)
    tables, suppression, values, terms_kept = [], [], [], []
    size = max(1, config.chunk_size)
    for start in range(0, max(len(frame), 1), size):
        chunk = slice(start, min(start + size, len(frame)))
        part = frame if chunk.stop - chunk.start == len(frame) else frame.iloc[chunk]
        table, codes, terms = _decide_chunk(
            part, grid, config, now_value, as_of, send_time_model,
            churn_contributions.take(np.arange(chunk.start, chunk.stop)) if churn_contributions is not None else None,
            uplift_contributions, chunk,
        )  # fmt: skip
        tables.append(table)
        suppression.append(codes)
        values.append(terms.value.astype(np.float32))
        if keep_terms:
            terms_kept.append(terms)
    kept = _concatenate_terms(terms_kept) if keep_terms else None
    decisions = Decisions(
        table=pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0],
        option_labels=grid.labels,
        suppression=np.vstack(suppression),
        values=np.vstack(values),
        terms=kept,
    )
    if logger.isEnabledFor(logging.INFO):
        table = decisions.table
        logger.info(
            "decided %d customers at %s: %d messages, %d in holdout, %d explored",
            len(frame), now_value, int(np.count_nonzero(table["offer_id"].to_numpy(dtype=object) != NO_MESSAGE)),
            int(table["holdout"].to_numpy().sum()), int(table["explored"].to_numpy().sum()),
        )  # fmt: skip
    return decisions


def _concatenate_terms(parts: list[ValueTerms]) -> ValueTerms:
    names = ValueTerms.__dataclass_fields__
    return ValueTerms(
        **{
            name: (
                parts[0].offers_without_source
                if name == "offers_without_source"
                else np.vstack([getattr(p, name) for p in parts])
            )
            for name in names
        }
    )


def _decide_chunk(
    frame: pd.DataFrame,
    grid: OptionGrid,
    config: PolicyConfig,
    now: np.datetime64,
    as_of: object | None,
    send_time_model: SendTimeModel | None,
    churn_contributions: Contributions | None,
    uplift_contributions: Mapping[str, Contributions] | None,
    chunk: slice,
) -> tuple[pd.DataFrame, NDArray[np.uint8], ValueTerms]:
    n_rows = len(frame)
    columns = FrameColumns(frame)
    terms = value_terms(columns, grid, config)
    masks = evaluate_rules(
        columns, grid, config, now,
        has_estimate=terms.has_estimate, offers_without_source=terms.offers_without_source, as_of=as_of,
    )  # fmt: skip
    preferences = _send_preferences(columns, config, send_time_model)
    earliest = _earliest_send(columns, config, now, as_of)
    timezones = columns.objects(config.timezone_column) if config.timezone_column in columns else None
    schedule = _schedule(timezones, config, now, preferences, earliest)
    masks.customer["no_send_slot"] = ~schedule.feasible
    codes = suppression_codes(masks, grid, n_rows)
    apply_sms_preference(codes, masks, grid)
    allowed = (codes == NOT_SUPPRESSED) & np.isfinite(terms.value)

    ids = columns.objects(config.customer_id_column)
    salt = f"{config.seed}|{pd.Timestamp(now).isoformat()}"
    holdout = masks.customer["holdout"]
    choice, propensity, explored, greedy, n_allowed = _choose(
        terms.value, allowed, holdout,
        hash_uniform(ids, f"explore|{salt}"), hash_uniform(ids, f"pick|{salt}"), config.exploration_share,
    )  # fmt: skip
    messaged = choice > 0
    option = np.where(messaged, choice - 1, 0)
    rows = np.arange(n_rows)
    chosen_offer = np.where(messaged, grid.offer_ids[option], NO_MESSAGE)
    chosen_channel = np.where(messaged, grid.option_channels[option], None)

    urgent = messaged & grid.urgent[option]
    if urgent.any():
        urgent_schedule = _schedule(
            None if timezones is None else timezones[urgent], config, now,
            tuple(None if p is None else p[urgent] for p in preferences),
            None if earliest is None else earliest[urgent], np.ones(int(urgent.sum()), dtype=bool),
        )  # fmt: skip
        schedule = _merge_schedule(schedule, urgent_schedule, urgent)

    # The chosen option's terms (0 for "no message"), missing values read 0; the cost as it is.
    picked = (terms.value, terms.incremental_revenue, terms.uplift_convert)
    chosen = np.stack([matrix[rows, option] for matrix in picked])
    expected_value, expected_revenue, uplift_convert = np.where(messaged, np.nan_to_num(chosen), 0.0)
    expected_cost = np.where(messaged, terms.send_cost[rows, option] + terms.discount_cost[rows, option], 0.0)
    reasons = _reason_codes(masks, grid, n_rows, choice, greedy, explored, holdout, n_allowed, schedule, earliest, now)
    churn_drivers = (
        describe_drivers(churn_contributions, frame, top_k=config.top_k_drivers)
        if churn_contributions is not None and config.top_k_drivers > 0
        else np.full(n_rows, "", dtype=object)
    )
    uplift_drivers = (
        _drivers_for_offers(uplift_contributions, frame, chunk, chosen_offer, config.top_k_drivers)
        if uplift_contributions and config.top_k_drivers > 0
        else np.full(n_rows, "", dtype=object)
    )
    churn_risk = columns.floats(config.churn_risk_column)
    churn_risk = np.full(n_rows, np.nan) if churn_risk is None else churn_risk.copy()
    texts = _texts(
        n_rows,
        customer_id=ids.astype(str),
        offer_id=chosen_offer,
        channel=chosen_channel,
        send_at_local=np.where(messaged, schedule.send_at_local, None),
        lifecycle_stage=columns.objects(config.lifecycle_column),
        reason_codes=reasons,
        churn_drivers=churn_drivers,
        uplift_drivers=uplift_drivers,
    )
    by_name = {
        "customer_id": texts["customer_id"],
        "offer_id": texts["offer_id"],
        "channel": texts["channel"],
        "send_at": np.where(messaged, schedule.send_at, np.datetime64("NaT", "us")),
        "send_at_local": texts["send_at_local"],
        "expected_value": expected_value,
        "expected_incremental_revenue": expected_revenue,
        "expected_cost": expected_cost,
        "uplift_convert": uplift_convert,
        "churn_risk": churn_risk,
        "lifecycle_stage": texts["lifecycle_stage"],
        "holdout": holdout,
        "explored": explored,
        "propensity": propensity,
        "eligible_options": (n_allowed - 1).astype(np.int32),
        "reason_codes": texts["reason_codes"],
        "churn_drivers": texts["churn_drivers"],
        "uplift_drivers": texts["uplift_drivers"],
    }
    # Arrays already as they are stored (1-D numpy or "str"), so pandas' checks and copies per column
    # are skipped; the same table as `pd.DataFrame(by_name)`.
    table = pd.DataFrame._from_arrays(
        [by_name[name] for name in DECISION_COLUMNS],
        _DECISION_INDEX.view(),
        pd.RangeIndex(n_rows),
        verify_integrity=False,
    )
    return table, codes, terms


def _texts(n_rows: int, **columns: NDArray[np.object_]) -> dict[str, pd.api.extensions.ExtensionArray]:
    """Text columns as "str" arrays, converted in one call and sliced (pandas' cost is per call, not per value)."""
    text = pd.array(np.concatenate(list(columns.values())), dtype=_TEXT)
    return {name: text[k * n_rows : (k + 1) * n_rows] for k, name in enumerate(columns)}


def _merge_schedule(base: SendSchedule, update: SendSchedule, rows: NDArray[np.bool_]) -> SendSchedule:
    merged = {}
    for name in SendSchedule.__dataclass_fields__:
        values = getattr(base, name).copy()
        values[rows] = getattr(update, name)
        merged[name] = values
    return SendSchedule(**merged)


def _reason_codes(
    masks: RuleMasks,
    grid: OptionGrid,
    n_rows: int,
    choice: NDArray[np.intp],
    greedy: NDArray[np.intp],
    explored: NDArray[np.bool_],
    holdout: NDArray[np.bool_],
    n_allowed: NDArray[np.intp],
    schedule: SendSchedule,
    earliest: NDArray | None,
    now: np.datetime64,
) -> NDArray[np.object_]:
    """Rule codes that removed something, then how the choice was made, then send-time delays."""
    flags, names = reason_flags(masks, grid, n_rows)
    messaged = choice > 0
    gap_delayed = (
        np.zeros(n_rows, dtype=bool) if earliest is None else messaged & ~np.isnat(earliest) & (earliest > now)
    )
    outcome = np.column_stack(
        [
            ~holdout & ~explored & (n_allowed == 1),
            ~holdout & ~explored & (n_allowed > 1) & (greedy == 0),
            ~holdout & ~explored & (greedy > 0),
            explored,
            messaged & schedule.delayed_by_quiet_hours,
            gap_delayed,
        ]
    )
    outcome_names = [
        "no_eligible_option",
        "no_positive_value",
        "best_value",
        "exploration",
        "quiet_hours_delay",
        "min_gap_delay",
    ]
    return join_codes(np.hstack([flags, outcome]), [*names, *outcome_names])
