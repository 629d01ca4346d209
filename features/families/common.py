"""What every feature family shares: the feature declaration and the point-in-time inputs.

A family module declares its features (`FEATURES`, a tuple of `FeatureDef`) next to the Ibis
expressions that compute them, so a feature's name, window, unit and formula live in one place.
`SnapshotContext` hands every family the same inputs, already cut to rows strictly before the
as-of time, so no family can see the future by accident.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.dataset import Dataset

#: Look-back windows in days used wherever a feature is counted over a window.
WINDOWS = (7, 30, 90, 365)
SECONDS_PER_DAY = 86_400.0


def real(value: float) -> ir.FloatingScalar:
    """A float64 literal: a bare 0.25 is a DECIMAL in DuckDB, and decimal arithmetic is slow."""
    return ibis.literal(float(value), type="float64")


@dataclass(frozen=True)
class FeatureDef:
    """One feature: its column name, what it means, its window and unit, and where it comes from.

    `source_table` is the contract table the feature is computed from; `fallback_table` is used
    when the source is absent (tenure falls back from sign-up to first order). A feature is
    produced only when its table (or fallback) and every column in `requires_columns` exist.
    `fill_value` is what a customer with no rows in the source gets (0 for counts, else null).
    """

    name: str
    description: str
    window_days: int | None
    unit: str
    source_table: str
    family: str
    dtype: str = "float64"
    fill_value: float | int | None = None
    requires_columns: tuple[str, ...] = ()
    fallback_table: str | None = None

    def producible(self, dataset: Dataset) -> bool:
        """Whether `dataset` has the table and columns this feature needs."""
        if dataset.has(self.source_table):
            table = dataset[self.source_table]
        elif self.fallback_table is not None and dataset.has(self.fallback_table):
            table = dataset[self.fallback_table]
        else:
            return False
        return all(column in table.columns for column in self.requires_columns)


def count_feature(
    name: str, description: str, window: int | None, source: str, family: str, **extra: object
) -> FeatureDef:
    """A non-negative count that is 0 for customers without rows in the source."""
    return FeatureDef(name, description, window, "count", source, family, dtype="int64", fill_value=0, **extra)


def _no_tables(context: SnapshotContext) -> list[ir.Table]:
    return []


def _unchanged(table: ir.Table, context: SnapshotContext) -> ir.Table:
    return table


@dataclass(frozen=True)
class Family:
    """A family of features and how to compute them.

    - `build`: the family's features as narrow tables keyed by customer_id, each one grouped
      scan of a point-in-time source plus per-customer arithmetic (population statistics such
      as quintiles or pooled rates are computed on these narrow tables, not the wide snapshot);
      customers absent from a table get the features' `fill_value`;
    - `finish`: features that are rules over other families' columns, computed once everything
      is joined (the lifecycle stage).
    """

    name: str
    features: tuple[FeatureDef, ...]
    build: Callable[[SnapshotContext], list[ir.Table]] = _no_tables
    finish: Callable[[ir.Table, SnapshotContext], ir.Table] = _unchanged
    depends_on: tuple[str, ...] = ()


class SnapshotContext:
    """The point-in-time view every family reads: contract tables cut to rows before `as_of`.

    Attributes are lazy Ibis expressions; nothing is executed here except the small look-ups a
    family asks for explicitly (for example the distinct time zones).
    """

    def __init__(self, dataset: Dataset, as_of: pd.Timestamp) -> None:
        self.dataset = dataset
        self.as_of = as_of
        self.as_of_literal = ibis.timestamp(as_of.to_pydatetime())
        self.as_of_epoch = int(as_of.timestamp())

    def since(self, days: int) -> ir.TimestampScalar:
        """The start of the window of `days` days that ends at the as-of time."""
        return ibis.timestamp((self.as_of - pd.Timedelta(days=days)).to_pydatetime())

    def days_ago(self, ts: ir.TimestampValue) -> ir.FloatingValue:
        """Days (fractional, whole seconds) from `ts` to the as-of time."""
        return seconds_to_days(self.as_of_epoch - epoch_seconds(ts))

    def has_column(self, table: str, column: str) -> bool:
        """Whether the optional `table` is present and has `column`."""
        return self.dataset.has(table) and column in self.dataset[table].columns

    @functools.cached_property
    def lines(self) -> ir.Table:
        """Transaction rows (order lines) strictly before the as-of time."""
        transactions = self.dataset["transactions"]
        return transactions.filter(transactions.ts < self.as_of_literal)

    @functools.cached_property
    def orders(self) -> ir.Table:
        """One row per order before the as-of time: customer_id, ts, amount, discounted.

        Lines sharing an order_id form one order (its time is the first line's); without an
        order_id column every row is an order, and lines whose order_id is missing form one
        order per timestamp.
        """
        lines = self.lines
        has_discount = "discount_amount" in lines.columns
        if "order_id" not in lines.columns:
            columns = {"customer_id": lines.customer_id, "ts": lines.ts, "amount": lines.amount}
            if has_discount:
                columns["discounted"] = lines.discount_amount.fill_null(0) > 0
            return lines.select(**columns)
        aggregates = {"ts": lines.ts.min(), "amount": lines.amount.sum()}
        if has_discount:
            aggregates["discounted"] = lines.discount_amount.fill_null(0).sum() > 0
        keyed = lines.mutate(_order=order_key(lines))
        return keyed.group_by(["customer_id", "_order"]).aggregate(**aggregates).drop("_order")

    @functools.cached_property
    def events(self) -> ir.Table | None:
        """Events strictly before the as-of time, or None without an events table."""
        if not self.dataset.has("events"):
            return None
        events = self.dataset["events"]
        return events.filter(events.ts < self.as_of_literal)

    @property
    def customers(self) -> ir.Table | None:
        """The customers table (or None); families join it onto the base, so customers who
        sign up later drop out, and any timestamped column must be compared with the as-of."""
        return self.dataset["customers"] if self.dataset.has("customers") else None

    @functools.cached_property
    def subscriptions(self) -> ir.Table | None:
        """Subscriptions started before the as-of time, or None without that table."""
        if not self.dataset.has("subscriptions"):
            return None
        subscriptions = self.dataset["subscriptions"]
        if "started_at" not in subscriptions.columns:
            raise ValueError(
                "table 'subscriptions' has no column 'started_at': without it a snapshot cannot "
                "tell which subscriptions existed at the as-of time; add it or drop the table"
            )
        return subscriptions.filter(subscriptions.started_at < self.as_of_literal)

    @functools.cached_property
    def base(self) -> ir.Table:
        """One row per customer known before the as-of time: the snapshot's population.

        Known means signed up before it (customers.signup_at) or with a transaction before it.
        """
        buyers = self.lines.select("customer_id").distinct()
        if not self.has_column("customers", "signup_at"):
            return buyers
        customers = self.dataset["customers"]
        signed_up = customers.filter(customers.signup_at < self.as_of_literal).select("customer_id")
        return ibis.union(signed_up, buyers, distinct=True)


def order_key(lines: ir.Table) -> ir.StringValue:
    """The order a line belongs to: its order_id, else (missing value) its timestamp."""
    return ibis.coalesce(lines.order_id, "time:" + lines.ts.cast("string"))


def epoch_seconds(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Whole seconds since 1970 (sub-seconds dropped, so every engine agrees)."""
    return ts.epoch_seconds().floor()


def days_between(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    """Fractional days from `earlier` to `later` (whole seconds)."""
    return seconds_to_days(epoch_seconds(later) - epoch_seconds(earlier))


def seconds_to_days(seconds: ir.IntegerValue) -> ir.FloatingValue:
    """Whole seconds as fractional days, in float64 on every engine (Spark SQL reads a float
    literal as DECIMAL, so an integer divided by it would be decimal division, rounded)."""
    return seconds.cast("float64") / real(SECONDS_PER_DAY)


def trend(recent: ir.NumericValue, prior: ir.NumericValue) -> ir.FloatingValue:
    """(recent - prior) / (recent + prior), in [-1, 1]; null when both are zero or null."""
    total = recent + prior
    return ibis.ifelse(total > 0, (recent - prior) / total, ibis.null("float64"))


def safe_ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """numerator / denominator, null when the denominator is zero or null."""
    return ibis.ifelse(denominator > 0, numerator / denominator, ibis.null("float64"))


def join_on_customer(left: ir.Table, right: ir.Table) -> ir.Table:
    """Left-join `right` (keyed by customer_id) onto `left`, keeping one customer_id column."""
    joined = left.left_join(right, "customer_id")
    return joined.drop("customer_id_right")


def count_where(condition: ir.BooleanColumn) -> ir.IntegerScalar:
    """Rows where `condition` holds, as SUM of a 0/1 integer (faster than a FILTER clause)."""
    return condition.cast("int32").sum()


def keep_declared(table: ir.Table, features: tuple[FeatureDef, ...]) -> ir.Table:
    """customer_id and the declared features present in `table`, in declaration order."""
    names = [definition.name for definition in features if definition.name in table.columns]
    return table.select("customer_id", *names)
