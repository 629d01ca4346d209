"""Lifecycle stage: one label per customer from rules over the other families' features.

Rules, the first that matches wins (a rule whose inputs are absent never matches):

1. `billing_issue`  - a failed payment in the last 30 days (events).
2. `renewal_due`    - the latest subscription renews within 0-14 days.
3. `onboarding`     - tenure below 30 days.
4. Inactive days = days since the last order, or tenure for customers who never ordered.
   Above 180 days: `win_back` if they opened, clicked, visited or logged in within the last
   30 days (interest without purchase), else `lapsed`.
5. Inactive days at most 1.5 x their mean gap between orders (30 days when they have fewer
   than two orders): `upsell_ready` if RFM segment A or subscription usage >= 80% of the
   limit, else `active`.
6. Otherwise `at_risk` (overdue, but within 180 days).

The churn score joins these rules once a churn model exists (it does not here).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.common import Family, FeatureDef, SnapshotContext

NAME = "lifecycle"
STAGES = (
    "onboarding",
    "active",
    "at_risk",
    "lapsed",
    "win_back",
    "renewal_due",
    "billing_issue",
    "upsell_ready",
)
ONBOARDING_DAYS = 30
RENEWAL_DUE_DAYS = 14
LAPSED_DAYS = 180
ENGAGED_DAYS = 30
ACTIVE_OVERDUE_RATIO = 1.5
DEFAULT_GAP_DAYS = 30.0
UPSELL_USAGE_RATIO = 0.8

FEATURES = (
    FeatureDef(
        "lifecycle_stage",
        f"One of {', '.join(STAGES)}; rules in features/families/lifecycle.py",
        None,
        "category",
        "transactions",
        NAME,
        dtype="str",
    ),
)


def _column_or_null(table: ir.Table, name: str, dtype: str = "float64") -> ir.Value:
    return table[name] if name in table.columns else ibis.null(dtype)


def finish(table: ir.Table, context: SnapshotContext) -> ir.Table:
    """Apply the rules in order over the joined snapshot."""
    failed = _column_or_null(table, "failed_payments_30d", "int64")
    renewal = _column_or_null(table, "days_to_renewal")
    usage = _column_or_null(table, "usage_ratio")
    engaged_recently = ibis.literal(False)
    for name in ("days_since_last_open", "days_since_last_click", "days_since_last_visit", "days_since_last_login"):
        if name in table.columns:
            engaged_recently = engaged_recently | (table[name] <= ENGAGED_DAYS).fill_null(False)
    inactive = ibis.coalesce(table.recency_days, table.tenure_days)
    expected_gap = table.gap_mean_days.fill_null(DEFAULT_GAP_DAYS)
    upsell = (table.rfm_segment == "A").fill_null(False) | (usage >= UPSELL_USAGE_RATIO).fill_null(False)
    stage = ibis.cases(
        ((failed >= 1).fill_null(False), "billing_issue"),
        (renewal.between(0, RENEWAL_DUE_DAYS).fill_null(False), "renewal_due"),
        (table.tenure_days < ONBOARDING_DAYS, "onboarding"),
        ((inactive > LAPSED_DAYS) & engaged_recently, "win_back"),
        (inactive > LAPSED_DAYS, "lapsed"),
        ((inactive <= ACTIVE_OVERDUE_RATIO * expected_gap) & upsell, "upsell_ready"),
        (inactive <= ACTIVE_OVERDUE_RATIO * expected_gap, "active"),
        else_="at_risk",
    )
    return table.mutate(lifecycle_stage=stage)


FAMILY = Family(
    NAME,
    FEATURES,
    finish=finish,
    depends_on=("rfm", "rhythm", "tenure", "engagement", "subscriptions"),
)
