"""Randomised campaigns: who is eligible, how arms are assigned, and the contact's effects.

Several campaigns spread over the world each take a random sample of reachable customers who
are alive or lapsed within 180 days, and randomise them into `control` and three offers with
known probabilities (one campaign stratifies them by acquisition channel). Treated customers
get a `send` on the campaign's channel; the contact's true effects come from
`features.simulate_effects`, which also gives the ground truth at assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.simulate_calendar import Clock
from features.simulate_effects import ARMS, WINDOW_DAYS, OrderValues, offer_truth
from features.simulate_events import EventLog
from features.simulate_messaging import (
    SEND_HOUR,
    UNSUBSCRIBE_DELAY_HOURS,
    RegularSends,
    log_responses,
)
from features.simulate_population import ACQUISITION_CHANNELS, MESSAGE_CHANNELS, Population

SAMPLE_FRACTION = 0.5
LAPSED_DAYS = 180.0  # customers who churned less than this long ago are still on the list
CHANNEL_CYCLE = ("email", "email", "sms", "email", "push", "email")
DESIGN_CYCLE: tuple[tuple[float, float, float, float] | None, ...] = (
    (0.25, 0.25, 0.25, 0.25),
    None,  # stratified by acquisition channel, see STRATIFIED
    (0.40, 0.20, 0.20, 0.20),
    (0.30, 0.30, 0.20, 0.20),
    (0.25, 0.25, 0.25, 0.25),
    (0.40, 0.20, 0.20, 0.20),
)
STRATIFIED = {
    "default": (0.20, 0.30, 0.25, 0.25),
    "paid_search": (0.40, 0.20, 0.20, 0.20),
    "social": (0.40, 0.20, 0.20, 0.20),
}


@dataclass(frozen=True)
class CampaignPlan:
    """One campaign: its id, local send day, channel and arm probabilities per stratum."""

    code: int
    campaign_id: str
    day: int
    channel: int
    arm_probabilities: dict[str, tuple[float, ...]]

    def probabilities(self, acquisition: np.ndarray) -> np.ndarray:
        """(customers x arms) assignment probabilities for these customers."""
        table = np.array(
            [self.arm_probabilities.get(name, self.arm_probabilities["default"]) for name in ACQUISITION_CHANNELS]
        )
        return table[acquisition]

    def describe(self, clock: Clock) -> dict:
        """JSON-ready description for the world's metadata."""
        date = clock.start + np.timedelta64(self.day, "D")
        return {
            "campaign_id": self.campaign_id,
            "date": date.date().isoformat(),
            "channel": MESSAGE_CHANNELS[self.channel],
            "send_local_hour": float(SEND_HOUR[self.channel]),
            "arms": list(ARMS),
            "stratified_by": "acquisition_channel" if len(self.arm_probabilities) > 1 else None,
            "arm_probabilities": {
                stratum: dict(zip(ARMS, map(float, shares), strict=True))
                for stratum, shares in self.arm_probabilities.items()
            },
            "sample_fraction": SAMPLE_FRACTION,
            "outcome_window_days": WINDOW_DAYS,
            "eligibility": "signed up at least a day before, consented and not unsubscribed on "
            "the channel, valid e-mail address, alive or churned within 180 days, not assigned "
            "in another campaign during the previous 14 days",
        }


def plan_campaigns(clock: Clock, months: int) -> list[CampaignPlan]:
    """At least four campaigns spread evenly so each 14-day window ends inside the world."""
    count = max(4, months // 2)
    usable = max(clock.n_days - int(WINDOW_DAYS) - 2, 1)
    plans = []
    for code in range(count):
        day = int((code + 0.5) * usable / count)
        channel = MESSAGE_CHANNELS.index(CHANNEL_CYCLE[code % len(CHANNEL_CYCLE)])
        design = DESIGN_CYCLE[code % len(DESIGN_CYCLE)]
        probabilities = STRATIFIED if design is None else {"default": design}
        date = clock.start + np.timedelta64(day, "D")
        plans.append(CampaignPlan(code, f"cmp{code + 1:02d}_{date:%Y%m%d}", day, channel, probabilities))
    return plans


def run_campaigns(
    rng: np.random.Generator,
    pop: Population,
    clock: Clock,
    sends: RegularSends,
    values: OrderValues,
    plans: list[CampaignPlan],
    log: EventLog,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Assign every campaign in time order; returns (exposures, truth at assignment).

    Campaign sends and their responses go to `log`; unsubscribes a contact causes are written
    into `sends` so later campaigns and the schedule respect them.
    """
    consent = (pop.email_consent, pop.sms_consent, pop.push_consent)
    last_assigned = np.full(pop.size, -np.inf)
    exposures: dict[str, list[np.ndarray]] = {}
    truths: dict[str, list[np.ndarray]] = {}
    for plan in plans:
        send_time = clock.local_to_utc(
            pop.zone, np.full(pop.size, plan.day), np.full(pop.size, SEND_HOUR[plan.channel])
        )
        eligible = consent[plan.channel] & (pop.signup <= send_time - 1.0)
        eligible &= pop.churn_time > send_time - LAPSED_DAYS
        eligible &= sends.unsubscribe_time[plan.channel] > send_time
        eligible &= send_time >= last_assigned + WINDOW_DAYS
        eligible &= send_time + WINDOW_DAYS <= clock.n_days
        if plan.channel == 0:
            eligible &= ~pop.hard_bounce
        who = np.flatnonzero(eligible & (rng.random(pop.size) < SAMPLE_FRACTION))
        start = send_time[who]
        probabilities = plan.probabilities(pop.acquisition[who])
        draw = rng.random(len(who))[:, None]
        arm = np.minimum((draw >= np.cumsum(probabilities, axis=1)).sum(axis=1), len(ARMS) - 1)
        rows = np.arange(len(who))
        truth, log_multiplier, unsubscribe = offer_truth(pop, clock, sends, values, who, start)

        treated = arm > 0
        offer_index = np.maximum(arm - 1, 0)
        log_responses(
            rng, pop, clock, log, who[treated], start[treated],
            np.full(treated.sum(), plan.channel), sends.bounce_time, plan.code, arm[treated],
        )  # fmt: skip
        quits = treated & (rng.random(len(who)) < unsubscribe[rows, offer_index])
        quit_time = start[quits] + rng.exponential(UNSUBSCRIBE_DELAY_HOURS / 24.0, quits.sum())
        earlier = quit_time < sends.unsubscribe_time[plan.channel, who[quits]]
        target = who[quits][earlier]
        sends.unsubscribe_time[plan.channel, target] = quit_time[earlier]
        sends.unsubscribe_campaign[plan.channel, target] = plan.code
        sends.unsubscribe_offer[plan.channel, target] = arm[quits][earlier]
        last_assigned[who] = start

        part = {
            "customer": who,
            "campaign": np.full(len(who), plan.code),
            "arm": arm,
            "time": start,
            "channel": np.full(len(who), plan.channel),
            "propensity": probabilities[rows, arm],
            "log_multiplier": np.where(treated, log_multiplier[rows, offer_index], 0.0),
        }
        for name, value in part.items():
            exposures.setdefault(name, []).append(value)
        for name, value in truth.items():
            truths.setdefault(name, []).append(value)
    merged = {name: np.concatenate(parts) for name, parts in exposures.items()}
    return merged, {name: np.concatenate(parts) for name, parts in truths.items()}
