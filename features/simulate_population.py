"""Latent customer traits and the laws that turn them into behaviour over time.

Each customer has a purchase rate, price sensitivity, engagement that decays with tenure,
preferred hour/weekday/channel, a time zone and consents. The churn hazard rises as engagement
decays (a Gompertz law, so churn times are drawn in closed form). The same functions drive the
simulated rows and the ground truth, which is what makes the truth exact.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.special import expit, ndtr

from features.simulate_calendar import TIMEZONES, Clock

ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "referral", "email")
ACQUISITION_SHARES = (0.35, 0.25, 0.15, 0.10, 0.15)
MESSAGE_CHANNELS = ("email", "sms", "push")
EMAIL_FREQUENCIES = ("weekly", "biweekly", "monthly")
WEEKDAY_SHARES = (0.12, 0.12, 0.13, 0.13, 0.12, 0.18, 0.20)

HOUR_FOCUS = 0.75  # share of a customer's activity near the preferred hour; the rest is uniform
WEEKDAY_BOOST = 0.7  # extra activity on the preferred weekday
PURCHASE_DECAY_POWER = 0.5  # purchase rate follows engagement ** this
HAZARD_SLOPE = 1.0  # hazard = hazard0 * (engagement0 / engagement) ** slope
SUBSCRIBER_SHARE = (0.08, 0.25)  # P(subscriber) = a + b * engagement0


@dataclass
class Population:
    """Latent traits of all customers as parallel arrays (index = customer number - 1).

    Times are float days since the world's start; `churn_time` is when the customer silently
    leaves (may lie before the start or after the end).
    """

    signup: np.ndarray
    zone: np.ndarray
    acquisition: np.ndarray
    engagement0: np.ndarray
    decay_days: np.ndarray
    price_sensitivity: np.ndarray
    purchase_rate: np.ndarray
    spend_level: np.ndarray
    discount_propensity: np.ndarray
    preferred_hour: np.ndarray
    hour_spread: np.ndarray
    preferred_weekday: np.ndarray
    preferred_channel: np.ndarray
    has_app: np.ndarray
    email_consent: np.ndarray
    sms_consent: np.ndarray
    push_consent: np.ndarray
    email_frequency: np.ndarray
    hard_bounce: np.ndarray
    favourite_category: np.ndarray
    second_category: np.ndarray
    subscriber: np.ndarray
    hazard0: np.ndarray
    churn_time: np.ndarray

    @property
    def size(self) -> int:
        return len(self.signup)

    def take(self, index: np.ndarray) -> Population:
        """The traits of a subset of customers (used to process them in chunks)."""
        return Population(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def engagement(self, time: np.ndarray, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Engagement (0-1) at `time`: it decays exponentially with tenure."""
        tenure = np.maximum(time - self.signup[index], 0.0)
        return self.engagement0[index] * np.exp(-tenure / self.decay_days[index])

    def cumulative_hazard(self, time: np.ndarray, index: np.ndarray | slice = slice(None)):
        """Integrated churn hazard from signup to `time` (Gompertz: hazard grows with tenure)."""
        tenure = np.maximum(time - self.signup[index], 0.0)
        growth = HAZARD_SLOPE / self.decay_days[index]
        return self.hazard0[index] / growth * np.expm1(growth * tenure)

    def hazard(self, time: np.ndarray, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Daily churn hazard at `time`."""
        tenure = np.maximum(time - self.signup[index], 0.0)
        return self.hazard0[index] * np.exp(HAZARD_SLOPE * tenure / self.decay_days[index])


def _pick(rng: np.random.Generator, shares, size: int) -> np.ndarray:
    shares = np.asarray(shares, dtype=np.float64)
    return np.searchsorted(np.cumsum(shares / shares.sum()), rng.random(size)).astype(np.int8)


def _signup_times(rng: np.random.Generator, n: int, n_days: int, months: int) -> np.ndarray:
    """Signups: most before the start (exponential tenure), a share during the window."""
    share_new = min(0.35, 0.03 * months)
    new = rng.random(n) < share_new
    # Acquisition grows over the window: the density rises linearly by 50% (inverse CDF).
    during = 2.0 * (np.sqrt(1.0 + 1.25 * rng.random(n)) - 1.0) * (n_days - 1.0)
    before = -np.minimum(rng.exponential(420.0, n), 1800.0)
    return np.where(new, np.minimum(during, n_days - 1.0), before)


def draw_population(
    rng: np.random.Generator,
    n: int,
    n_days: int,
    months: int,
    n_categories: int,
    category_popularity: np.ndarray,
) -> Population:
    """Draw the latent traits of `n` customers (vectorised; correlated through shared factors)."""
    acquisition = _pick(rng, ACQUISITION_SHARES, n)
    # Acquisition channel shifts engagement and price sensitivity (referral/email engaged,
    # paid search/social bargain hunters).
    engagement_shift = np.array([0.0, -0.2, -0.15, 0.35, 0.3])[acquisition]
    price_shift = np.array([0.0, 0.35, 0.25, -0.2, 0.0])[acquisition]
    z = rng.standard_normal((5, n))
    z_engagement = z[0]
    z_rate = 0.45 * z[0] + np.sqrt(1 - 0.45**2) * z[1]
    z_price = z[2]
    z_spend = -0.3 * z[2] + np.sqrt(1 - 0.3**2) * z[3]

    engagement0 = expit(-0.3 + 1.0 * z_engagement + engagement_shift)
    price_sensitivity = expit(-0.55 + 1.1 * z_price + price_shift)
    purchase_rate = 2.2 * np.exp(0.85 * z_rate)
    decay_days = 900.0 * np.exp(0.6 * z[4])
    hazard0 = 0.0008 * np.exp(-1.8 * (engagement0 - 0.43)) * (purchase_rate / 2.2) ** -0.35

    signup = _signup_times(rng, n, n_days, months)
    churn_draw = rng.exponential(1.0, n)
    growth = HAZARD_SLOPE / decay_days
    churn_time = signup + np.log1p(growth * churn_draw / hazard0) / growth

    cluster = _pick(rng, (0.30, 0.25, 0.45), n)
    centre = np.array([8.0, 12.5, 20.0])[cluster]
    spread = np.array([1.5, 1.0, 1.8])[cluster]
    preferred_hour = np.mod(np.round(centre + spread * rng.standard_normal(n)), 24).astype(np.int8)

    has_app = rng.random(n) < 0.2 + 0.45 * engagement0
    preferred_channel = _pick(rng, (0.55, 0.15, 0.30), n)
    preferred_channel[(preferred_channel == 2) & ~has_app] = 0
    sms_consent = rng.random(n) < np.where(preferred_channel == 1, 0.85, 0.2)
    push_consent = has_app & (rng.random(n) < np.where(preferred_channel == 2, 0.9, 0.6))

    favourite = _pick(rng, category_popularity, n)
    second = _pick(rng, category_popularity, n)
    return Population(
        signup=signup,
        zone=_pick(rng, [share for _, share in TIMEZONES], n),
        acquisition=acquisition,
        engagement0=engagement0,
        decay_days=decay_days,
        price_sensitivity=price_sensitivity,
        purchase_rate=purchase_rate,
        spend_level=np.exp(0.35 * z_spend - 0.35**2 / 2),
        discount_propensity=0.03 + 0.5 * price_sensitivity**2,
        preferred_hour=preferred_hour,
        hour_spread=1.0 + 1.5 * rng.random(n),
        preferred_weekday=_pick(rng, WEEKDAY_SHARES, n),
        preferred_channel=preferred_channel,
        has_app=has_app,
        email_consent=rng.random(n) < 0.88,
        sms_consent=sms_consent,
        push_consent=push_consent,
        email_frequency=_pick(rng, (0.15, 0.45, 0.40), n),
        hard_bounce=rng.random(n) < 0.015,
        favourite_category=np.minimum(favourite, n_categories - 1),
        second_category=np.minimum(second, n_categories - 1),
        subscriber=rng.random(n) < SUBSCRIBER_SHARE[0] + SUBSCRIBER_SHARE[1] * engagement0,
        hazard0=hazard0,
        churn_time=churn_time,
    )


# ----------------------------------------------------------------------------------------------
# Time of day: a wrapped normal around the preferred hour mixed with a uniform
# ----------------------------------------------------------------------------------------------


def sample_hours(rng: np.random.Generator, preferred: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Local hours (0-24) of activity: near the preferred hour with probability HOUR_FOCUS."""
    size = len(preferred)
    focused = rng.random(size) < HOUR_FOCUS
    near = preferred + 0.5 + spread * rng.standard_normal(size)
    anywhere = 24.0 * rng.random(size)
    return np.mod(np.where(focused, near, anywhere), 24.0)


def hour_cdf(hour: np.ndarray, preferred: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Share of a day's activity before local `hour` (exact CDF of `sample_hours`)."""
    centre = preferred + 0.5
    wrapped = np.zeros(np.broadcast(hour, centre).shape)
    for shift in (-24.0, 0.0, 24.0):
        wrapped += ndtr((hour - centre + shift) / spread) - ndtr((0.0 - centre + shift) / spread)
    return HOUR_FOCUS * wrapped + (1.0 - HOUR_FOCUS) * hour / 24.0


# ----------------------------------------------------------------------------------------------
# Daily intensities on local days (expected events per day, before churn thinning)
# ----------------------------------------------------------------------------------------------


def weekday_factor(pop: Population, clock: Clock, days: np.ndarray) -> np.ndarray:
    """(customers x days) activity multiplier: higher on the preferred weekday, mean 1.

    `days` is a 1-D vector shared by all customers or a (customers x days) matrix.
    """
    weekday = clock.weekday[clock.position(np.atleast_2d(days))]
    match = weekday == pop.preferred_weekday[:, None]
    return (1.0 + WEEKDAY_BOOST * match) / (1.0 + WEEKDAY_BOOST / 7.0)


def engagement_on_days(pop: Population, days: np.ndarray) -> np.ndarray:
    """(customers x days) engagement at the middle of each local day."""
    tenure = np.maximum(np.atleast_2d(days) + 0.5 - pop.signup[:, None], 0.0)
    return pop.engagement0[:, None] * np.exp(-tenure / pop.decay_days[:, None])


def purchase_intensity(pop: Population, clock: Clock, days: np.ndarray) -> np.ndarray:
    """(customers x days) expected orders per local day while alive, zero before signup day.

    Frequency follows the customer's rate, the season, the weekday preference and decays with
    engagement (a declining purchase rhythm precedes churn).
    """
    days = np.atleast_2d(days)
    relative = engagement_on_days(pop, days) / pop.engagement0[:, None]
    intensity = (
        pop.purchase_rate[:, None]
        / 365.0
        * clock.season[clock.position(days)]
        * weekday_factor(pop, clock, days)
        * relative**PURCHASE_DECAY_POWER
    )
    return intensity * (days >= np.floor(pop.signup)[:, None])
