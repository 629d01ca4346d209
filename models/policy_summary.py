"""What a batch of decisions adds up to: messages by offer and channel, money, suppressions, holdout.

The figures `nbo decide` prints and the report shows; computed from `Decisions` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.policy import Decisions
from models.policy_config import NO_MESSAGE
from models.policy_rules import RULES

__all__ = ["DecisionSummary", "summarise_decisions"]


@dataclass(frozen=True)
class DecisionSummary:
    """Totals of a batch of decisions.

    `by_offer_channel`: messages and expected value, incremental revenue and cost per
    (offer, channel). `suppressed_by_rule`: per rule, the customers for whom it removed at least
    one option and the options it removed (each option counted under the first rule that removed it).
    """

    customers: int
    messages: int
    holdout: int
    explored: int
    expected_value: float
    expected_incremental_revenue: float
    expected_cost: float
    by_offer_channel: pd.DataFrame
    suppressed_by_rule: pd.DataFrame

    def as_dict(self) -> dict[str, object]:
        """Plain-dict form for JSON output and MLflow."""
        return {
            "customers": self.customers,
            "messages": self.messages,
            "holdout": self.holdout,
            "explored": self.explored,
            "expected_value": self.expected_value,
            "expected_incremental_revenue": self.expected_incremental_revenue,
            "expected_cost": self.expected_cost,
            "by_offer_channel": self.by_offer_channel.to_dict(orient="records"),
            "suppressed_by_rule": self.suppressed_by_rule.to_dict(orient="records"),
        }


def summarise_decisions(decisions: Decisions) -> DecisionSummary:
    """Totals of `decisions` (see `DecisionSummary`)."""
    table = decisions.table
    sent = table[table["offer_id"] != NO_MESSAGE]
    money = ["expected_value", "expected_incremental_revenue", "expected_cost"]
    by_offer_channel = (
        sent.groupby(["offer_id", "channel"], observed=True)
        .agg(messages=("customer_id", "size"), **{name: (name, "sum") for name in money})
        .reset_index()
        .sort_values("messages", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    rows = []
    for position, rule in enumerate(RULES):
        removed = decisions.suppression == position + 1
        rows.append({"rule": rule, "customers": int(removed.any(axis=1).sum()), "options": int(removed.sum())})
    return DecisionSummary(
        customers=len(table),
        messages=len(sent),
        holdout=int(table["holdout"].sum()),
        explored=int(table["explored"].sum()),
        expected_value=float(np.sum(sent["expected_value"])),
        expected_incremental_revenue=float(np.sum(sent["expected_incremental_revenue"])),
        expected_cost=float(np.sum(sent["expected_cost"])),
        by_offer_channel=by_offer_channel,
        suppressed_by_rule=pd.DataFrame(rows, columns=["rule", "customers", "options"]),
    )
