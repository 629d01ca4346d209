"""The simulator's clock: float days since the world's start (UTC) and customers' local days.

Everything inside the simulator measures time as float days since `start` (00:00 UTC). A
customer lives in an IANA time zone; behaviour (preferred hour, weekday) is defined on local
days and converted to UTC with the zone's real offset on that day, so daylight saving is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# A handful of zones with the share of customers living there.
TIMEZONES: tuple[tuple[str, float], ...] = (
    ("Europe/London", 0.30),
    ("Europe/Berlin", 0.12),
    ("Europe/Madrid", 0.06),
    ("America/New_York", 0.20),
    ("America/Chicago", 0.09),
    ("America/Los_Angeles", 0.12),
    ("Asia/Tokyo", 0.05),
    ("Australia/Sydney", 0.06),
)

MICROSECONDS_PER_DAY = 86_400 * 1_000_000


def seasonality(dates: pd.DatetimeIndex) -> np.ndarray:
    """Shop-wide demand multiplier per date: a winter high, Black Friday and Christmas peaks."""
    day_of_year = dates.dayofyear.to_numpy()
    month = dates.month.to_numpy()
    day = dates.day.to_numpy()
    season = 1.0 + 0.10 * np.cos(2 * np.pi * (day_of_year - 15) / 365.25)
    black_friday = (month == 11) & (day >= 24) | (month == 12) & (day <= 1)
    christmas = (month == 12) & (day >= 2) & (day <= 20)
    january_sale = (month == 1) & (day >= 2) & (day <= 12)
    season = season + 0.6 * black_friday + 0.3 * christmas + 0.15 * january_sale
    return season


@dataclass(frozen=True)
class Clock:
    """Per-day calendar lookups covering local days `first_day .. first_day + span - 1`.

    `offsets[zone, i]` is the zone's UTC offset in hours on local day `first_day + i`.
    """

    start: pd.Timestamp
    n_days: int
    first_day: int
    offsets: np.ndarray
    weekday: np.ndarray
    day_of_month: np.ndarray
    season: np.ndarray

    @property
    def last_day(self) -> int:
        """One past the last local day the lookups cover."""
        return self.first_day + self.offsets.shape[1]

    def position(self, day: np.ndarray) -> np.ndarray:
        """Index into the per-day arrays of local day `day` (clipped to the covered span)."""
        return np.clip(np.asarray(day) - self.first_day, 0, self.offsets.shape[1] - 1)

    def local_to_utc(self, zone: np.ndarray, day: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """UTC time (days since start) of local `day` at `hour` o'clock in `zone`."""
        offset = self.offsets[zone, self.position(day)]
        return day + (hour - offset) / 24.0

    def utc_to_local(self, zone: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local day index and hour (0-24) of UTC `time` in `zone`."""
        offset = self.offsets[zone, self.position(np.floor(time).astype(np.int64))]
        local = time + offset / 24.0
        day = np.floor(local).astype(np.int64)
        return day, (local - day) * 24.0

    def to_datetime64(self, time: np.ndarray) -> np.ndarray:
        """Float days since start as `datetime64[us]`, rounded to whole seconds."""
        seconds = np.round(np.asarray(time, dtype=np.float64) * 86_400.0)
        micros = self.start.value // 1_000 + seconds.astype(np.int64) * 1_000_000
        return micros.astype("datetime64[us]")


def make_clock(start: pd.Timestamp, n_days: int, before: int = 2000, after: int = 130) -> Clock:
    """Build the lookups for local days `-before .. n_days + after` (signups, horizons)."""
    first_day = -before
    dates = start + pd.to_timedelta(np.arange(first_day, n_days + after), unit="D")
    utc_noon = pd.DatetimeIndex(dates + pd.Timedelta(hours=12)).tz_localize("UTC")
    offsets = np.empty((len(TIMEZONES), len(dates)), dtype=np.float64)
    for row, (zone, _) in enumerate(TIMEZONES):
        local = utc_noon.tz_convert(zone).tz_localize(None)
        offsets[row] = (local - utc_noon.tz_localize(None)).total_seconds().to_numpy() / 3600.0
    index = pd.DatetimeIndex(dates)
    return Clock(
        start=start,
        n_days=n_days,
        first_day=first_day,
        offsets=offsets,
        weekday=index.weekday.to_numpy().astype(np.int8),
        day_of_month=index.day.to_numpy().astype(np.int8),
        season=seasonality(index),
    )
