"""Reason codes: which rules applied to a decision, and the top SHAP drivers in plain words.

SHAP contributions are computed elsewhere (models/explain.py); here a customers x features
contribution matrix becomes the top-k drivers per customer, each rendered by a template of its
feature family ("no order for 64 days, 3.0x the usual gap (raises risk)"). Rendering is
vectorised: values are rounded as the template displays them and each distinct rounded value is
formatted once, so a million customers cost a few thousand string formats.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "RULE_TEXT",
    "Contributions",
    "PhraseTemplate",
    "describe_drivers",
    "describe_reason_code",
    "join_codes",
    "top_drivers",
]

SEPARATOR = "; "

#: Analyst wording of each reason code (the part before ':' or the whole code).
RULE_TEXT: dict[str, str] = {
    "holdout": "in the global holdout group: gets nothing, measures the programme",
    "no_consent": "no consent for the channel",
    "unsubscribed": "unsubscribed from the channel",
    "complained": "complained about (marked as spam) a message on the channel",
    "bounced": "messages on the channel bounced",
    "lifecycle": "offer not meant for the customer's lifecycle stage",
    "no_failed_payment": "billing alert needs a failed payment",
    "no_estimate": "no uplift estimate for the offer (no model column, no prior)",
    "cooldown": "offer sent within its cooldown",
    "recent_purchase": "bought the offer's product or category within its cooldown",
    "frequency_cap": "frequency cap reached for the rolling window",
    "no_send_slot": "no send time outside quiet hours within the horizon",
    "sms_preferred": "urgent offer goes by SMS, which is allowed",
    "best_value": "the highest expected incremental profit among allowed options",
    "no_positive_value": "no allowed option has a positive expected incremental profit",
    "no_eligible_option": "every message option was removed by a rule",
    "exploration": "drawn at random among allowed options (exploration)",
    "quiet_hours_delay": "preferred time was in quiet hours, sent at the next allowed time",
    "min_gap_delay": "delayed to keep the minimum gap after the last message",
}


def describe_reason_code(code: str) -> str:
    """Plain words for a reason code such as `cooldown:discount_10` or `no_email_consent`."""
    head, _, argument = code.partition(":")
    match = re.fullmatch(r"no_(\w+)_consent", head)
    if match:
        return f"no consent for {match.group(1)}"
    match = re.fullmatch(r"(unsubscribed|complained|bounced)_(\w+)", head)
    if match:
        return RULE_TEXT[match.group(1)].replace("the channel", match.group(2))
    text = RULE_TEXT.get(head, head.replace("_", " "))
    return f"{text} ({argument})" if argument else text


def join_codes(flags: ArrayLike, names: Sequence[str], separator: str = ";") -> NDArray[np.object_]:
    """Per row, the names whose flag is set, joined in column order ('' when none).

    Distinct flag patterns are joined once each, so the cost grows with patterns, not rows.
    """
    flags = np.asarray(flags, dtype=bool)
    if flags.ndim != 2 or flags.shape[1] != len(names):
        raise ValueError(f"flags must have shape (n, {len(names)}), got {flags.shape}")
    if flags.shape[0] == 0:
        return np.empty(0, dtype=object)
    if flags.shape[1] == 0:
        return np.full(flags.shape[0], "", dtype=object)
    if flags.shape[0] == 1:  # one customer (a service request): nothing to share
        return np.array([separator.join(name for name, on in zip(names, flags[0], strict=True) if on)], dtype=object)
    packed = np.packbits(flags, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    patterns, first_row, inverse = np.unique(keys, return_index=True, return_inverse=True)
    del patterns
    texts = np.array(
        [separator.join(name for name, on in zip(names, flags[row], strict=True) if on) for row in first_row],
        dtype=object,
    )
    return texts[inverse.ravel()]


# ----------------------------------------------------------------------------------------------
# SHAP drivers
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contributions:
    """SHAP contributions: `values[i, j]` is feature `feature_names[j]`'s push on customer i's score."""

    values: NDArray[np.float64]
    feature_names: tuple[str, ...]

    def __init__(self, values: ArrayLike, feature_names: Sequence[str]) -> None:
        array = np.asarray(values, dtype=float)
        names = tuple(str(name) for name in feature_names)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ValueError(
                f"contributions must have shape (n_customers, {len(names)}) to match feature_names, got {array.shape}"
            )
        object.__setattr__(self, "values", array)
        object.__setattr__(self, "feature_names", names)

    def take(self, rows: NDArray[np.intp]) -> Contributions:
        """The contributions of a subset of customers."""
        return Contributions(self.values[rows], self.feature_names)


def top_drivers(values: ArrayLike, k: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Column indices (N x k) and signed contributions of the k largest |contributions| per row.

    Ordered by decreasing magnitude; NaN counts as 0; rows with fewer than k non-zero
    contributions pad with index -1 and contribution 0.
    """
    array = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)
    n_rows, n_columns = array.shape
    k = min(k, n_columns)
    if k <= 0 or n_rows == 0:
        return np.empty((n_rows, 0), dtype=np.intp), np.empty((n_rows, 0))
    magnitude = np.abs(array)
    candidates = (
        np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
        if k < n_columns
        else np.tile(np.arange(n_columns), (n_rows, 1))
    )
    rows = np.arange(n_rows)[:, None]
    order = np.argsort(-magnitude[rows, candidates], axis=1, kind="stable")
    indices = candidates[rows, order]
    signed = array[rows, indices]
    indices = np.where(signed != 0, indices, -1)
    return indices, signed


@dataclass(frozen=True)
class PhraseTemplate:
    """How to say a feature's value in words.

    `pattern` is a regex matched against the feature name; its named groups are usable in the
    texts (`{channel}`), `{value}` is the feature's value and any other `{name}` is that column.
    `texts` are tried in order: the first whose columns exist and are not missing is used;
    `missing` is said when none fits. `when_true`/`when_false` replace `texts` for 0/1 flags.
    """

    pattern: str
    texts: tuple[str, ...] = ()
    missing: str = "{feature} unknown"
    when_true: str | None = None
    when_false: str | None = None


_TEMPLATES: tuple[PhraseTemplate, ...] = (
    PhraseTemplate(
        r"recency_days",
        ("no order for {value:.0f} days, {overdue_ratio:.1f}x the usual gap", "no order for {value:.0f} days"),
        missing="no order yet",
    ),
    PhraseTemplate(
        r"overdue_ratio",
        (
            "{value:.1f}x the usual gap between orders (usually {gap_mean_days:.0f} days)",
            "{value:.1f}x the usual gap between orders",
        ),
        missing="fewer than two orders, no usual gap yet",
    ),
    PhraseTemplate(r"gap_mean_days", ("usually orders every {value:.0f} days",), missing="fewer than two orders"),
    PhraseTemplate(r"gap_std_days", ("order gaps vary by about {value:.0f} days",), missing="fewer than three orders"),
    PhraseTemplate(r"frequency", ("{value:.0f} orders in total",)),
    PhraseTemplate(r"frequency_(?P<days>\d+)d", ("{value:.0f} orders in the last {days} days",)),
    PhraseTemplate(r"monetary", ("spent {value:,.0f} in total",)),
    PhraseTemplate(r"monetary_(?P<days>\d+)d", ("spent {value:,.0f} in the last {days} days",)),
    PhraseTemplate(r"avg_order_value", ("average order {value:,.0f}",), missing="no orders yet"),
    PhraseTemplate(r"(?P<letter>[rfm])_score", ("{letter}-score {value:.0f} of 5",), missing="no orders yet"),
    PhraseTemplate(r"rfm_segment", ("RFM segment {value}",), missing="no RFM segment (no orders)"),
    PhraseTemplate(
        r"spend_trend_(?P<days>\d+)d",
        ("spend trend {value:+.2f} over {days} days (-1 stopped buying, +1 new spend)",),
        missing="no spend in the last two {days}-day periods",
    ),
    PhraseTemplate(r"tenure_days", ("customer for {value:.0f} days",)),
    PhraseTemplate(r"days_since_first_order", ("first order {value:.0f} days ago",), missing="no orders yet"),
    PhraseTemplate(r"signup_month", ("started in month {value:.0f}",)),
    PhraseTemplate(r"cohort_month", ("cohort {value:.0f}",)),
    PhraseTemplate(r"acquisition_channel", ("acquired via {value}",), missing="acquisition channel unknown"),
    PhraseTemplate(
        r"(?P<channel>email|sms|push)_(?P<what>sends|opens|clicks)_(?P<days>\d+)d",
        ("{value:.0f} {channel} {what} in the last {days} days",),
    ),
    PhraseTemplate(
        r"(?P<channel>email|sms|push)_(?P<what>open|click)_rate_(?P<days>\d+)d",
        ("{channel} {what} rate {value:.0%} over {days} days",),
        missing="no {channel} sends to rate",
    ),
    PhraseTemplate(
        r"(?P<channel>email|sms|push)_engagement_trend_(?P<days>\d+)d",
        ("{channel} engagement trend {value:+.2f} ({days} days vs the {days} before)",),
        missing="no {channel} engagement in the last two {days}-day periods",
    ),
    PhraseTemplate(
        r"(?P<channel>email|sms|push)_(?P<what>unsubscribed|bounced|complained)",
        when_true="{what} on {channel}",
        when_false="never {what} on {channel}",
    ),
    PhraseTemplate(
        r"days_since_last_(?P<what>send|open|click|visit|login)",
        ("last {what} {value:.0f} days ago",),
        missing="no {what} on record",
    ),
    PhraseTemplate(r"(?P<what>visits|logins)_(?P<days>\d+)d", ("{value:.0f} {what} in the last {days} days",)),
    PhraseTemplate(r"support_tickets_(?P<days>\d+)d", ("{value:.0f} support tickets in {days} days",)),
    PhraseTemplate(r"best_channel", ("responds best on {value}",), missing="no channel response yet"),
    PhraseTemplate(r"distinct_categories", ("bought from {value:.0f} categories",)),
    PhraseTemplate(r"top_category", ("favourite category {value}",), missing="no category history"),
    PhraseTemplate(r"top_category_share", ("{value:.0%} of items in the favourite category",)),
    PhraseTemplate(r"days_since_top_category_purchase", ("favourite category last bought {value:.0f} days ago",)),
    PhraseTemplate(r"discount_order_share", ("{value:.0%} of orders used a discount",)),
    PhraseTemplate(r"has_subscription", when_true="has a subscription", when_false="no subscription"),
    PhraseTemplate(r"days_to_renewal", ("subscription renews in {value:.0f} days",), missing="no renewal date"),
    PhraseTemplate(r"subscription_days", ("subscriber for {value:.0f} days",), missing="no subscription"),
    PhraseTemplate(r"usage_ratio", ("uses {value:.0%} of the plan's limit",), missing="no plan limit"),
    PhraseTemplate(r"subscription_plan", ("plan {value}",), missing="no plan"),
    PhraseTemplate(r"failed_payments_(?P<days>\d+)d", ("{value:.0f} failed payments in {days} days",)),
    PhraseTemplate(r"responses_(?P<days>\d+)d", ("{value:.0f} opens, clicks and orders in {days} days",)),
    PhraseTemplate(r"hour_profile_(?P<hour>\d\d)", ("{value:.0%} of responses at {hour}:00",)),
    PhraseTemplate(r"weekday_profile_(?P<day>\d)", ("{value:.0%} of responses on weekday {day} (Monday 0)",)),
    PhraseTemplate(r"daypart_share_(?P<part>\w+)", ("{value:.0%} of responses in the {part}",)),
    PhraseTemplate(r"weekend_share", ("{value:.0%} of responses at weekends",)),
    PhraseTemplate(r"preferred_hour", ("usually responds around {value:02.0f}:00",), missing="no response hour yet"),
    PhraseTemplate(r"preferred_weekday", ("usually responds on weekday {value:.0f} (Monday 0)",)),
    PhraseTemplate(r"lifecycle_stage", ("lifecycle stage {value}",)),
    PhraseTemplate(r"churn_risk", ("churn risk {value:.0%}",)),
)
_FALLBACK = PhraseTemplate(r".*", ("{feature} = {value:.3g}",), missing="{feature} missing")
_FALLBACK_TEXT = PhraseTemplate(r".*", ("{feature} = {value}",), missing="{feature} missing")


@cache
def _template_for(feature: str) -> tuple[PhraseTemplate, dict[str, str]]:
    for template in _TEMPLATES:
        match = re.fullmatch(template.pattern, feature)
        if match:
            return template, {name: text for name, text in match.groupdict().items() if text is not None}
    return _FALLBACK, {}


def _fields(text: str) -> list[tuple[str, str]]:
    """(field name, format spec) for each replacement field in a template text."""
    return [(name, spec or "") for _, name, spec, _ in string.Formatter().parse(text) if name is not None]


def _decimals(spec: str) -> int | None:
    """How many decimals a format spec shows, so equal displays share one key (None: keep exact)."""
    match = re.search(r"\.(\d+)([f%])", spec)
    if not match:
        return None
    decimals = int(match.group(1))
    return decimals + 2 if match.group(2) == "%" else decimals


class _Columns:
    """Feature columns as numpy arrays (numbers as float with NaN, others as objects), converted once."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.names = set(frame.columns)
        self._arrays: dict[str, NDArray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def values(self, name: str, rows: NDArray[np.intp]) -> NDArray:
        array = self._arrays.get(name)
        if array is None:
            column = self.frame[name]
            if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
                array = column.to_numpy(dtype=float, na_value=np.nan)
            else:
                array = column.to_numpy(dtype=object, na_value=None)
            self._arrays[name] = array
        return array[rows]


def _is_missing(values: NDArray) -> NDArray[np.bool_]:
    if values.dtype == object:
        return pd.isna(values)
    return np.isnan(values)


def _render(text: str, feature: str, groups: Mapping[str, str], columns: _Columns, rows: NDArray[np.intp]) -> NDArray:
    """Render `text` for `rows`, formatting each distinct (rounded) combination of values once."""
    fields = [(name, spec) for name, spec in _fields(text) if name not in groups and name != "feature"]
    context = {**groups, "feature": feature}
    if not fields:
        return np.full(len(rows), text.format(**context), dtype=object)
    keys = []
    for name, spec in fields:
        column = feature if name == "value" else name
        values = columns.values(column, rows)
        decimals = _decimals(spec)
        if values.dtype != object and decimals is not None:
            values = np.round(values, decimals)
        keys.append(pd.Series(values, copy=False))
    codes, uniques = pd.MultiIndex.from_arrays(keys).factorize() if len(keys) > 1 else pd.factorize(keys[0])
    uniques = list(uniques) if len(keys) > 1 else [(value,) for value in uniques]
    names = [name for name, _ in fields]
    formatted = np.array(
        [text.format(**context, **dict(zip(names, combo, strict=True))) for combo in uniques], dtype=object
    )
    return formatted[codes]


def _phrases(feature: str, columns: _Columns, rows: NDArray[np.intp]) -> NDArray[np.object_]:
    """Plain-words description of `feature` for the customers `rows`."""
    template, groups = _template_for(feature)
    if feature not in columns:
        return np.full(len(rows), f"{feature} (value not in the snapshot)", dtype=object)
    values = columns.values(feature, rows)
    if template is _FALLBACK and values.dtype == object:
        template = _FALLBACK_TEXT
    missing = _is_missing(values)
    result = np.empty(len(rows), dtype=object)
    if template.when_true is not None:
        on = ~missing & (np.asarray(values, dtype=float) >= 0.5) if values.dtype != object else ~missing
        result[on] = template.when_true.format(**groups, feature=feature)
        result[~on] = (template.when_false or "").format(**groups, feature=feature)
        return result
    todo = ~missing
    for text in template.texts:
        needed = {name for name, _ in _fields(text)} - set(groups) - {"value", "feature"}
        if not todo.any() or not needed <= columns.names:
            continue
        usable = todo.copy()
        for name in needed:
            usable &= ~_is_missing(columns.values(name, rows))
        if usable.any():
            result[usable] = _render(text, feature, groups, columns, rows[usable])
            todo &= ~usable
    result[todo | missing] = template.missing.format(**groups, feature=feature)
    return result


def describe_drivers(
    contributions: Contributions,
    features: pd.DataFrame,
    *,
    top_k: int = 3,
    raises: str = "raises risk",
    lowers: str = "lowers risk",
) -> NDArray[np.object_]:
    """The top-k drivers per customer in words, strongest first, joined by '; '.

    `features` holds the feature values, rows aligned with `contributions`; each phrase ends
    with its direction, e.g. "no order for 64 days, 3.0x the usual gap (raises risk)".
    """
    n_rows = len(contributions.values)
    if len(features) != n_rows:
        raise ValueError(f"features has {len(features)} rows, contributions {n_rows}")
    indices, signed = top_drivers(contributions.values, top_k)
    columns = _Columns(features)
    result = np.full(n_rows, "", dtype=object)
    for slot in range(indices.shape[1]):
        slot_indices = indices[:, slot]
        phrases = np.full(n_rows, "", dtype=object)
        for feature_index in np.unique(slot_indices[slot_indices >= 0]):
            rows = np.flatnonzero(slot_indices == feature_index)
            phrases[rows] = _phrases(contributions.feature_names[feature_index], columns, rows)
        direction = np.where(signed[:, slot] > 0, f" ({raises})", f" ({lowers})").astype(object)
        present = slot_indices >= 0
        text = np.where(present, phrases + direction, "")
        joiner = np.where(present & (result != ""), SEPARATOR, "").astype(object)
        result = result + joiner + text
    return result
