"""A simulated shop with known ground truth: the built-in default data set.

`simulate_world` draws customers with latent traits (purchase rate, price sensitivity, decaying
engagement, preferred hour/weekday/channel, time zone) and lets them buy, read and ignore
messages, visit, subscribe, churn and take part in randomised campaigns. It returns the
contract tables plus `ground_truth` (per customer: traits, churn, true 14-day offer effects at
the end of the world) and `exposure_truth` (the same effects at each campaign assignment), so
churn calibration, uplift recovery and policy value can be scored against the truth.
The modules `features/simulate_*.py` hold the parts, in the order they run here.
"""

from __future__ import annotations

import json
import logging
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.simulate_activity import log_activity, simulate_subscriptions
from features.simulate_calendar import TIMEZONES, make_clock
from features.simulate_campaigns import plan_campaigns, run_campaigns
from features.simulate_effects import (
    ARMS,
    COUPON_SHARE,
    OFFER_KINDS,
    OFFERS,
    PURCHASE_RESIDUAL,
    WINDOW_DAYS,
    churn_truth,
    offer_truth,
)
from features.simulate_events import EventLog
from features.simulate_messaging import build_regular_sends, log_regular_sends
from features.simulate_orders import (
    CATEGORIES,
    apply_campaigns,
    baseline_orders,
    build_catalog,
    category_popularity,
    expected_order_values,
    order_lines,
)
from features.simulate_population import draw_population
from features.simulate_tables import (
    customer_labels,
    customers_table,
    events_table,
    exposure_truth_table,
    exposures_table,
    ground_truth_table,
    subscriptions_table,
    transactions_table,
)
from features.storage import write_tables_atomic

logger = logging.getLogger(__name__)

WORLD_META_FILE = "world.json"
SIMULATOR_VERSION = 1
MAX_MONTHS = 60
Progress = Callable[[str, float], None]

# Stage names and the share of the run they take (for a progress bar).
STAGES = (
    ("customers", 0.03),
    ("messaging", 0.17),
    ("campaigns", 0.08),
    ("orders", 0.17),
    ("activity", 0.2),
    ("subscriptions", 0.03),
    ("ground truth", 0.12),
    ("tables", 0.2),
)


@dataclass
class World:
    """A simulated data set: contract tables plus truth tables, and what produced them."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def contract_tables(self) -> dict[str, pd.DataFrame]:
        """Only the tables of the data contract (what a real shop would have)."""
        truth = ("ground_truth", "exposure_truth")
        return {name: frame for name, frame in self.tables.items() if name not in truth}


def _check_whole(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _parse_start(start: Any) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(start)
    except (ValueError, TypeError) as error:
        raise ValueError(f"start must be a date such as '2025-01-01', got {start!r} ({error})") from None
    if stamp is pd.NaT:
        raise ValueError(f"start must be a date such as '2025-01-01', got {start!r}")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if stamp != stamp.normalize():
        raise ValueError(f"start must be a date at midnight (UTC), got {start!r}; drop the time")
    return stamp.as_unit("us")


class _Stages:
    """Reports `(stage, fraction of the whole run done)` to an optional callback."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.done = 0.0
        self.weights = dict(STAGES)

    def begin(self, stage: str) -> None:
        logger.info("simulating %s", stage)
        if self.progress is not None:
            self.progress(stage, round(self.done, 4))
        self.done += self.weights[stage]

    def finish(self) -> None:
        if self.progress is not None:
            self.progress("done", 1.0)


def simulate_world(
    n_customers: int,
    months: int = 12,
    seed: int = 0,
    start: str = "2025-01-01",
    progress: Progress | None = None,
) -> World:
    """Simulate `n_customers` over `months` calendar months from `start` (UTC midnight).

    Deterministic for a given `seed`. `progress(stage, fraction_done)` is called as stages
    begin (for a progress bar). Returns the contract tables, `ground_truth` and
    `exposure_truth`; `meta` describes the campaigns, offers and settings.
    """
    n = _check_whole("n_customers", n_customers, 1)
    months = _check_whole("months", months, 1, MAX_MONTHS)
    seed = _check_whole("seed", seed, 0)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable(stage, fraction) or None, got {progress!r}")
    start_at = _parse_start(start)
    end_at = start_at + pd.DateOffset(months=months)
    n_days = int((end_at - start_at).days)
    stages = _Stages(progress)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(10)]
    clock = make_clock(start_at, n_days)

    stages.begin("customers")
    catalog = build_catalog(streams[0])
    pop = draw_population(streams[1], n, n_days, months, len(CATEGORIES), category_popularity())
    values = expected_order_values(pop, catalog)

    stages.begin("messaging")
    log = EventLog()
    sends = build_regular_sends(streams[2], pop, clock)

    stages.begin("campaigns")
    plans = plan_campaigns(clock, months)
    exposures, exposure_truth = run_campaigns(streams[3], pop, clock, sends, values, plans, log)
    log_regular_sends(streams[4], pop, clock, sends, log)

    stages.begin("orders")
    order_customer, order_time = baseline_orders(streams[5], pop, clock)
    order_customer, order_time, coupon = apply_campaigns(
        streams[5], pop, clock, order_customer, order_time, exposures, ARMS.index("discount_10")
    )
    lines = order_lines(streams[6], pop, catalog, order_customer, order_time, coupon)

    stages.begin("activity")
    log_activity(streams[7], pop, clock, log, order_customer, order_time)
    del order_customer, order_time, coupon

    stages.begin("subscriptions")
    subscriptions = simulate_subscriptions(streams[8], pop, clock, log)

    stages.begin("ground truth")
    everyone = np.arange(n)
    at_end = np.full(n, float(n_days))
    end_truth, _, _ = offer_truth(pop, clock, sends, values, everyone, at_end)
    churn = churn_truth(pop, clock, everyone, at_end)
    email_unsubscribe = sends.unsubscribe_time[0].copy()
    del sends

    stages.begin("tables")
    ids = customer_labels(n)
    campaign_ids = [plan.campaign_id for plan in plans]
    tables = {"customers": customers_table(clock, pop, ids, email_unsubscribe)}
    tables["transactions"] = transactions_table(clock, ids, lines)
    del lines
    tables["events"] = events_table(clock, ids, campaign_ids, log.collect(n_days))
    tables["exposures"] = exposures_table(clock, ids, campaign_ids, exposures)
    tables["subscriptions"] = subscriptions_table(clock, ids, subscriptions)
    tables["ground_truth"] = ground_truth_table(clock, pop, ids, end_truth, churn, values.net)
    tables["exposure_truth"] = exposure_truth_table(clock, ids, campaign_ids, exposures, exposure_truth)
    meta = _meta(clock, seed, n, months, plans, tables)
    stages.finish()
    logger.info(
        "simulated %d customers over %d months: %s",
        n, months, ", ".join(f"{name} {len(frame)}" for name, frame in tables.items()),
    )  # fmt: skip
    return World(tables=tables, meta=meta)


def _meta(clock, seed: int, n: int, months: int, plans, tables) -> dict[str, Any]:
    end = clock.start + pd.Timedelta(days=clock.n_days)
    offers = [
        {
            "offer_id": offer,
            "kind": OFFER_KINDS[offer],
            "discount_pct": COUPON_SHARE * 100 if offer == "discount_10" else 0.0,
        }
        for offer in OFFERS
    ]
    return {
        "simulator_version": SIMULATOR_VERSION,
        "start": clock.start.isoformat(),
        "end": end.isoformat(),
        "n_days": clock.n_days,
        "seed": seed,
        "n_customers": n,
        "months": months,
        "campaigns": [plan.describe(clock) for plan in plans],
        "offers": offers,
        "control_offer_id": ARMS[0],
        "outcome_window_days": WINDOW_DAYS,
        "purchase_residual_after_churn": PURCHASE_RESIDUAL,
        "timezones": [zone for zone, _ in TIMEZONES],
        "categories": [category[0] for category in CATEGORIES],
        "row_counts": {name: len(frame) for name, frame in tables.items()},
        "truth": {
            "ground_truth": "one row per customer: latent traits, churn, and true 14-day effects "
            "of contacting at the end of the world (no contact = control)",
            "exposure_truth": "one row per exposure: the same true effects at assigned_at",
            "p_churn_90d": "P(latent churn by end + 90 days), 1 for customers already churned",
            "p_no_purchase_90d": "P(no order in [end, end + 90 days)) without contact",
            "recent_sends_30d": "scheduled sends in the 30 days before (counted before unsubscribes "
            "cut them); drives unsubscribe risk and annoyance",
            "effects": "a contact scales the purchase intensity for 14 days and adds an unsubscribe "
            "chance; effects do not depend on the channel or send hour",
            "campaign_eligibility": "alive or churned within 180 days (plus consent, see campaigns)",
        },
    }


def write_world(world: World, out_dir: str | Path) -> Path:
    """Write every table as `<name>.parquet` plus `world.json`, atomically (all or nothing)."""
    if not isinstance(world, World):
        raise ValueError(f"world must be a World from simulate_world, got {type(world).__name__}")
    text = json.dumps(world.meta, indent=2, sort_keys=False)
    return write_tables_atomic(world.tables, out_dir, extra_files={WORLD_META_FILE: text})


def read_world_meta(directory: str | Path) -> dict[str, Any]:
    """The metadata (`world.json`) of a world written by `write_world`."""
    path = Path(directory) / WORLD_META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {directory} is not a simulated world (write one with "
            "`nbo simulate --out DIR` or features.simulate.write_world)"
        )
    return json.loads(path.read_text())
