"""Products: what a customer buys, how varied it is, and how often with a discount.

`purchase_recency` gives the long table behind the rule "don't offer what they just bought":
days since the last purchase of every (customer, category) or (customer, product) pair.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.dataset import Dataset
from features.families.common import (
    Family,
    FeatureDef,
    SnapshotContext,
    count_feature,
)

NAME = "products"
SOURCE = "transactions"

FEATURES = (
    count_feature(
        "distinct_categories",
        "Distinct categories bought before the as-of time",
        None,
        SOURCE,
        NAME,
        requires_columns=("category",),
    ),
    FeatureDef(
        "top_category",
        "Category with the most order lines (ties: alphabetically first)",
        None,
        "category",
        SOURCE,
        NAME,
        dtype="str",
        requires_columns=("category",),
    ),
    FeatureDef(
        "top_category_share",
        "Share of the customer's categorised order lines in top_category",
        None,
        "share",
        SOURCE,
        NAME,
        requires_columns=("category",),
    ),
    FeatureDef(
        "days_since_top_category_purchase",
        "Days since the last line in top_category",
        None,
        "days",
        SOURCE,
        NAME,
        requires_columns=("category",),
    ),
    FeatureDef(
        "discount_order_share",
        "Share of orders with a discount (discount_amount > 0)",
        None,
        "share",
        SOURCE,
        NAME,
        requires_columns=("discount_amount",),
    ),
)


def _category_lines(lines: ir.Table) -> ir.Table:
    """Lines and last purchase per (customer, category), categories known."""
    with_category = lines.filter(lines.category.notnull())
    return with_category.group_by(["customer_id", "category"]).aggregate(
        lines=with_category.count(), last_at=with_category.ts.max()
    )


def _top_categories(context: SnapshotContext) -> ir.Table:
    """Top category (most lines, ties alphabetical), its share and recency; distinct count."""
    per_category = _category_lines(context.lines)
    by_customer = ibis.window(group_by=per_category.customer_id)
    ranking = ibis.window(
        group_by=per_category.customer_id,
        order_by=[per_category.lines.desc(), per_category.category.asc()],
    )
    ranked = per_category.mutate(
        position=ibis.row_number().over(ranking),
        all_lines=per_category.lines.sum().over(by_customer),
        categories=per_category.count().over(by_customer),
    )
    top = ranked.filter(ranked.position == 0)
    return top.select(
        "customer_id",
        distinct_categories=top.categories,
        top_category=top.category,
        top_category_share=top.lines / top.all_lines,
        days_since_top_category_purchase=context.days_ago(top.last_at),
    )


def build(context: SnapshotContext) -> list[ir.Table]:
    """Category mix (when lines have a category) and discount share (when recorded)."""
    tables = []
    if context.has_column("transactions", "category"):
        tables.append(_top_categories(context))
    orders = context.orders
    if "discounted" in orders.columns:
        share = orders.group_by("customer_id").aggregate(discount_order_share=orders.discounted.cast("float64").mean())
        tables.append(share)
    return tables


def purchase_recency(dataset: Dataset, as_of: pd.Timestamp | str, level: str = "category") -> pd.DataFrame:
    """Days since each customer last bought each category (or product) before `as_of`.

    Columns: customer_id, `level`, lines, days_since_last_purchase. The decision's "no
    discount on what they just bought" rule reads this.
    """
    column = {"category": "category", "product": "product_id"}.get(level)
    if column is None:
        raise ValueError(f"level must be 'category' or 'product', got {level!r}")
    if column not in dataset["transactions"].columns:
        raise ValueError(f"table 'transactions' has no column {column!r}; recency by {level} needs it")
    context = SnapshotContext(dataset, pd.Timestamp(as_of))
    lines = context.lines.filter(context.lines[column].notnull())
    grouped = lines.group_by(["customer_id", column]).aggregate(lines=lines.count(), _last_at=lines.ts.max())
    result = grouped.select(
        "customer_id",
        column,
        "lines",
        days_since_last_purchase=context.days_ago(grouped._last_at),
    ).order_by(["customer_id", column])
    return result.to_pyarrow().to_pandas()


FAMILY = Family(NAME, FEATURES, build=build)
