"""Tenure and cohort: how long someone has been a customer, since when, and how they came.

A customer starts at the earlier of sign-up (customers.signup_at, if before the as-of time)
and first order; without a customers table the first order is the start.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.common import (
    Family,
    FeatureDef,
    SnapshotContext,
    join_on_customer,
    keep_declared,
)

NAME = "tenure"

FEATURES = (
    FeatureDef(
        "tenure_days",
        "Days since the customer started (sign-up, else first order)",
        None,
        "days",
        "customers",
        NAME,
        fallback_table="transactions",
    ),
    FeatureDef(
        "days_since_first_order",
        "Days since the first order (null without orders)",
        None,
        "days",
        "transactions",
        NAME,
    ),
    FeatureDef(
        "signup_month",
        "Calendar month (1-12) the customer started in",
        None,
        "month",
        "customers",
        NAME,
        dtype="int64",
        fallback_table="transactions",
    ),
    FeatureDef(
        "cohort_month",
        "Year and month the customer started, as yyyymm",
        None,
        "yyyymm",
        "customers",
        NAME,
        dtype="int64",
        fallback_table="transactions",
    ),
    FeatureDef(
        "acquisition_channel",
        "How the customer was acquired (customers table)",
        None,
        "category",
        "customers",
        NAME,
        dtype="str",
        requires_columns=("acquisition_channel",),
    ),
)


def build(context: SnapshotContext) -> list[ir.Table]:
    """Every known customer's start (earlier of sign-up and first order), cohort and channel."""
    lines = context.lines
    first_orders = lines.group_by("customer_id").aggregate(first_order_at=lines.ts.min())
    table = join_on_customer(context.base, first_orders)
    start = table.first_order_at
    customers = context.customers
    if customers is not None:
        columns: dict[str, ir.Value] = {"customer_id": customers.customer_id}
        if "signup_at" in customers.columns:
            before = customers.signup_at < context.as_of_literal
            columns["signup_at"] = ibis.ifelse(before, customers.signup_at, ibis.null("timestamp"))
        if "acquisition_channel" in customers.columns:
            columns["acquisition_channel"] = customers.acquisition_channel
        table = join_on_customer(table, customers.select(**columns))
        if "signup_at" in table.columns:
            start = ibis.coalesce(ibis.least(table.signup_at, start), table.signup_at, start)
    table = table.mutate(start_at=start)
    table = table.mutate(
        tenure_days=context.days_ago(table.start_at),
        days_since_first_order=context.days_ago(table.first_order_at),
        signup_month=table.start_at.month().cast("int64"),
        cohort_month=(table.start_at.year() * 100 + table.start_at.month()).cast("int64"),
    )
    return [keep_declared(table, FEATURES)]


FAMILY = Family(NAME, FEATURES, build=build)
