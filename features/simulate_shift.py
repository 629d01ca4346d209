"""A behaviour shift applied to a simulated world from a date on (for drift-monitoring scenarios).

From `at`, a random `share` of customers buy less often and stop reading e-mail: each of their
orders after `at` is kept with probability `purchase_keep` (thinning a Poisson process by a
constant keeps it Poisson, so this is exactly a purchase rate scaled by `purchase_keep`), and
each of their e-mail opens and clicks with probability `email_keep`. Nothing before `at`
changes, nor anything the shop does (sends, campaigns, sign-ups), nor order contents, so
features that describe who the customers are and what an order looks like stay put. The
world's truth tables still describe the world without the shift (noted in `meta`).
`simulate_world` itself is untouched: the default output stays bit-identical.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from features.simulate import World

logger = logging.getLogger(__name__)

EMAIL_RESPONSES = ("open", "click")


@dataclass(frozen=True)
class BehaviourShift:
    """From `at` (UTC date), `share` of customers keep `purchase_keep` of their orders and
    `email_keep` of their e-mail opens and clicks."""

    at: str
    share: float = 0.6
    purchase_keep: float = 0.3
    email_keep: float = 0.1
    seed: int = 0

    def check(self) -> pd.Timestamp:
        """Validate the settings; returns `at` as a tz-naive UTC timestamp."""
        for name in ("share", "purchase_keep", "email_keep"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"BehaviourShift.{name} must be a share between 0 and 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"BehaviourShift.seed must be a whole number >= 0, got {self.seed!r}")
        try:
            at = pd.Timestamp(self.at)
        except (TypeError, ValueError) as error:
            raise ValueError(f"BehaviourShift.at must be a date such as '2025-07-01', got {self.at!r}") from error
        if at is pd.NaT:
            raise ValueError(f"BehaviourShift.at must be a date such as '2025-07-01', got {self.at!r}")
        if at.tzinfo is not None:
            at = at.tz_convert("UTC").tz_localize(None)
        return at


def shift_behaviour(world: World, shift: BehaviourShift) -> World:
    """A copy of `world` whose chosen customers buy and read e-mail less from `shift.at` on.

    Deterministic for `shift.seed`; `meta["behaviour_shift"]` records the settings and how many
    customers, orders and e-mail responses were affected.
    """
    if not isinstance(world, World):
        raise ValueError(f"world must be a World from simulate_world, got {type(world).__name__}")
    at = shift.check()
    rng = np.random.default_rng(shift.seed)
    customers = np.sort(world.tables["customers"]["customer_id"].to_numpy(dtype=object))
    affected = set(customers[rng.random(len(customers)) < shift.share])

    transactions = world.tables["transactions"]
    after = transactions["ts"].to_numpy() >= np.datetime64(at)
    chosen = transactions["customer_id"].isin(affected).to_numpy() & after
    orders = np.sort(transactions.loc[chosen, "order_id"].unique().astype(object))
    dropped_orders = set(orders[rng.random(len(orders)) >= shift.purchase_keep])
    keep_lines = ~transactions["order_id"].isin(dropped_orders).to_numpy()

    events = world.tables["events"]
    response = (
        (events["channel"] == "email").to_numpy()
        & events["event_type"].isin(EMAIL_RESPONSES).to_numpy()
        & (events["ts"].to_numpy() >= np.datetime64(at))
        & events["customer_id"].isin(affected).to_numpy()
    )
    keep_events = ~(response & (rng.random(len(events)) >= shift.email_keep))

    tables = dict(world.tables)
    tables["transactions"] = transactions[keep_lines].reset_index(drop=True)
    tables["events"] = events[keep_events].reset_index(drop=True)
    record = {
        **asdict(shift),
        "at": at.isoformat(),
        "customers_affected": len(affected),
        "orders_dropped": len(dropped_orders),
        "email_responses_dropped": int((~keep_events).sum()),
        "truth": "ground_truth and exposure_truth describe the world without this shift",
    }
    meta = {**world.meta, "behaviour_shift": record}
    meta["row_counts"] = {name: len(frame) for name, frame in tables.items()}
    logger.info(
        "behaviour shift from %s: %d customers, %d orders and %d e-mail responses dropped",
        at, len(affected), len(dropped_orders), record["email_responses_dropped"],
    )  # fmt: skip
    return World(tables=tables, meta=meta)
