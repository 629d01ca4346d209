"""True effects of contacting a customer, and the exact outcome probabilities they imply.

A contact with offer o multiplies the customer's purchase intensity by `m_o` for 14 days and
adds an unsubscribe chance `u_o`. Both depend on traits that leave traces in behaviour (price
sensitivity -> discount share, engagement -> opens/clicks, purchase rate -> frequency, basket
size -> order value, messages received). Campaign outcomes are realised from `m_o` and `u_o`, and
the ground truth integrates the same intensity over the churn-time distribution, so a learner's
estimate can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from features.simulate_calendar import Clock
from features.simulate_population import Population, hour_cdf, purchase_intensity

OFFERS = ("discount_10", "free_shipping", "content_reminder")
ARMS = ("control", *OFFERS)
OFFER_KINDS = {"discount_10": "discount", "free_shipping": "free_shipping",
               "content_reminder": "content"}  # fmt: skip
COUPON_SHARE = 0.10  # discount_10 takes 10% off the first order in the window
WINDOW_DAYS = 14.0
PURCHASE_RESIDUAL = 0.03  # churned customers still buy at 3% of their old rate
CONTACT_UNSUBSCRIBE_BASE = np.array([0.004, 0.004, 0.007])
CHUNK = 40_000


@dataclass(frozen=True)
class OrderValues:
    """Expected order value per customer: gross (before any discount) and net (after the
    customer's usual discounts)."""

    gross: np.ndarray
    net: np.ndarray


def contact_effects(
    pop: Population,
    customer: np.ndarray,
    time: np.ndarray,
    recent: np.ndarray,
    values: OrderValues,
) -> tuple[np.ndarray, np.ndarray]:
    """(log intensity multiplier, unsubscribe chance) per customer and offer, shape (n, 3).

    Frequent loyal buyers barely react (sure things); disengaged, over-messaged customers are
    put off (sleeping dogs), most of all by content reminders; price-sensitive ones respond to
    discounts and free shipping, small baskets to free shipping, engaged ones to content.
    """
    engagement = pop.engagement(time, customer)
    price = pop.price_sensitivity[customer]
    loyal = expit(3.0 * (np.log(pop.purchase_rate[customer]) - np.log(6.0)))
    scale = 1.0 - 0.95 * loyal
    crowding = 1.0 + 0.15 * np.maximum(recent - 3.0, 0.0)
    annoyance = (1.0 - engagement) ** 2 * crowding
    small_basket = expit((np.log(45.0) - np.log(values.gross[customer])) / 0.35)
    log_multiplier = np.column_stack(
        (
            scale * (2.2 * price - 0.2) - 0.5 * annoyance,
            scale * (1.2 * price + 0.8 * small_basket - 0.3) - 0.5 * annoyance,
            scale * (1.8 * engagement - 0.1) - 0.6 * annoyance,
        )
    )
    fatigue = (0.3 + 2.5 * (1.0 - engagement) ** 2) * (1.0 + 0.2 * np.maximum(recent - 3.0, 0.0))
    unsubscribe = CONTACT_UNSUBSCRIBE_BASE[None, :] * fatigue[:, None]
    return log_multiplier, unsubscribe


def window_orders(
    pop: Population,
    clock: Clock,
    customer: np.ndarray,
    start: np.ndarray,
    days: float,
    multipliers: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """P(at least one order) and E[orders] in [start, start + days) per intensity multiplier.

    Exact for the simulator's order process (daily intensity x hour profile, residual buying
    after churn), integrating over the churn time given the customer's state at `start`;
    `multipliers` has one column per scenario. Shapes: (n, k) each.
    """
    sub = pop.take(customer)
    day_start, hour_start = clock.utc_to_local(sub.zone, start)
    end = start + days
    day_end, hour_end = clock.utc_to_local(sub.zone, end)
    width = int((day_end - day_start).max(initial=0)) + 1
    grid = day_start[:, None] + np.arange(width)[None, :]
    rate = purchase_intensity(sub, clock, grid) * (grid <= day_end[:, None])
    preferred, spread = sub.preferred_hour.astype(np.float64), sub.hour_spread
    rows = np.arange(len(customer))
    rate[:, 0] *= 1.0 - hour_cdf(hour_start, preferred, spread)
    rate[rows, day_end - day_start] *= hour_cdf(hour_end, preferred, spread)
    total = rate.sum(axis=1)
    used_before = np.cumsum(rate, axis=1) - rate
    at_churn = used_before + rate / 2.0  # intensity used when churning inside piece j
    exposure = at_churn + PURCHASE_RESIDUAL * (total[:, None] - at_churn)

    midnights = clock.local_to_utc(sub.zone[:, None], grid[:, 1:], np.zeros((1, 1)))
    bounds = np.column_stack((start, np.clip(midnights, start[:, None], end[:, None]), end))
    hazard = sub.cumulative_hazard(bounds, np.arange(len(customer))[:, None])
    survival = np.exp(-(hazard - hazard[:, :1]))
    churn_in_piece = survival[:, :-1] - survival[:, 1:]
    alive = sub.churn_time > start

    probability = np.empty_like(multipliers, dtype=np.float64)
    expected = np.empty_like(probability)
    for column in range(multipliers.shape[1]):
        m = multipliers[:, column]
        none_alive = (churn_in_piece * np.exp(-m[:, None] * exposure)).sum(axis=1)
        none_alive += survival[:, -1] * np.exp(-m * total)
        count_alive = m * ((churn_in_piece * exposure).sum(axis=1) + survival[:, -1] * total)
        dead_total = m * PURCHASE_RESIDUAL * total
        probability[:, column] = 1.0 - np.where(alive, none_alive, np.exp(-dead_total))
        expected[:, column] = np.where(alive, count_alive, dead_total)
    return probability, expected


def offer_truth(
    pop: Population,
    clock: Clock,
    sends,
    values: OrderValues,
    customer: np.ndarray,
    start: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """True 14-day outcomes of contacting each customer at `start` versus not contacting.

    Returns the ground-truth columns (p_convert_control, tau_convert_<offer>, ...) and the
    log intensity multipliers and unsubscribe chances (n, 3) that realise them.
    """
    columns: dict[str, list[np.ndarray]] = {}
    multipliers_out, unsubscribe_out = [], []
    for begin in range(0, max(len(customer), 1), CHUNK):
        who, when = customer[begin : begin + CHUNK], start[begin : begin + CHUNK]
        recent = sends.recent_count(who, when)
        log_multiplier, unsubscribe = contact_effects(pop, who, when, recent, values)
        multipliers = np.exp(np.column_stack((np.zeros(len(who)), log_multiplier)))
        probability, expected = window_orders(pop, clock, who, when, WINDOW_DAYS, multipliers)
        revenue = expected * values.net[who][:, None]
        coupon = ARMS.index("discount_10")
        revenue[:, coupon] += probability[:, coupon] * ((1.0 - COUPON_SHARE) * values.gross[who] - values.net[who])
        no_unsubscribe = sends.no_unsubscribe_log_probability(pop, who, when, WINDOW_DAYS)
        p_unsubscribe = np.maximum(-np.expm1(no_unsubscribe), 0.0)
        part = {
            "engagement_now": pop.engagement(when, who),
            "recent_sends_30d": recent.astype(np.float64),
            "p_convert_control": probability[:, 0],
            "expected_revenue_control": revenue[:, 0],
            "p_unsubscribe_control": p_unsubscribe,
        }
        for position, offer in enumerate(OFFERS, start=1):
            part[f"tau_convert_{offer}"] = probability[:, position] - probability[:, 0]
            part[f"tau_revenue_{offer}"] = revenue[:, position] - revenue[:, 0]
            part[f"tau_unsubscribe_{offer}"] = unsubscribe[:, position - 1] * (1.0 - p_unsubscribe)
        for name, value in part.items():
            columns.setdefault(name, []).append(value)
        multipliers_out.append(log_multiplier)
        unsubscribe_out.append(unsubscribe)
    merged = {name: np.concatenate(parts) for name, parts in columns.items()}
    return merged, np.concatenate(multipliers_out), np.concatenate(unsubscribe_out)


def churn_truth(
    pop: Population, clock: Clock, customer: np.ndarray, start: np.ndarray, days: float = 90.0
) -> dict[str, np.ndarray]:
    """P(churned by start + days) and P(no order in [start, start + days)) per customer."""
    churned, silent = [], []
    for begin in range(0, len(customer), CHUNK):
        who, when = customer[begin : begin + CHUNK], start[begin : begin + CHUNK]
        hazard = pop.cumulative_hazard(when + days, who) - pop.cumulative_hazard(when, who)
        alive = pop.churn_time[who] > when
        churned.append(np.where(alive, -np.expm1(-hazard), 1.0))
        probability, _ = window_orders(pop, clock, who, when, days, np.ones((len(who), 1)))
        silent.append(1.0 - probability[:, 0])
    return {
        "p_churn_90d": np.concatenate(churned) if churned else np.empty(0),
        "p_no_purchase_90d": np.concatenate(silent) if silent else np.empty(0),
    }
