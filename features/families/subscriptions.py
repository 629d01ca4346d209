"""Subscriptions: renewal timing and usage against the plan's limit.

Failed payments are events, counted with the other events in the engagement family
(`failed_payments_30d`).

Only subscriptions that started before the as-of time count, and the latest of them
describes the customer. Caveat: the contract's subscriptions table holds each subscription's
latest state, not its history. `status` is therefore not used, but `renews_at` and `usage` are
read as recorded, and in a table exported after the as-of time they may already reflect later
events (renewals that stopped after a cancellation, later usage). The features are point-in-time
only when the table has one row per billing period or was exported at the as-of time; models
trained on past snapshots of a current-state export should leave `days_to_renewal` and
`usage_ratio` out.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.common import (
    Family,
    FeatureDef,
    SnapshotContext,
    days_between,
    safe_ratio,
)

NAME = "subscriptions"
SOURCE = "subscriptions"

FEATURES = (
    FeatureDef(
        "has_subscription",
        "1 if a subscription started before the as-of time",
        None,
        "flag",
        SOURCE,
        NAME,
        dtype="int64",
        fill_value=0,
    ),
    FeatureDef(
        "days_to_renewal",
        "Days from the as-of time to the latest subscription's renews_at (negative: it lapsed)",
        None,
        "days",
        SOURCE,
        NAME,
        requires_columns=("renews_at",),
    ),
    FeatureDef(
        "subscription_days",
        "Days since the first subscription started",
        None,
        "days",
        SOURCE,
        NAME,
    ),
    FeatureDef(
        "usage_ratio",
        "usage / usage_limit of the latest subscription (null without a limit)",
        None,
        "ratio",
        SOURCE,
        NAME,
        requires_columns=("usage", "usage_limit"),
    ),
    FeatureDef(
        "subscription_plan",
        "Plan of the latest subscription",
        None,
        "category",
        SOURCE,
        NAME,
        dtype="str",
        requires_columns=("plan",),
    ),
)


def _latest_subscriptions(context: SnapshotContext) -> ir.Table:
    """The latest subscription started before the as-of time, one row per customer."""
    subscriptions = context.subscriptions
    columns = subscriptions.columns
    order = [subscriptions.started_at.desc()]
    order += [subscriptions[name].desc() for name in ("renews_at", "plan") if name in columns]
    ranked = subscriptions.mutate(
        position=ibis.row_number().over(ibis.window(group_by=subscriptions.customer_id, order_by=order)),
        first_started=subscriptions.started_at.min().over(ibis.window(group_by=subscriptions.customer_id)),
    )
    latest = ranked.filter(ranked.position == 0)
    selected: dict[str, ir.Value] = {
        "customer_id": latest.customer_id,
        "has_subscription": ibis.literal(1, "int64"),
        "subscription_days": days_between(context.as_of_literal, latest.first_started),
    }
    if "renews_at" in columns:
        selected["days_to_renewal"] = days_between(latest.renews_at, context.as_of_literal)
    if "usage" in columns and "usage_limit" in columns:
        selected["usage_ratio"] = safe_ratio(latest.usage, latest.usage_limit)
    if "plan" in columns:
        selected["subscription_plan"] = latest.plan
    return latest.select(**selected)


def build(context: SnapshotContext) -> list[ir.Table]:
    """The latest subscription started before the as-of time, when that table exists."""
    return [] if context.subscriptions is None else [_latest_subscriptions(context)]


FAMILY = Family(NAME, FEATURES, build=build)
