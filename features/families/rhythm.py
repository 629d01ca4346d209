"""Purchase rhythm: how regularly a customer orders, and whether the next order is overdue.

Gaps are the days between consecutive orders. The overdue ratio is days since the last order
divided by the mean gap: about 1 is "on schedule", well above 1 is "late". The spend trend
compares the last 90 days with the 90 before: (recent - prior) / (recent + prior).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.common import (
    Family,
    FeatureDef,
    SnapshotContext,
    days_between,
    keep_declared,
    real,
    safe_ratio,
    trend,
)

NAME = "rhythm"
SOURCE = "transactions"
TREND_DAYS = 90

FEATURES = (
    FeatureDef(
        "gap_mean_days",
        "Mean days between consecutive orders (null below 2 orders)",
        None,
        "days",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "gap_std_days",
        "Sample standard deviation of the gaps (null below 3 orders)",
        None,
        "days",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "overdue_ratio",
        "Days since the last order / gap_mean_days (null below 2 orders)",
        None,
        "ratio",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "spend_trend_90d",
        "(spend last 90d - spend 90d before) / their sum, in [-1, 1]; null when both are 0",
        TREND_DAYS,
        "ratio",
        SOURCE,
        NAME,
    ),
)


def build(context: SnapshotContext) -> list[ir.Table]:
    """Gaps from the previous order (one window over orders), then one grouped scan."""
    orders = context.orders
    previous = orders.ts.lag().over(ibis.window(group_by=orders.customer_id, order_by=orders.ts))
    gaps = orders.mutate(gap_days=days_between(orders.ts, previous))
    recent = gaps.ts >= context.since(TREND_DAYS)
    prior = (gaps.ts >= context.since(2 * TREND_DAYS)) & ~recent
    summary = gaps.group_by("customer_id").aggregate(
        first_at=gaps.ts.min(),
        last_at=gaps.ts.max(),
        orders=gaps.count(),
        gap_std_days=gaps.gap_days.std(how="sample"),
        recent_spend=ibis.ifelse(recent, gaps.amount, real(0)).sum(),
        prior_spend=ibis.ifelse(prior, gaps.amount, real(0)).sum(),
    )
    summary = summary.mutate(
        gap_mean_days=safe_ratio(days_between(summary.last_at, summary.first_at), summary.orders - 1),
    )
    summary = summary.mutate(
        overdue_ratio=safe_ratio(context.days_ago(summary.last_at), summary.gap_mean_days),
        spend_trend_90d=trend(summary.recent_spend, summary.prior_spend),
    )
    return [keep_declared(summary, FEATURES)]


FAMILY = Family(NAME, FEATURES, build=build)
