"""The shop's regular messaging: scheduled e-mail/SMS/push sends and how customers react.

Sends follow a fixed calendar per channel (e-mail weekly, fortnightly or monthly by customer
tier), at a fixed local hour, to consented customers. Every send carries an unsubscribe risk
that grows when engagement has decayed and when the customer got many sends in the last 30
days; the first unsubscribe on a channel stops that channel. Opens come near the customer's
preferred hour, clicks follow opens, plus bounces and complaints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulate_calendar import Clock
from features.simulate_events import CHANNEL, EventLog
from features.simulate_population import Population

SEND_HOUR = np.array([10.0, 12.0, 18.0])  # local send hour for email, sms, push
SEND_JITTER_HOURS = np.array([0.5, 0.05, 0.25])
UNSUBSCRIBE_BASE = np.array([0.0015, 0.004, 0.002])  # per regular send, by channel
RECENT_DAYS = 30.0
HISTORY_DAYS = 35  # potential sends before the start exist only to count recent sends
FUTURE_DAYS = 20  # and after the end only for the end-of-world ground truth
CHURNED_RESPONSE = 0.15  # a churned customer still opens, rarely
SOFT_BOUNCE = 0.004
UNSUBSCRIBE_DELAY_HOURS = 1.0


def unsubscribe_risk(base: np.ndarray, engagement: np.ndarray, recent: np.ndarray) -> np.ndarray:
    """Probability that one message makes the customer unsubscribe.

    Higher for disengaged customers and for customers who got more than three scheduled
    messages in the last 30 days (over-messaging).
    """
    return base * (0.3 + 2.5 * (1.0 - engagement) ** 2) * (1.0 + 0.2 * np.maximum(recent - 3.0, 0.0))


def _schedule(clock: Clock, channel: str, frequency: int) -> np.ndarray:
    """Local days with a scheduled send for a channel (and e-mail frequency tier)."""
    days = np.arange(-HISTORY_DAYS, clock.n_days + FUTURE_DAYS)
    weekday = clock.weekday[clock.position(days)]
    day_of_month = clock.day_of_month[clock.position(days)]
    week_parity = (days // 7) % 2
    if channel == "email":
        rules = (weekday == 1, (weekday == 1) & (week_parity == 0), (weekday == 1) & (day_of_month <= 7))
        return days[rules[frequency]]
    if channel == "sms":
        return days[(weekday == 3) & (day_of_month >= 8) & (day_of_month <= 14)]
    return days[(weekday == 4) & (week_parity == 1)]


@dataclass
class RegularSends:
    """All scheduled sends the shop would make (before unsubscribes cut them), sorted by
    (customer, time), plus each customer's first unsubscribe and hard bounce per channel."""

    customer: np.ndarray
    time: np.ndarray
    channel: np.ndarray
    key: np.ndarray
    origin: float
    span: float
    unsubscribe_time: np.ndarray  # (3, customers): first unsubscribe event time, inf if none
    unsubscribe_campaign: np.ndarray  # (3, customers): campaign code that caused it, or -1
    unsubscribe_offer: np.ndarray
    bounce_time: np.ndarray  # hard bounce (first e-mail) time, inf if the address is fine

    def _key(self, customer: np.ndarray, time: np.ndarray) -> np.ndarray:
        return customer * self.span + (time - self.origin)

    def recent_count(self, customer: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Scheduled sends to `customer` in (time - 30 days, time] (the over-messaging count)."""
        key = self._key(customer, time)
        upper = np.searchsorted(self.key, key, side="right")
        return upper - np.searchsorted(self.key, key - RECENT_DAYS, side="right")

    def risk(self, pop: Population, index: np.ndarray) -> np.ndarray:
        """Unsubscribe risk of the scheduled sends at positions `index`."""
        customer, time, channel = self.customer[index], self.time[index], self.channel[index]
        risk = unsubscribe_risk(
            UNSUBSCRIBE_BASE[channel],
            pop.engagement(time, customer),
            self.recent_count(customer, time),
        )
        return np.where((channel == 0) & pop.hard_bounce[customer], 0.0, risk)

    def no_unsubscribe_log_probability(
        self, pop: Population, customer: np.ndarray, start: np.ndarray, days: float
    ) -> np.ndarray:
        """log P(no scheduled send in [start, start + days) makes the customer unsubscribe).

        Only channels the customer is still subscribed to at `start` count.
        """
        low = np.searchsorted(self.key, self._key(customer, start), side="left")
        high = np.searchsorted(self.key, self._key(customer, start + days), side="left")
        total = np.zeros(len(customer))
        for step in range(int((high - low).max(initial=0))):
            position = low + step
            valid = position < high
            index = position[valid]
            subscribed = self.unsubscribe_time[self.channel[index], customer[valid]] >= start[valid]
            total[valid] += np.log1p(-self.risk(pop, index)) * subscribed
        return total


def build_regular_sends(rng: np.random.Generator, pop: Population, clock: Clock) -> RegularSends:
    """Schedule every send, then draw each one's unsubscribe so the first per channel is known."""
    groups = []
    consent = (pop.email_consent, pop.sms_consent, pop.push_consent)
    for channel_code, channel in enumerate(("email", "sms", "push")):
        tiers = range(3) if channel == "email" else (None,)
        for tier in tiers:
            members = consent[channel_code]
            if tier is not None:
                members = members & (pop.email_frequency == tier)
            customers = np.flatnonzero(members)
            days = _schedule(clock, channel, tier or 0)
            customer = np.repeat(customers, len(days))
            day = np.tile(days, len(customers))
            hour = SEND_HOUR[channel_code] + SEND_JITTER_HOURS[channel_code] * rng.random(len(day))
            time = clock.local_to_utc(pop.zone[customer], day, hour)
            keep = time >= pop.signup[customer]
            groups.append((customer[keep].astype(np.int32), time[keep], channel_code))
    customer = np.concatenate([group[0] for group in groups])
    time = np.concatenate([group[1] for group in groups])
    channel = np.concatenate([np.full(len(group[0]), group[2], np.int8) for group in groups])
    del groups
    origin = float(-HISTORY_DAYS - 2)
    span = float(clock.n_days + FUTURE_DAYS + HISTORY_DAYS + 40)
    key = customer * span + (time - origin)
    order = np.argsort(key, kind="stable")
    customer, time, channel, key = customer[order], time[order], channel[order], key[order]
    del order

    n = pop.size
    bounce_time = np.full(n, np.inf)
    is_email = channel == 0
    bouncing = is_email & pop.hard_bounce[customer]
    np.minimum.at(bounce_time, customer[bouncing], time[bouncing])

    sends = RegularSends(
        customer=customer,
        time=time,
        channel=channel,
        key=key,
        origin=origin,
        span=span,
        unsubscribe_time=np.full((3, n), np.inf),
        unsubscribe_campaign=np.full((3, n), -1, np.int16),
        unsubscribe_offer=np.full((3, n), -1, np.int8),
        bounce_time=bounce_time,
    )
    flagged = []
    step = 5_000_000
    for begin in range(0, len(customer), step):
        index = np.arange(begin, min(begin + step, len(customer)))
        hit = rng.random(len(index)) < sends.risk(pop, index)
        flagged.append(index[hit])
    hits = np.concatenate(flagged)
    delay = rng.exponential(UNSUBSCRIBE_DELAY_HOURS / 24.0, len(hits))
    np.minimum.at(sends.unsubscribe_time, (channel[hits], customer[hits]), time[hits] + delay)
    return sends


def log_responses(
    rng: np.random.Generator,
    pop: Population,
    clock: Clock,
    log: EventLog,
    customer: np.ndarray,
    time: np.ndarray,
    channel: np.ndarray,
    bounce_time: np.ndarray,
    campaign: int | np.ndarray = -1,
    offer: int | np.ndarray = -1,
) -> None:
    """Log sends and what followed: opens near the preferred hour, clicks, bounces, complaints.

    `bounce_time` holds each customer's hard-bounce time (the send at that time bounces).
    """
    log.add(customer, time, channel, "send", campaign, offer)
    size = len(customer)
    campaign = np.broadcast_to(np.asarray(campaign, np.int16), (size,))
    offer = np.broadcast_to(np.asarray(offer, np.int8), (size,))
    engagement = pop.engagement(time, customer)
    alive = np.where(time < pop.churn_time[customer], 1.0, CHURNED_RESPONSE)
    _, send_hour = clock.utc_to_local(pop.zone[customer], time)
    preferred = pop.preferred_hour[customer] + 0.5
    hour_match = 0.75 + 0.25 * np.cos(2 * np.pi * (send_hour - preferred) / 24.0)
    favourite = np.where(channel == pop.preferred_channel[customer], 1.3, 1.0)
    email = channel == CHANNEL["email"]

    bounced = email & (rng.random(size) < SOFT_BOUNCE)
    bounced |= email & (time == bounce_time[customer])
    log.add(
        customer[bounced], time[bounced] + 1.0 / 1440.0, channel[bounced], "bounce", campaign[bounced], offer[bounced]
    )
    complained = email & ~bounced & (rng.random(size) < 0.0003 * (1.0 + 4.0 * (1.0 - engagement)))
    log.add(
        customer[complained],
        time[complained] + rng.exponential(2.0 / 24.0, complained.sum()),
        channel[complained],
        "complaint",
        campaign[complained],
        offer[complained],
    )

    open_base = np.where(email, 0.06 + 0.55 * engagement**1.1, 0.03 + 0.3 * engagement**1.1)
    open_probability = np.minimum(open_base * hour_match * favourite * alive, 0.95)
    opened = ~bounced & (channel != CHANNEL["sms"]) & (rng.random(size) < open_probability)
    # SMS has no open tracking: its clicks come straight from the send.
    sms_click = (channel == CHANNEL["sms"]) & (
        rng.random(size) < (0.01 + 0.15 * engagement) * hour_match * favourite * alive
    )
    reacts = opened | sms_click
    index = np.flatnonzero(reacts)
    quick = rng.random(len(index)) < 0.35
    target = preferred[index] + pop.hour_spread[customer[index]] * 0.6 * rng.standard_normal(len(index))
    later = np.mod(target - send_hour[index], 24.0)
    delay_hours = np.where(quick, rng.exponential(0.6, len(index)), later)
    react_time = time[index] + delay_hours / 24.0
    opens = opened[index]
    log.add(
        customer[index][opens],
        react_time[opens],
        channel[index][opens],
        "open",
        campaign[index][opens],
        offer[index][opens],
    )
    click_probability = np.where(opens, 0.08 + 0.35 * engagement[index], 1.0)
    clicked = rng.random(len(index)) < click_probability
    click_time = react_time[clicked] + np.where(opens[clicked], rng.exponential(2.0 / 1440.0, clicked.sum()), 0.0)
    log.add(
        customer[index][clicked],
        click_time,
        channel[index][clicked],
        "click",
        campaign[index][clicked],
        offer[index][clicked],
    )


def log_regular_sends(
    rng: np.random.Generator, pop: Population, clock: Clock, sends: RegularSends, log: EventLog
) -> None:
    """Log the scheduled sends that really happen (before the first unsubscribe and before a
    hard bounce, inside the world) with their responses, and the unsubscribe events."""
    time, customer, channel = sends.time, sends.customer, sends.channel
    happens = (time >= 0) & (time < clock.n_days)
    happens &= time < sends.unsubscribe_time[channel, customer]
    happens &= (channel != 0) | (time <= sends.bounce_time[customer])
    index = np.flatnonzero(happens)
    step = 4_000_000
    for begin in range(0, len(index), step):
        part = index[begin : begin + step]
        log_responses(rng, pop, clock, log, customer[part], time[part], channel[part], sends.bounce_time)
    for channel_code in range(3):
        when = sends.unsubscribe_time[channel_code]
        who = np.flatnonzero(np.isfinite(when))
        log.add(
            who,
            when[who],
            channel_code,
            "unsubscribe",
            sends.unsubscribe_campaign[channel_code, who],
            sends.unsubscribe_offer[channel_code, who],
        )
