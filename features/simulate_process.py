"""Vectorised sampling of per-customer Poisson processes on local days.

An intensity function gives expected events per (customer, local day); counts are drawn per
customer and spread over days by inverse CDF on the flattened cumulative intensity, in chunks
of customers so memory stays bounded. Times of day follow the customer's hour profile.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from features.simulate_calendar import Clock
from features.simulate_population import Population, sample_hours

Intensity = Callable[[Population, np.ndarray], np.ndarray]
MAX_CELLS = 3_000_000  # customers x days per chunk (about 24 MB per float array)


def sample_daily_process(
    rng: np.random.Generator,
    pop: Population,
    intensity: Intensity,
    first_day: int,
    end_day: int,
    customers: np.ndarray | None = None,
    origin: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw events of an inhomogeneous Poisson process on local days `[first_day, end_day)`.

    With `origin` (one local day per customer) the days are relative to each customer's own
    origin. Returns (customer index, local day) per event, grouped by customer in index order.
    """
    customers = np.arange(pop.size) if customers is None else customers
    days = np.arange(first_day, end_day)
    n_days = len(days)
    if n_days <= 0 or len(customers) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    chunk = max(1, MAX_CELLS // n_days)
    out_customer, out_day = [], []
    for begin in range(0, len(customers), chunk):
        index = customers[begin : begin + chunk]
        grid = days if origin is None else origin[index][:, None] + days[None, :]
        rate = intensity(pop.take(index), grid)
        cumulative = np.cumsum(rate, axis=None)
        totals = rate.sum(axis=1)
        counts = rng.poisson(totals)
        rows = np.repeat(np.arange(len(index)), counts)
        row_end = cumulative[rows * n_days + n_days - 1]
        target = row_end - totals[rows] * (1.0 - rng.random(len(rows)))
        position = np.searchsorted(cumulative, target, side="right")
        position = np.clip(position, rows * n_days, rows * n_days + n_days - 1)
        out_customer.append(index[rows])
        relative = position - rows * n_days
        out_day.append(days[relative] if origin is None else grid[rows, relative])
    return np.concatenate(out_customer), np.concatenate(out_day)


def place_in_day(
    rng: np.random.Generator, pop: Population, clock: Clock, customer: np.ndarray, day: np.ndarray
) -> np.ndarray:
    """UTC times of events on local `day`, at hours drawn from each customer's profile."""
    hours = sample_hours(rng, pop.preferred_hour[customer], pop.hour_spread[customer])
    return clock.local_to_utc(pop.zone[customer], day, hours)


def survives_churn(
    rng: np.random.Generator,
    pop: Population,
    customer: np.ndarray,
    time: np.ndarray,
    residual: float,
) -> np.ndarray:
    """Mask of events kept: all before churn, a `residual` share after it (thinning)."""
    alive = time < pop.churn_time[customer]
    return alive | (rng.random(len(customer)) < residual)


def sample_timed_events(
    rng: np.random.Generator,
    pop: Population,
    clock: Clock,
    intensity: Intensity,
    residual: float,
    customers: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Events of a behaviour process inside the world: (customer, UTC time), churn-thinned.

    Events before signup or outside [0, n_days) are dropped.
    """
    customer, day = sample_daily_process(rng, pop, intensity, -1, clock.n_days + 1, customers=customers)
    time = place_in_day(rng, pop, clock, customer, day)
    keep = (time >= 0) & (time < clock.n_days) & (time >= pop.signup[customer])
    keep &= survives_churn(rng, pop, customer, time, residual)
    return customer[keep], time[keep]
