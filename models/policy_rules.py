"""Hard rules: which (offer, channel) options each customer may not receive, and why.

Every rule yields a boolean mask at its natural scope (customer, channel, offer or option);
`suppression_codes` folds them into one customers x options matrix holding, for each removed
option, the first rule (in `RULES` order) that removed it. `reason_flags` lists every rule
that removed anything for a customer, for the reason codes. The holdout is a deterministic
hash of the customer id, the same in every run, process and machine.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from features.catalog import MESSAGE_CHANNELS, Offer
from models.policy_config import PolicyConfig, column_for
from models.policy_options import (
    DAY,
    URGENT_KINDS,
    FrameColumns,
    OptionGrid,
    days_since,
    days_since_values,
    float_column,
    purchase_recency_column,
    timestamp_column,
)

logger = logging.getLogger(__name__)

__all__ = [
    "NOT_SUPPRESSED",
    "RULES",
    "RuleMasks",
    "evaluate_rules",
    "hash_uniform",
    "in_holdout",
    "reason_flags",
    "snapshot_age_days",
    "suppression_codes",
]

#: Rules in precedence order; an option's suppression code is 1 + the index of the first rule
#: that removed it (0 = allowed).
RULES: tuple[str, ...] = (
    "holdout",
    "no_consent",
    "unsubscribed",
    "complained",
    "bounced",
    "lifecycle",
    "no_failed_payment",
    "no_estimate",
    "cooldown",
    "recent_purchase",
    "frequency_cap",
    "no_send_slot",
    "sms_preferred",
)
NOT_SUPPRESSED = 0
_CODE = {rule: position + 1 for position, rule in enumerate(RULES)}
#: Offer-level eligibility rules: the normal state of most offers for most customers. They stay
#: in the suppression matrix but not in the reason codes (the stage is its own column), and the
#: other offer-level rules are only reported for offers the customer is eligible for.
_ELIGIBILITY_RULES = ("lifecycle", "no_failed_payment")


# ----------------------------------------------------------------------------------------------
# Deterministic hashing: holdout and exploration draws
# ----------------------------------------------------------------------------------------------


def _hash_key(salt: str) -> str:
    """A 16-character SipHash key derived from `salt` (sha256, hex)."""
    return hashlib.sha256(salt.encode("utf-8")).hexdigest()[:16]


def hash_uniform(keys: ArrayLike, salt: str) -> NDArray[np.float64]:
    """A uniform number in [0, 1) per key, fixed by (key, salt) alone.

    SipHash-2-4 of the UTF-8 key under a salt-derived key, then pandas' splitmix64 finaliser
    (`pandas.util.hash_array(..., categorize=False)`), top 53 bits. Independent of row order,
    batch, process and Python's hash seed, and reproducible outside Python from this definition.
    """
    values = np.asarray(keys, dtype=object)
    if values.ndim != 1:
        raise ValueError(f"keys must be one-dimensional, got shape {values.shape}")
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(f"customer ids must not be missing: {int(missing.sum())} rows are null")
    hashed = pd.util.hash_array(values.astype(str).astype(object), hash_key=_hash_key(salt), categorize=False)
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def in_holdout(customer_ids: ArrayLike, share: float, salt: str) -> NDArray[np.bool_]:
    """Whether each customer belongs to the global holdout (about `share` of all ids)."""
    if not 0 <= share < 1:
        raise ValueError(f"holdout share must be in [0, 1), got {share}")
    return hash_uniform(customer_ids, salt) < share


# ----------------------------------------------------------------------------------------------
# Rule masks
# ----------------------------------------------------------------------------------------------


@dataclass
class RuleMasks:
    """True where a rule forbids: per customer (N), per channel (N x C), offer (N x O), option (N x K)."""

    customer: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    channel: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    offer: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    option: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    #: Offers whose `no_estimate` is a catalog-wide fact (no model column, no prior): not a reason code.
    offers_without_source: NDArray[np.bool_] | None = None


def snapshot_age_days(now: np.datetime64, as_of: object | None) -> float:
    """Days from the snapshot's as-of time to the decision (0 without one); an error if negative."""
    if as_of is None:
        return 0.0
    as_of_value = pd.Timestamp(as_of)
    if as_of_value.tzinfo is not None:
        as_of_value = as_of_value.tz_convert("UTC").tz_localize(None)
    age = float((now - as_of_value.as_unit("us").to_datetime64()) / DAY)
    if age < 0:
        raise ValueError(f"the decision time {now} is before the snapshot's as-of time {as_of_value}")
    return age


def _channel_masks(frame: FrameColumns, grid: OptionGrid, config: PolicyConfig, now: np.datetime64) -> dict:
    consent = frame.boolean_matrix(
        [f"{channel}_consent" for channel in grid.channels], config.assume_consent_when_unknown
    )
    masks = {"no_consent": ~consent}
    for flag in config.blocking_flags:
        blocked = frame.boolean_matrix([f"{channel}_{flag}" for channel in grid.channels], False)  # a new array
        if flag == "unsubscribed" and "email" in grid.channels:
            unsubscribed_at = timestamp_column(frame, "unsubscribed_at")
            if unsubscribed_at is not None:
                blocked[:, grid.channels.index("email")] |= ~np.isnat(unsubscribed_at) & (unsubscribed_at <= now)
        masks[flag] = blocked
    return masks


def _lifecycle_mask(frame: FrameColumns, grid: OptionGrid, config: PolicyConfig) -> NDArray[np.bool_]:
    name = config.lifecycle_column
    if name not in frame:
        raise ValueError(
            f"column {name!r} (lifecycle stage) is missing: lifecycle eligibility cannot be checked; "
            "build it with the lifecycle feature family or set PolicyConfig.lifecycle_column"
        )
    stages = frame.objects(name)
    if len(stages) == 1:  # one customer: its stage is the only one, or none (what factorize gives)
        codes, stages = (np.full(1, -1), stages[:0]) if pd.isna(stages[0]) else (np.zeros(1, dtype=np.intp), stages)
    else:
        codes, stages = pd.factorize(stages, use_na_sentinel=True)
    allowed = np.array(
        [[stage in offer.eligible_stages for offer in grid.offers] for stage in stages], dtype=bool
    ).reshape(len(stages), len(grid.offers))
    # A missing stage (code -1) is eligible for nothing.
    allowed = np.vstack([allowed, np.zeros((1, len(grid.offers)), dtype=bool)])
    return ~allowed[codes]


def _offer_masks(
    frame: FrameColumns, grid: OptionGrid, config: PolicyConfig, now: np.datetime64, snapshot_age: float
) -> dict:
    n_rows, n_offers = len(frame), len(grid.offers)
    failed = float_column(frame, config.failed_payment_column)
    has_failed_payment = np.zeros(n_rows, bool) if failed is None else failed > 0  # NaN > 0 is False
    no_failed_payment = np.zeros((n_rows, n_offers), dtype=bool)
    recent_purchase = np.zeros((n_rows, n_offers), dtype=bool)
    any_purchase = days_since(
        now, frame, timestamp=config.last_purchase_column, days=config.recency_column, snapshot_age_days=snapshot_age
    )
    just_bought = days_since(now, frame, timestamp=config.last_purchase_column)
    cooldown = _cooldowns(frame, grid, now, snapshot_age)
    for position, offer in enumerate(grid.offers):
        if offer.kind in URGENT_KINDS:
            no_failed_payment[:, position] = ~has_failed_payment
        if offer.cooldown_days <= 0:
            continue
        if offer.discount_pct is None and offer.fixed_cost is None:
            continue
        recency = _item_recency(frame, offer, any_purchase, just_bought, now, snapshot_age)
        recent_purchase[:, position] = recency < offer.cooldown_days
    return {
        "lifecycle": _lifecycle_mask(frame, grid, config),
        "no_failed_payment": no_failed_payment,
        "cooldown": cooldown,
        "recent_purchase": recent_purchase,
    }


def _cooldowns(frame: FrameColumns, grid: OptionGrid, now: np.datetime64, snapshot_age: float) -> NDArray[np.bool_]:
    """N x O: the offer was sent within its cooldown (`last_sent_at__<offer>`, `days_since_sent__<offer>`).

    Offers without a cooldown, and sends nobody knows of, never cool down; their columns are not read.
    """
    cooldown = np.zeros((len(frame), len(grid.offers)), dtype=bool)
    cooling = [position for position, offer in enumerate(grid.offers) if offer.cooldown_days > 0]
    offer_ids = [grid.offers[position].offer_id for position in cooling]
    stamps_names = [column_for("last_sent_at", offer_id) for offer_id in offer_ids]
    stamps = np.full((len(frame), len(cooling)), np.datetime64("NaT", "us"))
    for column in np.flatnonzero(frame.contain(stamps_names)).tolist():
        stamps[:, column] = frame.timestamps(stamps_names[column])
    days = frame.float_matrix([column_for("days_since_sent", offer_id) for offer_id in offer_ids])
    sent = days_since_values(now, stamps, days, snapshot_age, len(frame))
    cooldown[:, cooling] = sent < np.array([grid.offers[position].cooldown_days for position in cooling])
    return cooldown


def _item_recency(
    frame: FrameColumns,
    offer: Offer,
    any_purchase: NDArray,
    just_bought: NDArray,
    now: np.datetime64,
    snapshot_age: float,
) -> NDArray[np.float64]:
    """Days since the customer bought what the offer discounts.

    Product/category offers read their per-item column; when that column is absent they fall
    back to the last purchase of anything (never less strict). A purchase in the request context
    (category unknown) counts for every item. Site-wide offers use the last purchase of anything.
    """
    items = [("product", offer.product_id), ("category", offer.category)]
    items = [(level, key) for level, key in items if key is not None]
    if not items:
        return any_purchase
    recency = np.full(len(frame), np.nan)
    for level, key in items:
        column = purchase_recency_column(level, key)
        if column not in frame:
            return any_purchase
        recency = np.fmin(recency, days_since(now, frame, days=column, snapshot_age_days=snapshot_age))
    return np.fmin(recency, just_bought)


def _messages_in_window(frame: FrameColumns, config: PolicyConfig) -> NDArray[np.float64]:
    """Messages sent in the rolling window: the request's count, else the snapshot's sends."""
    window = config.frequency_window_days
    from_context = float_column(frame, config.messages_sent_name)
    snapshot_columns = [f"{channel}_sends_{window}d" for channel in MESSAGE_CHANNELS]
    present = [name for name in snapshot_columns if name in frame]
    from_snapshot = np.zeros(len(frame))
    for counts in np.nan_to_num(frame.float_matrix(present), nan=0.0).T:
        from_snapshot += counts
    if from_context is None and not present:
        logger.warning(
            "no %s column and no per-channel %dd send counts: the frequency cap counts 0 past messages",
            config.messages_sent_name, window,
        )  # fmt: skip
        return from_snapshot
    if from_context is None:
        return from_snapshot
    return np.where(np.isnan(from_context), from_snapshot, from_context)


def evaluate_rules(
    frame: pd.DataFrame | FrameColumns,
    grid: OptionGrid,
    config: PolicyConfig,
    now: np.datetime64,
    *,
    has_estimate: NDArray[np.bool_],
    offers_without_source: NDArray[np.bool_],
    as_of: object | None = None,
) -> RuleMasks:
    """Every rule's mask for the customers in `frame` at decision time `now` (UTC).

    `has_estimate` (N x O) says where the value model could price an offer; `as_of` is the
    snapshot's time, used to age its day counts (None: treat them as counted at `now`).
    """
    snapshot_age = snapshot_age_days(now, as_of)
    frame = FrameColumns.of(frame)
    if config.customer_id_column not in frame:
        raise ValueError(f"column {config.customer_id_column!r} (customer id) is missing")
    ids = frame.objects(config.customer_id_column)
    masks = RuleMasks(offers_without_source=np.asarray(offers_without_source, dtype=bool))
    masks.customer["holdout"] = in_holdout(ids, config.holdout_share, config.holdout_salt)
    masks.customer["frequency_cap"] = _messages_in_window(frame, config) >= config.frequency_cap
    masks.channel = _channel_masks(frame, grid, config, now)
    masks.offer = _offer_masks(frame, grid, config, now, snapshot_age)
    masks.offer["no_estimate"] = ~np.asarray(has_estimate, dtype=bool)
    return masks


def suppression_codes(masks: RuleMasks, grid: OptionGrid, n_rows: int) -> NDArray[np.uint8]:
    """N x K codes: 0 where the option is allowed, else 1 + index in RULES of the first rule removing it."""
    codes = np.zeros((n_rows, grid.size), dtype=np.uint8)
    for rule in reversed(RULES):
        code = _CODE[rule]
        if rule in masks.customer:
            codes[masks.customer[rule]] = code
        if rule in masks.channel:
            codes[masks.channel[rule][:, grid.channel_index]] = code
        if rule in masks.offer:
            codes[masks.offer[rule][:, grid.offer_index]] = code
        if rule in masks.option:
            codes[masks.option[rule]] = code
    return codes


def apply_sms_preference(codes: NDArray[np.uint8], masks: RuleMasks, grid: OptionGrid) -> None:
    """Urgent offers go by SMS when SMS is allowed: their other channels are removed (in place)."""
    preferred = np.zeros(codes.shape, dtype=bool)
    if "sms" in grid.channels and grid.urgent.any():
        sms = grid.channels.index("sms")
        for position in sorted(set(grid.offer_index[grid.urgent].tolist())):
            options = np.flatnonzero(grid.offer_index == position)
            sms_options = options[grid.channel_index[options] == sms]
            if len(sms_options) == 0:
                continue
            sms_allowed = codes[:, sms_options[0]] == NOT_SUPPRESSED
            for option in options[grid.channel_index[options] != sms]:
                preferred[:, option] = sms_allowed & (codes[:, option] == NOT_SUPPRESSED)
    codes[preferred] = _CODE["sms_preferred"]
    masks.option["sms_preferred"] = preferred


def reason_flags(masks: RuleMasks, grid: OptionGrid, n_rows: int) -> tuple[NDArray[np.bool_], list[str]]:
    """N x M flags of every rule that removed something for each customer, and the M code names.

    Customer and channel rules always count; offer rules count for offers the customer's stage
    (and, for billing alerts, a failed payment) makes eligible; eligibility itself is not listed.
    Option rules count per offer, listed only for offers where some customer has them.
    """
    columns: list[NDArray[np.bool_]] = []
    names: list[str] = []
    ineligible = np.zeros((n_rows, len(grid.offers)), dtype=bool)
    for rule in _ELIGIBILITY_RULES:
        if rule in masks.offer:
            ineligible |= masks.offer[rule]
    # Whole blocks (customer: 1 column, channel: C, offer: O) rather than one column at a time.
    for rule in RULES:
        if rule in masks.customer:
            columns.append(masks.customer[rule].reshape(n_rows, 1))
            names.append(rule)
        if rule in masks.channel:
            columns.append(masks.channel[rule].reshape(n_rows, len(grid.channels)))
            names.extend(_channel_codes(rule, grid.channels))
        if rule in masks.offer and rule not in _ELIGIBILITY_RULES:
            codes = _offer_codes(rule, grid.offer_names)
            if rule == "no_estimate" and masks.offers_without_source is not None:
                kept = ~np.asarray(masks.offers_without_source, dtype=bool)
                codes = [code for code, keep in zip(codes, kept.tolist(), strict=True) if keep]
                columns.append((masks.offer[rule] & ~ineligible)[:, kept].reshape(n_rows, len(codes)))
            else:
                columns.append((masks.offer[rule] & ~ineligible).reshape(n_rows, len(codes)))
            names.extend(codes)
        if rule in masks.option:
            per_offer = masks.option[rule] @ grid.offer_membership  # any of the offer's options
            listed = per_offer.any(axis=0)
            columns.append(per_offer[:, listed])
            names.extend(
                code for code, keep in zip(_offer_codes(rule, grid.offer_names), listed.tolist(), strict=True) if keep
            )
    if not columns:
        return np.zeros((n_rows, 0), dtype=bool), []
    return np.hstack(columns), names


@cache
def _channel_codes(rule: str, channels: tuple[str, ...]) -> tuple[str, ...]:
    """Reason codes of a channel rule, one per channel (`no_email_consent`, `unsubscribed_sms`)."""
    return tuple(f"no_{channel}_consent" if rule == "no_consent" else f"{rule}_{channel}" for channel in channels)


@cache
def _offer_codes(rule: str, offer_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Reason codes of an offer or option rule, one per offer (`cooldown:discount_10`)."""
    return tuple(f"{rule}:{offer_id}" for offer_id in offer_ids)
