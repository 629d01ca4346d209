"""Send time: when in the customer's own day a message should go out, and the concrete `send_at`.

`SendTimeModel` learns each customer's hour-of-day and weekday preference from counts of past
opens (or clicks, or purchases), shrunk towards the customer's segment by empirical Bayes: the
posterior mean of a Dirichlet prior centred on the segment's distribution, whose strength is
chosen by the Dirichlet-multinomial marginal likelihood. `schedule_send_times` turns those
preferences into the next suitable moment after the decision time, never inside quiet hours.
Everything is vectorised over customers; time zones are handled once per distinct zone.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import gammaln
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    from models.policy_options import FrameColumns

logger = logging.getLogger(__name__)

__all__ = [
    "HOURS",
    "WEEKDAYS",
    "QuietHours",
    "SendSchedule",
    "SendTimeModel",
    "counts_from_profiles",
    "local_time_counts",
    "log_likelihood",
    "profile_counts",
    "profile_probabilities",
    "resolve_timezones",
    "schedule_send_times",
]

HOURS = 24
WEEKDAYS = 7
MINUTES_PER_DAY = 24 * 60
#: Longest look-ahead for a send slot: beyond it a customer gets no send time (and no message).
MAX_SLOTS = 24 * 14
DEFAULT_STRENGTH_GRID: tuple[float, ...] = tuple(np.round(np.logspace(-1, 3, 33), 6))


class QuietHours(BaseModel):
    """Local clock times during which nothing is sent: [start, end), wrapping past midnight.

    Minutes after midnight in the customer's own time zone; start == end means no quiet hours.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_minute: int = Field(default=21 * 60, ge=0, lt=MINUTES_PER_DAY, description="quiet from (local)")
    end_minute: int = Field(default=8 * 60, ge=0, lt=MINUTES_PER_DAY, description="quiet until (local)")

    @model_validator(mode="after")
    def _check_some_time_is_open(self) -> QuietHours:
        if self.quiet_minutes >= MINUTES_PER_DAY - 60:
            raise ValueError(
                f"quiet hours {self.start_minute}..{self.end_minute} leave less than an hour a day to send"
            )
        return self

    @property
    def quiet_minutes(self) -> int:
        """How many minutes of the day are quiet."""
        return (self.end_minute - self.start_minute) % MINUTES_PER_DAY

    def is_quiet(self, minute_of_day: ArrayLike) -> NDArray[np.bool_]:
        """Whether each local minute-of-day falls inside the quiet hours."""
        minute = np.asarray(minute_of_day)
        if self.start_minute == self.end_minute:
            return np.zeros(minute.shape, dtype=bool)
        if self.start_minute < self.end_minute:
            return (minute >= self.start_minute) & (minute < self.end_minute)
        return (minute >= self.start_minute) | (minute < self.end_minute)


# ----------------------------------------------------------------------------------------------
# Counting and scoring
# ----------------------------------------------------------------------------------------------


def resolve_timezones(timezones: ArrayLike | None, n_rows: int, default: str = "UTC") -> tuple[NDArray, list[str]]:
    """Codes into a list of distinct valid IANA zones; missing zones become `default`.

    Raises ValueError naming the unknown zones (and how many rows have them).
    """
    if timezones is None:
        return np.zeros(n_rows, dtype=np.intp), [default]
    values = np.asarray(timezones, dtype=object)
    if len(values) != n_rows:
        raise ValueError(f"timezones has {len(values)} rows, expected {n_rows}")
    # numpy rather than a pandas Series: the same filling and codes without the per-call overhead.
    values = np.where(pd.isna(values) | (values == ""), default, values)
    if n_rows == 1:  # one customer: its zone is the only one (what factorize gives)
        codes, uniques = np.zeros(1, dtype=np.intp), values
    else:
        codes, uniques = pd.factorize(values, sort=False)
    names = [str(name) for name in uniques]
    unknown = []
    for name in names:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            unknown.append(name)
    if unknown:
        bad_rows = int(pd.Series(values).isin(unknown).sum())
        raise ValueError(
            f"timezone: {bad_rows} rows have unknown IANA time zones, e.g. {unknown[:3]}; "
            "use names like 'Europe/London' or leave the value empty for the default"
        )
    return codes.astype(np.intp), names


def local_time_counts(
    customer_ids: ArrayLike,
    timestamps: ArrayLike,
    timezones: ArrayLike | None,
    customers: ArrayLike,
    default_timezone: str = "UTC",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Count events per customer by local hour (N x 24) and local weekday (N x 7, Monday = 0).

    `customer_ids`/`timestamps` (UTC, tz-naive) are the events; `timezones` gives each event's
    customer zone (None: all `default_timezone`); rows follow `customers`. Events of customers
    not in `customers` are ignored.
    """
    customers_index = pd.Index(np.asarray(customers, dtype=object))
    rows = customers_index.get_indexer(np.asarray(customer_ids, dtype=object))
    utc = pd.DatetimeIndex(pd.to_datetime(np.asarray(timestamps))).tz_localize("UTC")
    codes, names = resolve_timezones(timezones, len(utc), default_timezone)
    hour = np.empty(len(utc), dtype=np.intp)
    weekday = np.empty(len(utc), dtype=np.intp)
    for code, name in enumerate(names):
        members = np.flatnonzero(codes == code)
        local = utc[members].tz_convert(name)
        hour[members] = local.hour
        weekday[members] = local.weekday
    known = rows >= 0
    n_customers = len(customers_index)
    hour_counts = np.zeros((n_customers, HOURS))
    weekday_counts = np.zeros((n_customers, WEEKDAYS))
    np.add.at(hour_counts, (rows[known], hour[known]), 1.0)
    np.add.at(weekday_counts, (rows[known], weekday[known]), 1.0)
    return hour_counts, weekday_counts


HOUR_PROFILE_COLUMNS = tuple(f"hour_profile_{hour:02d}" for hour in range(HOURS))
WEEKDAY_PROFILE_COLUMNS = tuple(f"weekday_profile_{day}" for day in range(WEEKDAYS))
RESPONSES_COLUMN = "responses_365d"


def profile_probabilities(
    frame: pd.DataFrame | FrameColumns,
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """The snapshot's smoothed hour (N x 24) and weekday (N x 7) profiles (a missing value reads the
    flat 1/bins), None where a profile's columns are absent. Reads a frame or the policy's `FrameColumns`."""
    from models.policy_options import FrameColumns  # policy_options -> policy_config -> send_time

    columns = FrameColumns.of(frame)
    return _profile(columns, HOUR_PROFILE_COLUMNS, 1 / HOURS), _profile(columns, WEEKDAY_PROFILE_COLUMNS, 1 / WEEKDAYS)


def _profile(columns: FrameColumns, names: tuple[str, ...], missing: float) -> NDArray[np.float64] | None:
    if not columns.contain(names).all():
        return None
    values = columns.float_matrix(names)
    return np.where(np.isnan(values), missing, values)


def profile_counts(
    frame: pd.DataFrame | FrameColumns, prior_responses: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Response counts by local hour and weekday recovered from the timing family's profiles.

    The family stores p = (count + prior/bins) / (n + prior) with n = `responses_365d` (hour
    counts already smoothed over neighbouring hours), so count = p (n + prior) - prior/bins.
    """
    from models.policy_options import FrameColumns

    columns = FrameColumns.of(frame)
    hours, weekdays = profile_probabilities(columns)
    return counts_from_profiles(hours, weekdays, columns.floats(RESPONSES_COLUMN), prior_responses)


def counts_from_profiles(
    hours: NDArray[np.float64] | None,
    weekdays: NDArray[np.float64] | None,
    responses: NDArray[np.float64] | None,
    prior_responses: float = 1.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`profile_counts` from the profiles already read (missing bins filled) and `responses_365d` (NaN = 0).

    Raises ValueError when any of the three is absent (None).
    """
    if hours is None or weekdays is None or responses is None:
        raise ValueError(
            "the send-time model needs the timing features hour_profile_00..23, weekday_profile_0..6 "
            f"and {RESPONSES_COLUMN}; build the snapshot with the timing family"
        )
    total = np.where(np.isnan(responses), 0.0, responses)[:, None] + prior_responses
    hour_counts = np.clip(hours * total - prior_responses / HOURS, 0.0, None)
    weekday_counts = np.clip(weekdays * total - prior_responses / WEEKDAYS, 0.0, None)
    return hour_counts, weekday_counts


def log_likelihood(probability: ArrayLike, counts: ArrayLike) -> float:
    """Sum over customers and bins of counts x log(predicted probability): held-out fit."""
    probability = np.asarray(probability, dtype=float)
    counts = np.asarray(counts, dtype=float)
    if probability.shape != counts.shape:
        raise ValueError(f"probability has shape {probability.shape}, counts {counts.shape}")
    used = counts > 0
    if np.any(probability[used] <= 0):
        return float("-inf")
    return float(np.sum(counts[used] * np.log(probability[used])))


def _as_counts(counts: ArrayLike, width: int, name: str) -> NDArray[np.float64]:
    array = np.asarray(counts, dtype=float)
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"{name} must have shape (n_customers, {width}), got {array.shape}")
    bad = ~np.isfinite(array) | (array < 0)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{name}: {len(rows)} rows have negative or non-finite counts (e.g. rows {rows[:3].tolist()})")
    return array


def _dirichlet_multinomial_loglik(counts: NDArray, prior_mean: NDArray, strength: float) -> float:
    """Log marginal likelihood (up to a constant in the strength) of counts under Dir(strength x mean)."""
    alpha = strength * prior_mean
    totals = counts.sum(axis=1)
    per_row = gammaln(strength) - gammaln(strength + totals)
    per_row += np.sum(gammaln(alpha + counts) - gammaln(alpha), axis=1)
    return float(per_row.sum())


def _normalise(counts: NDArray, pseudo: float) -> NDArray:
    smoothed = counts + pseudo
    return smoothed / smoothed.sum(axis=-1, keepdims=True)


class SendTimeModel(BaseEstimator):
    """Per-customer hour and weekday preference, shrunk towards the segment's (empirical Bayes).

    Posterior mean: (counts + strength x segment distribution) / (total + strength). The segment
    distribution is itself shrunk towards the population by `segment_prior_strength` pseudo-counts.
    `prior_strength=None` picks the strength on `strength_grid` that maximises the
    Dirichlet-multinomial marginal likelihood of the training counts (separately for hours and
    weekdays); a number fixes it.
    """

    def __init__(
        self,
        *,
        prior_strength: float | None = None,
        segment_prior_strength: float = 20.0,
        strength_grid: Sequence[float] = DEFAULT_STRENGTH_GRID,
        max_fit_rows: int = 200_000,
    ) -> None:
        self.prior_strength = prior_strength
        self.segment_prior_strength = segment_prior_strength
        self.strength_grid = strength_grid
        self.max_fit_rows = max_fit_rows

    def fit(
        self, hour_counts: ArrayLike, weekday_counts: ArrayLike | None = None, *, segments: ArrayLike | None = None
    ) -> SendTimeModel:
        """Learn segment distributions and the prior strength from per-customer counts."""
        if self.prior_strength is not None and not self.prior_strength > 0:
            raise ValueError(f"prior_strength must be > 0 or None, got {self.prior_strength!r}")
        if not self.segment_prior_strength >= 0:
            raise ValueError(f"segment_prior_strength must be >= 0, got {self.segment_prior_strength!r}")
        if self.prior_strength is None and (len(self.strength_grid) == 0 or min(self.strength_grid) <= 0):
            raise ValueError(f"strength_grid must hold positive numbers, got {list(self.strength_grid)}")
        hours = _as_counts(hour_counts, HOURS, "hour_counts")
        n_rows = len(hours)
        weekdays = (
            np.zeros((n_rows, WEEKDAYS))
            if weekday_counts is None
            else _as_counts(weekday_counts, WEEKDAYS, "weekday_counts")
        )
        if len(weekdays) != n_rows:
            raise ValueError(f"weekday_counts has {len(weekdays)} rows, hour_counts {n_rows}")
        segment_codes = self._fit_segments(segments, n_rows)
        self.population_hour_, self.segment_hour_ = self._fit_distributions(hours, segment_codes)
        self.population_weekday_, self.segment_weekday_ = self._fit_distributions(weekdays, segment_codes)
        self.prior_strength_hour_ = self._choose_strength(hours, self.segment_hour_[segment_codes])
        self.prior_strength_weekday_ = self._choose_strength(weekdays, self.segment_weekday_[segment_codes])
        self.n_features_in_ = HOURS
        logger.info(
            "send-time model: %d customers, %d segments, prior strength %.3g (hour) %.3g (weekday)",
            n_rows, len(self.segments_), self.prior_strength_hour_, self.prior_strength_weekday_,
        )  # fmt: skip
        return self

    def _fit_segments(self, segments: ArrayLike | None, n_rows: int) -> NDArray[np.intp]:
        if segments is None:
            self.segments_ = np.array([], dtype=object)
            return np.zeros(n_rows, dtype=np.intp)
        values = np.asarray(segments, dtype=object)
        if len(values) != n_rows:
            raise ValueError(f"segments has {len(values)} rows, counts {n_rows}")
        codes, uniques = pd.factorize(pd.Series(values).astype(str), sort=True)
        self.segments_ = np.asarray(uniques, dtype=object)
        return codes.astype(np.intp)

    def _fit_distributions(self, counts: NDArray, codes: NDArray) -> tuple[NDArray, NDArray]:
        """Population distribution, and per segment (last row = population, for unknown segments)."""
        population = _normalise(counts.sum(axis=0), 0.5)
        n_segments = len(self.segments_)
        totals = np.zeros((n_segments, counts.shape[1]))
        if n_segments:
            np.add.at(totals, codes, counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            segment = (totals + self.segment_prior_strength * population) / (
                totals.sum(axis=1, keepdims=True) + self.segment_prior_strength
            )
        # Segments without any counts and zero pseudo-counts fall back to the population.
        empty = ~np.isfinite(segment).all(axis=1)
        segment[empty] = population
        return population, np.vstack([segment, population[None, :]])

    def _choose_strength(self, counts: NDArray, prior_mean: NDArray) -> float:
        if self.prior_strength is not None:
            return float(self.prior_strength)
        used = counts.sum(axis=1) > 0
        if not used.any():
            return float(np.median(self.strength_grid))
        counts, prior_mean = counts[used], prior_mean[used]
        if len(counts) > self.max_fit_rows:
            keep = np.linspace(0, len(counts) - 1, self.max_fit_rows).astype(np.intp)
            counts, prior_mean = counts[keep], prior_mean[keep]
        scores = [_dirichlet_multinomial_loglik(counts, prior_mean, strength) for strength in self.strength_grid]
        return float(self.strength_grid[int(np.argmax(scores))])

    def _segment_rows(self, segments: ArrayLike | None, n_rows: int) -> NDArray[np.intp]:
        population_row = len(self.segments_)
        if segments is None or len(self.segments_) == 0:
            return np.full(n_rows, population_row, dtype=np.intp)
        values = np.asarray(segments, dtype=object)
        if len(values) != n_rows:
            raise ValueError(f"segments has {len(values)} rows, counts {n_rows}")
        if all(_is_plain_segment(value) for value in values):
            # Strings and missing values need no conversion: a dictionary look-up without pandas' overhead.
            known = {segment: row for row, segment in enumerate(self.segments_)}
            return np.fromiter(
                (known.get(value, population_row) if type(value) is str else population_row for value in values),
                np.intp,
                count=n_rows,
            )
        rows = pd.Index(self.segments_).get_indexer(pd.Series(values).astype(str))
        return np.where(rows < 0, population_row, rows).astype(np.intp)

    def predict_proba(
        self, hour_counts: ArrayLike, weekday_counts: ArrayLike | None = None, *, segments: ArrayLike | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior mean hour (N x 24) and weekday (N x 7) distributions; unknown segments use the population."""
        check_is_fitted(self, "segment_hour_")
        hours = _as_counts(hour_counts, HOURS, "hour_counts")
        n_rows = len(hours)
        weekdays = (
            np.zeros((n_rows, WEEKDAYS))
            if weekday_counts is None
            else _as_counts(weekday_counts, WEEKDAYS, "weekday_counts")
        )
        rows = self._segment_rows(segments, n_rows)
        hour_probability = _posterior_mean(hours, self.segment_hour_[rows], self.prior_strength_hour_)
        weekday_probability = _posterior_mean(weekdays, self.segment_weekday_[rows], self.prior_strength_weekday_)
        return hour_probability, weekday_probability

    def preferred_hour(
        self, hour_counts: ArrayLike, weekday_counts: ArrayLike | None = None, *, segments: ArrayLike | None = None
    ) -> NDArray[np.int8]:
        """The most likely local hour per customer."""
        hour_probability, _ = self.predict_proba(hour_counts, weekday_counts, segments=segments)
        return np.argmax(hour_probability, axis=1).astype(np.int8)


def _is_plain_segment(value: object) -> bool:
    """A str, or a missing value (None, float NaN) that the string conversion leaves missing."""
    return type(value) is str or value is None or (type(value) is float and value != value)


def _posterior_mean(counts: NDArray, prior_mean: NDArray, strength: float) -> NDArray:
    return (counts + strength * prior_mean) / (counts.sum(axis=1, keepdims=True) + strength)


# ----------------------------------------------------------------------------------------------
# Turning preferences into a concrete send time
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendSchedule:
    """Chosen send time per customer.

    `send_at` is UTC (tz-naive datetime64[us], NaT when no slot fits), `send_at_local` the same
    moment as an ISO string with the customer's UTC offset, `local_hour` its local hour (-1 when
    none), `delayed_by_quiet_hours` whether the preferred slot was inside quiet hours, `feasible`
    whether any slot fits in the horizon.
    """

    send_at: NDArray[np.datetime64]
    send_at_local: NDArray[np.object_]
    local_hour: NDArray[np.int8]
    delayed_by_quiet_hours: NDArray[np.bool_]
    feasible: NDArray[np.bool_]


def _utc_naive(moment: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    if stamp is pd.NaT:
        raise ValueError("the decision time is missing (NaT)")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.as_unit("us")


_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
_MINUTE_US = 60_000_000
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: UTC offsets per (zone, whole UTC hour), see `_utc_offsets`; cleared when this many are kept.
_HOUR_OFFSETS_KEPT = 65_536
_hour_offsets: dict[tuple[str, int], int] = {}


def _slot_grid(now: pd.Timestamp, n_slots: int) -> NDArray[np.datetime64]:
    """`now`, then every whole UTC hour after it: the moments a message may be scheduled for."""
    now_us = now.to_datetime64().astype("datetime64[us]")
    ticks = now_us.astype(np.int64)
    first_hour = -(-ticks // _HOUR_US) * _HOUR_US
    if first_hour == ticks:
        first_hour += _HOUR_US
    hours = first_hour + _HOUR_US * np.arange(n_slots - 1, dtype=np.int64)
    return np.concatenate([[ticks], hours]).astype("datetime64[us]")


def _utc_offsets(zone: str, ticks: NDArray[np.int64]) -> NDArray[np.int64]:
    """UTC offset of `zone` (microseconds) at each UTC moment (microseconds since the epoch).

    Python's zoneinfo rules, as pandas converts; offsets at whole hours are remembered per zone, as
    one decision's slots after `now` are whole hours and the next decisions' mostly the same ones.
    """
    tz = zoneinfo.ZoneInfo(zone)
    offsets = np.empty(len(ticks), dtype=np.int64)
    for position, tick in enumerate(ticks.tolist()):
        key = (zone, tick) if tick % _HOUR_US == 0 else None
        offset = _hour_offsets.get(key)
        if offset is None:
            offset = (_EPOCH + timedelta(microseconds=tick)).astimezone(tz).utcoffset() // _MICROSECOND
            if key is not None:
                if len(_hour_offsets) >= _HOUR_OFFSETS_KEPT:
                    _hour_offsets.clear()
                _hour_offsets[key] = offset
        offsets[position] = offset
    return offsets


def _local_slot_tables(slots: NDArray[np.datetime64], zones: list[str]) -> tuple[NDArray, NDArray, NDArray]:
    """Per zone x slot: local hour, weekday and minute of day."""
    ticks = slots.astype(np.int64)
    offsets = np.array([_utc_offsets(zone, ticks) for zone in zones], dtype=np.int64).reshape(len(zones), len(ticks))
    # Wall-clock microseconds since the epoch: the calendar fields by integer arithmetic.
    wall = ticks[None, :] + offsets
    minute = wall % _DAY_US // _MINUTE_US
    weekday = (wall // _DAY_US + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    return minute // 60, weekday, minute


def _local_text(zone: str, slot: np.datetime64) -> str:
    """ISO local time of a UTC moment in `zone`, to the minute, with its UTC offset."""
    moment = _EPOCH + timedelta(microseconds=int(slot.astype(np.int64)))
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).isoformat(timespec="minutes")


def _local_texts(
    zones: list[str], slots: NDArray[np.datetime64], zone_codes: NDArray[np.intp], chosen: NDArray[np.intp]
) -> NDArray[np.object_]:
    """`_local_text` of each (zone, chosen slot) pair, formatted once per distinct pair."""
    if len(chosen) == 0:
        return np.empty(0, dtype=object)
    if len(chosen) == 1:  # one customer: nothing to share
        return np.array([_local_text(zones[zone_codes[0]], slots[chosen[0]])], dtype=object)
    n_slots = len(slots)
    pairs, inverse = np.unique(zone_codes * n_slots + chosen, return_inverse=True)
    texts = np.array([_local_text(zones[pair // n_slots], slots[pair % n_slots]) for pair in pairs], dtype=object)
    return texts[inverse.reshape(-1)]


def schedule_send_times(
    now: Any,
    timezones: ArrayLike | None,
    hour_probability: ArrayLike,
    weekday_probability: ArrayLike | None = None,
    *,
    quiet_hours: QuietHours | None = None,
    horizon_hours: int = 24,
    earliest: ArrayLike | None = None,
    urgent: ArrayLike | None = None,
    default_timezone: str = "UTC",
) -> SendSchedule:
    """The best slot per customer within `horizon_hours` from max(now, earliest), outside quiet hours.

    Slots are `now` and each whole UTC hour after it; a slot's score is the customer's local
    hour probability times weekday probability; ties go to the earliest slot. `urgent` rows take
    the first slot outside quiet hours. `earliest` (UTC, per customer, NaT = now) pushes the
    window later, e.g. to keep a minimum gap after the last message.
    """
    now = _utc_naive(now)
    quiet_hours = quiet_hours or QuietHours()
    if not 1 <= horizon_hours <= MAX_SLOTS:
        raise ValueError(f"horizon_hours must be in 1..{MAX_SLOTS}, got {horizon_hours}")
    hour_probability = np.asarray(hour_probability, dtype=float)
    n_rows = len(hour_probability)
    if hour_probability.shape != (n_rows, HOURS):
        raise ValueError(f"hour_probability must have shape (n, 24), got {hour_probability.shape}")
    if weekday_probability is not None:
        weekday_probability = np.asarray(weekday_probability, dtype=float)
        if weekday_probability.shape != (n_rows, WEEKDAYS):
            raise ValueError(f"weekday_probability must have shape ({n_rows}, 7), got {weekday_probability.shape}")
    zone_codes, zones = resolve_timezones(timezones, n_rows, default_timezone)

    now_us = now.to_datetime64()
    if earliest is None:
        start = np.full(n_rows, now_us)
    else:
        earliest_values = np.asarray(earliest)
        if earliest_values.dtype != np.dtype("datetime64[us]"):
            earliest_values = pd.to_datetime(earliest_values).to_numpy(dtype="datetime64[us]")
        start = np.where(np.isnat(earliest_values), now_us, np.maximum(earliest_values, now_us))
    horizon = np.timedelta64(horizon_hours, "h")
    furthest_hours = float((start.max() - now_us) / np.timedelta64(1, "h")) if n_rows else 0.0
    n_slots = int(min(MAX_SLOTS, horizon_hours + np.ceil(furthest_hours) + 2))
    slot_values = _slot_grid(now, n_slots)
    hour_table, weekday_table, minute_table = _local_slot_tables(slot_values, zones)

    in_window = (slot_values[None, :] >= start[:, None]) & (slot_values[None, :] < (start + horizon)[:, None])
    rows = np.arange(n_rows)[:, None]
    slot_hours = hour_table[zone_codes]
    score = hour_probability[rows, slot_hours]
    if weekday_probability is not None:
        score = score * weekday_probability[rows, weekday_table[zone_codes]]
    if urgent is not None:
        score = np.where(np.asarray(urgent, dtype=bool)[:, None], 1.0, score)
    quiet = quiet_hours.is_quiet(minute_table)[zone_codes]
    allowed = in_window & ~quiet
    # Strictly positive scores for allowed slots, so argmax never picks a forbidden one.
    best_any = np.argmax(np.where(in_window, score + 1.0, 0.0), axis=1)
    best = np.argmax(np.where(allowed, score + 1.0, 0.0), axis=1)
    feasible = allowed[np.arange(n_rows), best]

    send_at = np.where(feasible, slot_values[best], np.datetime64("NaT", "us"))
    local_text = np.full(n_rows, None, dtype=object)
    local_text[feasible] = _local_texts(zones, slot_values, zone_codes[feasible], best[feasible])
    local_hour = np.where(feasible, hour_table[zone_codes, best], -1).astype(np.int8)
    delayed = feasible & quiet[np.arange(n_rows), best_any] & (best != best_any)
    return SendSchedule(send_at, local_text.astype(object), local_hour, delayed, feasible)
