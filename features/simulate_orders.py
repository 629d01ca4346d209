"""Orders: the product catalogue, baseline purchases, campaign effects on them, order lines.

Purchases are a Poisson process per customer (see `purchase_intensity`), thinned after churn.
A campaign contact multiplies the intensity for 14 days: by thinning the orders in the window
(multiplier < 1) or adding a superposed process (multiplier > 1); the discount arm's coupon
takes 10% off the first order in the window. Each order has 1+ lines whose category follows
the customer's preferences and whose price the category's level and the customer's spend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulate_calendar import Clock
from features.simulate_effects import COUPON_SHARE, PURCHASE_RESIDUAL, WINDOW_DAYS, OrderValues
from features.simulate_population import Population, purchase_intensity
from features.simulate_process import (
    place_in_day,
    sample_daily_process,
    sample_timed_events,
    survives_churn,
)

# name, price level, share of lines, mean extra units per line
CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    ("apparel", 45.0, 0.16, 0.2),
    ("shoes", 70.0, 0.08, 0.05),
    ("accessories", 22.0, 0.08, 0.3),
    ("beauty", 20.0, 0.10, 0.4),
    ("home", 40.0, 0.09, 0.2),
    ("kitchen", 32.0, 0.07, 0.25),
    ("electronics", 120.0, 0.07, 0.05),
    ("books", 16.0, 0.08, 0.3),
    ("toys", 26.0, 0.07, 0.3),
    ("sports", 50.0, 0.06, 0.15),
    ("garden", 30.0, 0.05, 0.3),
    ("grocery", 11.0, 0.09, 0.8),
)
N_PRODUCTS = 200
EXTRA_LINES = 0.5  # lines per order = 1 + Poisson(0.5)
FAVOURITE_SHARE, SECOND_SHARE = 0.45, 0.20
PRICE_NOISE = 0.25
DISCOUNT_LEVELS = np.array([0.10, 0.15, 0.20, 0.30])
DISCOUNT_LEVEL_SHARES = np.array([0.4, 0.3, 0.2, 0.1])
ONBOARDING_ORDER = 0.6  # share of in-window signups that order on sign-up


def category_popularity() -> np.ndarray:
    """Share of lines per category in the whole shop."""
    shares = np.array([category[2] for category in CATEGORIES])
    return shares / shares.sum()


@dataclass(frozen=True)
class Catalog:
    """Products with their category, list price and popularity within the category."""

    category: np.ndarray
    price: np.ndarray
    popularity: np.ndarray  # sums to 1 within each category

    def mean_line_value(self) -> np.ndarray:
        """Expected gross of one line per category (price x units), before the spend level."""
        extra_units = np.array([category[3] for category in CATEGORIES])
        price = np.bincount(self.category, self.popularity * self.price, len(CATEGORIES))
        return price * (1.0 + extra_units)


def build_catalog(rng: np.random.Generator) -> Catalog:
    """About 200 products spread over the categories by popularity, Zipf-like within each."""
    shares = category_popularity()
    counts = np.maximum(np.round(shares * N_PRODUCTS).astype(int), 4)
    counts[np.argmax(counts)] += N_PRODUCTS - counts.sum()
    category = np.repeat(np.arange(len(CATEGORIES)), counts)
    level = np.array([c[1] for c in CATEGORIES])[category]
    price = np.round(level * np.exp(0.35 * rng.standard_normal(len(category))), 2) + 0.99
    rank = np.concatenate([np.arange(1, count + 1) for count in counts])
    weight = rank**-0.9
    popularity = weight / np.bincount(category, weight)[category]
    return Catalog(category=category, price=price, popularity=popularity)


def category_choice(pop: Population) -> np.ndarray:
    """(customers x categories) probability that a line falls in each category."""
    shares = np.tile((1.0 - FAVOURITE_SHARE - SECOND_SHARE) * category_popularity(), (pop.size, 1))
    rows = np.arange(pop.size)
    np.add.at(shares, (rows, pop.favourite_category), FAVOURITE_SHARE)
    np.add.at(shares, (rows, pop.second_category), SECOND_SHARE)
    return shares


def expected_order_values(pop: Population, catalog: Catalog) -> OrderValues:
    """Exact expected gross and net order value per customer under the line model."""
    mean_line = catalog.mean_line_value()
    gross = np.empty(pop.size)
    step = 200_000
    for begin in range(0, pop.size, step):
        part = pop.take(np.arange(begin, min(begin + step, pop.size)))
        gross[begin : begin + step] = (1.0 + EXTRA_LINES) * part.spend_level * (category_choice(part) @ mean_line)
    mean_discount = float(DISCOUNT_LEVELS @ DISCOUNT_LEVEL_SHARES)
    return OrderValues(gross=gross, net=gross * (1.0 - pop.discount_propensity * mean_discount))


def baseline_orders(rng: np.random.Generator, pop: Population, clock: Clock) -> tuple[np.ndarray, np.ndarray]:
    """Orders without campaigns: the purchase process plus first orders at sign-up."""
    customer, time = sample_timed_events(
        rng, pop, clock, lambda sub, days: purchase_intensity(sub, clock, days), PURCHASE_RESIDUAL
    )
    new = np.flatnonzero((pop.signup >= 0) & (rng.random(pop.size) < ONBOARDING_ORDER))
    first_time = pop.signup[new] + rng.random(len(new)) / 24.0
    inside = first_time < clock.n_days
    return (
        np.concatenate((customer, new[inside])),
        np.concatenate((time, first_time[inside])),
    )


def apply_campaigns(
    rng: np.random.Generator,
    pop: Population,
    clock: Clock,
    customer: np.ndarray,
    time: np.ndarray,
    exposures: dict[str, np.ndarray],
    coupon_arm: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realise campaign effects on orders; returns (customer, time, coupon flag) sorted.

    Each treated exposure scales the purchase intensity in [assigned, assigned + 14 days) by
    exp(log_multiplier): orders are thinned, or extra orders drawn from the same process.
    """
    span = float(clock.n_days + 100)
    order = np.lexsort((time, customer))
    customer, time = customer[order], time[order]
    key = customer * span + time
    treated = exposures["arm"] > 0
    who = exposures["customer"][treated]
    start = exposures["time"][treated]
    multiplier = np.exp(exposures["log_multiplier"][treated])
    arm = exposures["arm"][treated]

    # Thinning where the contact put the customer off.
    low = np.searchsorted(key, who * span + start, side="left")
    high = np.searchsorted(key, who * span + start + WINDOW_DAYS, side="left")
    window_of = np.full(len(customer), -1)
    lengths = high - low
    positions = np.repeat(low, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    window_of[positions] = np.repeat(np.arange(len(who)), lengths)
    covered = window_of >= 0
    keep_share = np.ones(len(customer))
    keep_share[covered] = np.minimum(multiplier[window_of[covered]], 1.0)
    kept = rng.random(len(customer)) < keep_share
    customer, time, window_of = customer[kept], time[kept], window_of[kept]

    # Extra orders where it drew them in: superpose (m - 1) x intensity on the window's days.
    boosted = np.flatnonzero(multiplier > 1.0)
    extra_customer, extra_time, extra_window = _extra_orders(
        rng, pop, clock, who[boosted], start[boosted], multiplier[boosted] - 1.0
    )
    customer = np.concatenate((customer, extra_customer))
    time = np.concatenate((time, extra_time))
    window_of = np.concatenate((window_of, boosted[extra_window]))
    order = np.lexsort((time, customer))
    customer, time, window_of = customer[order], time[order], window_of[order]

    coupon = np.zeros(len(customer), dtype=bool)
    in_coupon_window = (window_of >= 0) & (arm[np.maximum(window_of, 0)] == coupon_arm)
    candidates = np.flatnonzero(in_coupon_window)
    _, first = np.unique(window_of[candidates], return_index=True)
    coupon[candidates[first]] = True
    return customer, time, coupon


def _extra_orders(
    rng: np.random.Generator,
    pop: Population,
    clock: Clock,
    who: np.ndarray,
    start: np.ndarray,
    extra: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orders from `extra` x the purchase intensity inside each window (index of the window)."""
    if len(who) == 0:
        return np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)
    day_start, _ = clock.utc_to_local(pop.zone[who], start)
    # A per-window population: the customer's traits with the window's multiplier folded in.
    sub = pop.take(who)
    sub.purchase_rate = sub.purchase_rate * extra
    window, day = sample_daily_process(
        rng,
        sub,
        lambda part, days: purchase_intensity(part, clock, days),
        0,
        int(WINDOW_DAYS) + 2,
        origin=day_start,
    )
    time = place_in_day(rng, sub, clock, window, day)
    inside = (time >= start[window]) & (time < start[window] + WINDOW_DAYS)
    inside &= time >= sub.signup[window]
    inside &= survives_churn(rng, sub, window, time, PURCHASE_RESIDUAL)
    window, time = window[inside], time[inside]
    return who[window], time, window


def order_lines(
    rng: np.random.Generator,
    pop: Population,
    catalog: Catalog,
    customer: np.ndarray,
    time: np.ndarray,
    coupon: np.ndarray,
) -> dict[str, np.ndarray]:
    """Lines of every order: product, category, units, gross price, discount and amount.

    Orders are numbered chronologically. A repeated product within an order becomes one line
    (units added, which keeps the expected order value exact).
    """
    n_orders = len(customer)
    chronological = np.argsort(time, kind="stable")
    order_number = np.empty(n_orders, np.int64)
    order_number[chronological] = np.arange(1, n_orders + 1)

    line_order = np.repeat(np.arange(n_orders), 1 + rng.poisson(EXTRA_LINES, n_orders))
    buyer = customer[line_order]
    size = len(line_order)
    draw = rng.random(size)
    everyday = np.searchsorted(np.cumsum(category_popularity()), rng.random(size))
    category = np.where(
        draw < FAVOURITE_SHARE,
        pop.favourite_category[buyer],
        np.where(draw < FAVOURITE_SHARE + SECOND_SHARE, pop.second_category[buyer], everyday),
    )
    category = np.minimum(category, len(CATEGORIES) - 1)
    product = _pick_products(rng, catalog, category)
    extra_units = np.array([c[3] for c in CATEGORIES])
    units = 1 + rng.poisson(extra_units[category])
    noise = np.exp(PRICE_NOISE * rng.standard_normal(size) - PRICE_NOISE**2 / 2)
    unit_price = catalog.price[product] * pop.spend_level[buyer] * noise

    key = line_order * N_PRODUCTS + product
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    units = np.bincount(inverse, units).astype(np.int64)
    line_order, product, unit_price = line_order[first], product[first], unit_price[first]
    gross = np.round(unit_price * units, 2)

    buyer = customer[line_order]
    has_discount = rng.random(n_orders) < pop.discount_propensity[customer]
    level_index = np.searchsorted(np.cumsum(DISCOUNT_LEVEL_SHARES), rng.random(n_orders))
    level = DISCOUNT_LEVELS[np.minimum(level_index, len(DISCOUNT_LEVELS) - 1)]
    share = np.where(coupon, COUPON_SHARE, np.where(has_discount, level, 0.0))
    discount = np.round(gross * share[line_order], 2)
    return {
        "customer": buyer,
        "time": time[line_order],
        "order_number": order_number[line_order],
        "product": product,
        "category": catalog.category[product],
        "quantity": units,
        "discount_amount": discount,
        "amount": np.round(gross - discount, 2),
    }


def _pick_products(rng: np.random.Generator, catalog: Catalog, category: np.ndarray) -> np.ndarray:
    """A product of each line's category, drawn by popularity within the category."""
    # Products are stored grouped by category, so category + cumulative popularity within the
    # category is increasing over all products and one searchsorted picks them all.
    counts = np.bincount(catalog.category, minlength=len(CATEGORIES))
    first = np.cumsum(counts) - counts
    cumulative = np.cumsum(catalog.popularity)
    before = np.concatenate(([0.0], cumulative))[first][catalog.category]
    ladder = catalog.category + (cumulative - before)
    product = np.searchsorted(ladder, category + rng.random(len(category)), side="right")
    return np.clip(product, first[category], first[category] + counts[category] - 1)
