"""RFM: recency, frequency, monetary value, their quintile scores and the A-E segment.

Scores rank the customers with at least one order before the as-of time ("buyers"):
`score = 1 + floor(5 * worse / buyers)`, where `worse` counts buyers strictly worse on that
measure (longer recency; fewer orders; less money, rounded to 1e-6 so that float sums added
in a different order still tie). Ties share the lower score, so the score is deterministic and
identical on every engine; with five or more buyers the best one gets 5 unless tied.

Segment: the mean of the three scores rounded to the nearest integer (a mean of three
integers is never exactly halfway), 5 -> "A", 4 -> "B", 3 -> "C", 2 -> "D", 1 -> "E";
equivalently on the sum r+f+m: A >= 14, B 11-13, C 8-10, D 5-7, E 3-4.
Customers without orders get null scores and segment (they are not ranked).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.common import (
    WINDOWS,
    Family,
    FeatureDef,
    SnapshotContext,
    count_feature,
    count_where,
    keep_declared,
    real,
    safe_ratio,
)

NAME = "rfm"
SOURCE = "transactions"
QUANTILES = 5
MONETARY_DECIMALS = 6  # ranks use money rounded to this, so sums added in any order tie alike
SEGMENT_FLOORS = (("A", 14), ("B", 11), ("C", 8), ("D", 5))  # on r_score + f_score + m_score

FEATURES = (
    FeatureDef("recency_days", "Days since the last order", None, "days", SOURCE, NAME),
    count_feature(
        "frequency",
        "Orders before the as-of time (distinct order_id, else rows)",
        None,
        SOURCE,
        NAME,
    ),
    *(count_feature(f"frequency_{days}d", f"Orders in the last {days} days", days, SOURCE, NAME) for days in WINDOWS),
    FeatureDef(
        "monetary",
        "Total order value before the as-of time",
        None,
        "currency",
        SOURCE,
        NAME,
        fill_value=0.0,
    ),
    *(
        FeatureDef(
            f"monetary_{days}d",
            f"Order value in the last {days} days",
            days,
            "currency",
            SOURCE,
            NAME,
            fill_value=0.0,
        )
        for days in WINDOWS
    ),
    FeatureDef(
        "avg_order_value",
        "monetary / frequency (null without orders)",
        None,
        "currency",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "r_score",
        "Recency quintile among buyers, 5 = most recent",
        None,
        "score 1-5",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "f_score",
        "Frequency quintile among buyers, 5 = most orders",
        None,
        "score 1-5",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "m_score",
        "Monetary quintile among buyers, 5 = highest spend",
        None,
        "score 1-5",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "rfm_segment",
        "A-E from the rounded mean of r/f/m scores, A = best",
        None,
        "A-E",
        SOURCE,
        NAME,
        dtype="str",
    ),
)


def quintile_score(value: ir.NumericColumn, higher_is_better: bool) -> ir.IntegerValue:
    """1 + floor(5 * (rows strictly worse) / rows), over every row of the table."""
    worst_first = value.asc() if higher_is_better else value.desc()
    strictly_worse = ibis.rank().over(ibis.window(order_by=worst_first))  # min rank, 0-based
    rows = value.count().over(ibis.window())
    return (QUANTILES * strictly_worse) // rows + 1


def segment(total_score: ir.IntegerValue) -> ir.StringValue:
    """A-E from the sum of the three scores (the rounded mean; see the module docstring)."""
    branches = [(total_score >= floor, letter) for letter, floor in SEGMENT_FLOORS]
    return ibis.cases(*branches, else_="E")


def build(context: SnapshotContext) -> list[ir.Table]:
    """One scan of the orders (every window a conditional aggregate), then buyer quintiles."""
    orders = context.orders
    reductions: dict[str, ir.Value] = {
        "last_order_at": orders.ts.max(),
        "frequency": orders.count(),
        "monetary": orders.amount.sum(),
    }
    for days in WINDOWS:
        recent = orders.ts >= context.since(days)
        reductions[f"frequency_{days}d"] = count_where(recent)
        reductions[f"monetary_{days}d"] = ibis.ifelse(recent, orders.amount, real(0)).sum()
    buyers = orders.group_by("customer_id").aggregate(**reductions)
    scored = buyers.mutate(
        recency_days=context.days_ago(buyers.last_order_at),
        avg_order_value=safe_ratio(buyers.monetary, buyers.frequency),
        r_score=quintile_score(buyers.last_order_at, higher_is_better=True),
        f_score=quintile_score(buyers.frequency, higher_is_better=True),
        m_score=quintile_score(buyers.monetary.round(MONETARY_DECIMALS), higher_is_better=True),
    )
    scored = scored.mutate(rfm_segment=segment(scored.r_score + scored.f_score + scored.m_score))
    return [keep_declared(scored, FEATURES)]


FAMILY = Family(NAME, FEATURES, build=build)
