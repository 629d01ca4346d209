"""On-site activity and subscriptions: visits, logins, feature use, support tickets, billing.

Visits, logins and tickets are one superposed Poisson process per customer (its intensity
grows with engagement) split by type afterwards, which is exact and needs a single pass. Every
order is preceded by a visit. A subset of customers holds a monthly subscription with
renewals, failed payments, cancellations and plan usage.
"""

from __future__ import annotations

import numpy as np

from features.simulate_calendar import Clock
from features.simulate_events import CHANNEL, EventLog
from features.simulate_population import Population, engagement_on_days, weekday_factor
from features.simulate_process import sample_timed_events

ACTIVITY_RESIDUAL = 0.05  # churned customers still drop by, rarely
VISITS = (2.0, 10.0)  # visits per year = a + b * engagement
LOGINS = (1.0, 6.0)
TICKETS_PER_YEAR = 0.25  # doubled for subscribers
APP_SHARE = 0.6  # share of an app user's visits made in the app
FEATURE_USE_AFTER_LOGIN = 0.6

PLANS = ("basic", "plus", "premium")
PLAN_SHARES = np.array([0.5, 0.35, 0.15])
PLAN_LIMITS = np.array([10.0, 50.0, 200.0])
RENEWAL_DAYS = 30.4375
VOLUNTARY_CANCEL = 0.015  # per renewal
RETRY_DAYS, GRACE_DAYS = 3.0, 10.0


def _activity_parts(pop: Population, engagement: np.ndarray) -> np.ndarray:
    """(..., 3) yearly rates of visits, logins and tickets at the given engagement."""
    tickets = TICKETS_PER_YEAR * (1.0 + pop.subscriber)
    tickets = np.broadcast_to(tickets.reshape(tickets.shape + (1,) * (engagement.ndim - 1)), engagement.shape)
    return np.stack((VISITS[0] + VISITS[1] * engagement, LOGINS[0] + LOGINS[1] * engagement, tickets), -1)


def log_activity(
    rng: np.random.Generator,
    pop: Population,
    clock: Clock,
    log: EventLog,
    order_customer: np.ndarray,
    order_time: np.ndarray,
) -> None:
    """Log visits (one before every order), logins, feature use and support tickets."""

    def intensity(part: Population, days: np.ndarray) -> np.ndarray:
        engagement = engagement_on_days(part, days)
        rates = _activity_parts(part, engagement).sum(axis=-1)
        alive_days = np.atleast_2d(days) >= np.floor(part.signup)[:, None]
        return rates / 365.0 * weekday_factor(part, clock, days) * alive_days

    customer, time = sample_timed_events(rng, pop, clock, intensity, ACTIVITY_RESIDUAL)
    parts = _activity_parts(pop.take(customer), pop.engagement(time, customer)[:, None])[:, 0]
    cumulative = np.cumsum(parts, axis=1)
    kind = (rng.random(len(customer))[:, None] * cumulative[:, -1:] >= cumulative).sum(axis=1)

    in_app = pop.has_app[customer] & (rng.random(len(customer)) < APP_SHARE)
    visit = kind == 0
    log.add(customer[visit], time[visit], np.where(in_app[visit], CHANNEL["app"], CHANNEL["web"]), "visit")
    login = kind == 1
    app_login = pop.has_app[customer[login]]
    log.add(customer[login], time[login], np.where(app_login, CHANNEL["app"], CHANNEL["web"]), "login")
    uses = app_login & (rng.random(len(app_login)) < FEATURE_USE_AFTER_LOGIN)
    log.add(
        customer[login][uses], time[login][uses] + rng.exponential(5 / 1440, uses.sum()), CHANNEL["app"], "feature_use"
    )
    ticket = kind == 2
    log.add(customer[ticket], time[ticket], CHANNEL["web"], "support_ticket")

    before = order_time - (2.0 + 28.0 * rng.random(len(order_time))) / 1440.0
    app = pop.has_app[order_customer] & (rng.random(len(order_customer)) < 0.5)
    log.add(order_customer, before, np.where(app, CHANNEL["app"], CHANNEL["web"]), "visit")


def simulate_subscriptions(
    rng: np.random.Generator, pop: Population, clock: Clock, log: EventLog
) -> dict[str, np.ndarray]:
    """Monthly subscriptions as of the world's end, with their payment failures logged.

    At each renewal a customer who has churned lets it lapse, a few cancel, and a payment may
    fail (retried after 3 days; after two failures the account is past due and is cancelled
    after 10 days unless the card is fixed).
    """
    holders = np.flatnonzero(pop.subscriber)
    started = pop.signup[holders] + rng.exponential(60.0, len(holders))
    keep = started < clock.n_days - 1.0
    holders, started = holders[keep], started[keep]
    count = len(holders)
    plan = np.minimum(np.searchsorted(np.cumsum(PLAN_SHARES), rng.random(count)), 2)
    renewals = int(np.ceil((clock.n_days + RENEWAL_DAYS - started.min(initial=0.0)) / RENEWAL_DAYS))
    renewals = max(renewals, 1)
    renewal_time = started[:, None] + RENEWAL_DAYS * np.arange(1, renewals + 1)[None, :]

    fail_chance = 0.03 + 0.07 * pop.price_sensitivity[holders]
    failed_once = rng.random((count, renewals)) < fail_chance[:, None]
    failed_twice = failed_once & (rng.random((count, renewals)) < 0.5)
    lost = failed_twice & (rng.random((count, renewals)) < 0.6)
    churned = renewal_time >= pop.churn_time[holders][:, None]
    quits = rng.random((count, renewals)) < VOLUNTARY_CANCEL
    ending = churned | quits | lost
    # The subscription ends at the first ending renewal (after a grace period when unpaid).
    first_end = np.where(ending.any(axis=1), ending.argmax(axis=1), renewals)
    rows = np.arange(count)
    index = np.minimum(first_end, renewals - 1)
    end_time = np.where(
        first_end < renewals,
        renewal_time[rows, index]
        + np.where(lost[rows, index] & ~churned[rows, index] & ~quits[rows, index], GRACE_DAYS, 0.0),
        np.inf,
    )
    active_renewal = np.arange(renewals)[None, :] <= first_end[:, None]
    failure_one = failed_once & active_renewal & ~(churned | quits)
    failure_two = failed_twice & failure_one
    who = np.repeat(holders, renewals).reshape(count, renewals)
    offset = rng.random((count, renewals)) / 24.0
    log.add(who[failure_one], renewal_time[failure_one] + offset[failure_one], CHANNEL["web"], "payment_failed")
    log.add(
        who[failure_two], renewal_time[failure_two] + RETRY_DAYS + offset[failure_two], CHANNEL["web"], "payment_failed"
    )
    ticket = failure_one & (rng.random((count, renewals)) < 0.35)
    log.add(who[ticket], renewal_time[ticket] + rng.exponential(1.0, ticket.sum()), CHANNEL["web"], "support_ticket")

    end = float(clock.n_days)
    past = renewal_time <= end
    last = np.where(past.any(axis=1), past.sum(axis=1) - 1, -1)
    last_index = np.maximum(last, 0)
    last_time = renewal_time[rows, last_index]
    unpaid_for = np.where(
        failure_two[rows, last_index], GRACE_DAYS, np.where(failure_one[rows, last_index], RETRY_DAYS, 0.0)
    )
    past_due = (last >= 0) & (end < last_time + unpaid_for)
    cancelled = end_time <= end
    status = np.where(cancelled, 2, np.where(past_due, 1, 0))
    next_renewal = started + RENEWAL_DAYS * (np.floor((end - started) / RENEWAL_DAYS) + 1)
    renews_at = np.where(cancelled, renewal_time[rows, index], next_renewal)

    limit = PLAN_LIMITS[plan]
    engagement = pop.engagement(np.full(count, end), holders)
    alive = np.where(pop.churn_time[holders] > end, 1.0, 0.05)
    usage = limit * np.minimum(1.2, engagement / 0.45 * np.exp(0.4 * rng.standard_normal(count) - 0.08) * alive)
    return {
        "customer": holders,
        "plan": plan,
        "started": started,
        "renews": renews_at,
        "status": status,  # 0 active, 1 past_due, 2 cancelled
        "usage": np.round(np.where(cancelled, 0.0, usage), 1),
        "usage_limit": limit,
    }
