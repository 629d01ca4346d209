"""Point-in-time snapshots: every feature of every known customer as of a timestamp.

Only rows strictly before `as_of` feed features; labels (optional) come from
[as_of, as_of + horizon). The whole snapshot is one Ibis expression, executed once by the
Dataset's backend (DuckDB, or Spark through `features.spark`): each family is one grouped
scan of its source with every window as a conditional aggregate, the families are joined once
on customer_id, and pandas appears only at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from features import registry
from features.dataset import Dataset
from features.families import FAMILIES
from features.families.common import Family, SnapshotContext, join_on_customer
from features.labels import LABEL_COLUMNS, LABEL_DTYPES, attach_labels, check_horizon

logger = logging.getLogger(__name__)

TimestampLike = datetime | pd.Timestamp | str


#: Significant digits kept in float features (see `round_significant`).
SIGNIFICANT_DIGITS = 10

def parse_timestamp(value: TimestampLike, what: str = "as_of") -> pd.Timestamp:
    """A tz-naive UTC timestamp (microseconds) from a string or datetime; dates mean midnight."""
    try:
        timestamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} {value!r} is not a timestamp; use e.g. 2011-09-10 or 2011-09-10T00:00") from error
    if timestamp is pd.NaT:
        raise ValueError(f"{what} is missing (got {value!r}); give a timestamp like 2011-09-10")
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert("UTC").tz_localize(None)
    return timestamp.as_unit("us")


def data_bounds(dataset: Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last transaction timestamps (the span labels and snapshots may use)."""
    transactions = dataset["transactions"]
    bounds = transactions.aggregate(first=transactions.ts.min(), last=transactions.ts.max())
    row = bounds.to_pyarrow().to_pylist()[0]
    if row["first"] is None:
        raise ValueError("table 'transactions' is empty: a snapshot needs some order history")
    return pd.Timestamp(row["first"]), pd.Timestamp(row["last"])


def families_for(names: Sequence[str]) -> list[Family]:
    """The families that compute `names`, plus the families they read, in compute order."""
    wanted = {registry.FEATURES[name].family for name in names}
    by_name = {family.name: family for family in FAMILIES}
    pending = list(wanted)
    while pending:
        for dependency in by_name[pending.pop()].depends_on:
            if dependency not in wanted:
                wanted.add(dependency)
                pending.append(dependency)
    return [family for family in FAMILIES if family.name in wanted]


def snapshot_expression(context: SnapshotContext, families: Sequence[Family]) -> ir.Table:
    """The snapshot as one lazy table: every family's tables joined once onto the population,
    missing values filled as declared, then the cross-family rules (`finish`)."""
    table = context.base
    for family in families:
        for part in family.build(context):
            if context.dataset.cache_part is not None:
                part = context.dataset.cache_part(part)
            table = join_on_customer(table, part)
    fills = {
        definition.name: definition.fill_value
        for family in families
        for definition in family.features
        if definition.fill_value is not None and definition.name in table.columns
    }
    if fills:
        table = table.mutate(**{name: table[name].fill_null(value) for name, value in fills.items()})
    for family in families:
        table = family.finish(table, context)
    return table


def _check_produced(table: ir.Table, families: Sequence[Family], dataset: Dataset) -> None:
    produced = set(table.columns) - {"customer_id"}
    expected = {
        definition.name for family in families for definition in family.features if definition.producible(dataset)
    }
    if produced != expected:
        raise RuntimeError(
            "feature definitions and computations disagree: computed but not declared "
            f"{sorted(produced - expected)}, declared but not computed {sorted(expected - produced)}"
        )


def _to_frame(table: pa.Table, names: Sequence[str], as_of: pd.Timestamp) -> pd.DataFrame:
    """Arrow result -> pandas with the declared dtypes and an `as_of` column, copying once.

    Casting happens in Arrow and the conversion frees Arrow buffers as it goes, so a snapshot
    of a million customers does not sit in memory three times.
    """
    for name in names:
        dtype = output_dtype(name)
        column = table[name]
        if dtype == "int64" and column.null_count:
            logger.warning("integer feature %s has missing values; kept as float64", name)
            dtype = "float64"
        target = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string()}[dtype]
        if column.type != target:
            table = table.set_column(table.schema.get_field_index(name), name, column.cast(target))
    stamps = pa.array(np.full(table.num_rows, as_of.to_datetime64()), type=pa.timestamp("us"))
    table = table.add_column(1, "as_of", stamps)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    for name in names:
        if frame[name].dtype == "float64":
            frame[name] = round_significant(frame[name].to_numpy())
    return frame


def round_significant(values: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """Floats rounded to `digits` significant digits, so a snapshot does not depend on DuckDB's threads.

    DuckDB adds floats in parallel in whatever order its threads finish, so a sum can differ in
    the last bits between runs (seen: 5e-13 on money totals); two customers with the same spend
    then become two distinct values, which changes LightGBM's bins and the model. Ten
    significant digits keep far more precision than any feature needs.
    """
    rounded = values.copy()
    finite = np.isfinite(values) & (values != 0)
    magnitude = np.floor(np.log10(np.abs(values[finite])))
    scale = 10.0 ** (digits - 1 - magnitude)
    rounded[finite] = np.round(values[finite] * scale) / scale
    return rounded


def snapshot_table(
    dataset: Dataset,
    as_of: TimestampLike,
    horizon_days: int | None = None,
    feature_set: str = "all",
) -> tuple[ir.Table, list[str]]:
    """The snapshot as one lazy Ibis table on the dataset's backend, and its output columns.

    The table has customer_id and the outputs (features, then labels), ordered by customer_id;
    `build_snapshot` runs it, and an engine such as Spark can also write it where it runs.
    Raises ValueError as `build_snapshot` does.
    """
    as_of = parse_timestamp(as_of)
    chosen = registry.feature_set(feature_set)
    available = {definition.name for definition in registry.features_for(dataset)}
    names = [name for name in chosen.features if name in available]
    if not names:
        raise ValueError(
            f"feature set {chosen.name!r} has no feature this data set can produce (tables "
            f"present: {', '.join(sorted(dataset.tables))}); pick another set"
        )
    first, last = data_bounds(dataset)
    if as_of <= first:
        raise ValueError(
            f"as_of {as_of} is not after the first transaction ({first}): a snapshot needs "
            "history strictly before as_of; choose a later as_of"
        )
    if horizon_days is not None:
        check_horizon(horizon_days, as_of, last)
    context = SnapshotContext(dataset, as_of)
    families = families_for(names)
    table = snapshot_expression(context, families)
    _check_produced(table, families, dataset)
    outputs = list(names)
    if horizon_days is not None:
        table = attach_labels(table, dataset, as_of, horizon_days)
        outputs += LABEL_COLUMNS
    return table.select("customer_id", *outputs).order_by("customer_id"), outputs


def build_snapshot(
    dataset: Dataset,
    as_of: TimestampLike,
    horizon_days: int | None = None,
    feature_set: str = "all",
) -> pd.DataFrame:
    """Features of every customer known before `as_of`, from data strictly before it.

    Columns: customer_id, as_of, the set's producible features, and with `horizon_days` the
    labels label_churned, label_purchases, label_revenue from [as_of, as_of + horizon).
    Raises ValueError when as_of is not after the first transaction, or the label window runs
    past the last transaction.
    """
    as_of = parse_timestamp(as_of)
    result, outputs = snapshot_table(dataset, as_of, horizon_days, feature_set)
    logger.info("building snapshot as of %s: %d feature and label columns", as_of, len(outputs))
    return _to_frame(result.to_pyarrow(), outputs, as_of)


def output_dtype(name: str) -> str:
    """The declared dtype ("int64", "float64" or "str") of a snapshot feature or label column."""
    return registry.FEATURES[name].dtype if name in registry.FEATURES else LABEL_DTYPES[name]


def build_training_set(
    dataset: Dataset,
    as_of_dates: Sequence[TimestampLike],
    horizon_days: int | None,
    feature_set: str = "all",
) -> pd.DataFrame:
    """Snapshots at several as-of times stacked into one frame (one row per customer and date)."""
    dates = [parse_timestamp(value) for value in as_of_dates]
    if not dates:
        raise ValueError("as_of_dates is empty; give at least one as-of time")
    duplicates = sorted({date for date in dates if dates.count(date) > 1})
    if duplicates:
        raise ValueError(f"as_of_dates repeats {', '.join(map(str, duplicates))}; give each once")
    snapshots = [build_snapshot(dataset, date, horizon_days, feature_set) for date in dates]
    return pd.concat(snapshots, ignore_index=True)


def as_of_range(start: TimestampLike, end: TimestampLike, every: str = "30d") -> list[pd.Timestamp]:
    """Timestamps from `start` to `end` inclusive, `every` apart (e.g. "30d", "7d", "12h")."""
    first, last = parse_timestamp(start, "start"), parse_timestamp(end, "end")
    try:
        step = pd.Timedelta(every)
    except (TypeError, ValueError) as error:
        raise ValueError(f"every {every!r} is not a duration; use e.g. 30d or 7d") from error
    if step <= pd.Timedelta(0):
        raise ValueError(f"every must be a positive duration, got {every!r}")
    if last < first:
        raise ValueError(f"end {last} is before start {first}; swap them")
    dates = []
    current = first
    while current <= last:
        dates.append(current)
        current = current + step
    return dates
