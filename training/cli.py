"""`nbo`: one command line for every stage, from raw history to decisions.

Each stage is a sub-command group whose flags match the MLproject parameters. The commands are
thin: they parse flags, call `features`/`models`/`training` functions and print results.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from training.cli_common import (
    console,
    error_console,
    friendly_errors,
    resolve_as_of,
    setup_logging,
    stage_progress,
)

app = typer.Typer(
    name="nbo",
    help="Churn prediction and next-best-offer decisions from customers' own behaviour.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
features_app = typer.Typer(help="List and build point-in-time behavioural features.", no_args_is_help=True)
data_app = typer.Typer(help="Check your data against the contract and import public data sets.", no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(data_app, name="data")


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    """Churn prediction and next-best-offer decisions.

    Start with `nbo simulate` (a built-in simulated shop) or point any command at your own
    folder of CSV/Parquet files with --data.
    """
    setup_logging(verbose)


# ---------------------------------------------------------------------------------- simulate
@app.command()
def simulate(
    customers: int = typer.Option(20_000, "--customers", "-n", help="Number of customers."),
    months: int = typer.Option(12, help="Months of history to simulate."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same world."),
    start: str = typer.Option("2025-01-01", help="First day of the simulated history (UTC)."),
    out: Path = typer.Option(..., help="Folder to write the tables to (Parquet, replaced atomically)."),
) -> None:
    """Simulate a shop with known ground truth and write every contract table as Parquet.

    Example: nbo simulate --customers 20000 --months 12 --seed 7 --out demo/world
    """
    from features.simulate import simulate_world, write_world

    with friendly_errors(), stage_progress("simulating") as progress:
        world = simulate_world(customers, months=months, seed=seed, start=start, progress=progress)
        write_world(world, out)
    _print_table_counts(world.tables, title=f"Simulated world in {out}")


# ---------------------------------------------------------------------------------- features
@features_app.command("list")
def features_list(
    feature_set: str = typer.Option(None, "--set", help="Only the features of this named set."),
) -> None:
    """List every feature with its window, unit, source table and description.

    Example: nbo features list --set transactions_only
    """
    from features.registry import FEATURE_SETS, FEATURES

    with friendly_errors():
        names = list(FEATURES)
        if feature_set is not None:
            if feature_set not in FEATURE_SETS:
                raise ValueError(f"unknown feature set {feature_set!r}; known: {', '.join(FEATURE_SETS)}")
            names = list(FEATURE_SETS[feature_set].features)
    table = Table(title=f"{len(names)} features" + (f" in set {feature_set!r}" if feature_set else ""))
    for column in ("name", "family", "window", "unit", "source", "description"):
        table.add_column(column, overflow="fold")
    for name in names:
        feature = FEATURES[name]
        window = f"{feature.window_days}d" if feature.window_days else "-"
        table.add_row(name, feature.family, window, feature.unit, feature.source_table, feature.description)
    console.print(table)
    sets = ", ".join(f"{s.name} v{s.version} ({len(s.features)})" for s in FEATURE_SETS.values())
    console.print(f"Feature sets: {sets}")


def _transactions_columns(
    customer_col: str | None, ts_col: str | None, amount_col: str | None, order_col: str | None
):
    """Column mapping for transactions-only mode, or None when the data follows the contract."""
    from features.io import TransactionColumns

    given = [customer_col, ts_col, amount_col]
    if not any(given) and order_col is None:
        return None
    if not all(given):
        raise ValueError(
            "transactions-only mode needs all of --customer-col, --ts-col and --amount-col "
            "(--order-col is optional)"
        )
    return TransactionColumns(customer=customer_col, ts=ts_col, amount=amount_col, order=order_col)


def _resolve_as_of(values: list[str], data: Path, dataset) -> list[datetime]:
    """Parse every --as-of value (`end` = the end of the data)."""
    return [resolve_as_of(value, data, dataset) for value in values]


@features_app.command("build")
def features_build(
    data: Path = typer.Option(..., help="Folder of contract tables, a DuckDB file, or one transactions file."),
    as_of: list[str] = typer.Option(
        None, "--as-of", help="Snapshot time (repeatable). A date means midnight at its start; 'end' = end of data."
    ),
    every: str = typer.Option(None, help="Stack snapshots every period, e.g. 30d (with --from and --to)."),
    from_: str = typer.Option(None, "--from", help="First as-of of a stacked training set."),
    to: str = typer.Option(None, "--to", help="Last as-of of a stacked training set."),
    horizon_days: int = typer.Option(None, help="Add labels from [as-of, as-of + H days)."),
    feature_set: str = typer.Option("all", help="Named feature set (see `nbo features list`)."),
    out: Path = typer.Option(..., help="Parquet file to write (atomically)."),
    customer_col: str = typer.Option(None, help="Transactions-only: the customer id column."),
    ts_col: str = typer.Option(None, help="Transactions-only: the order timestamp column."),
    amount_col: str = typer.Option(None, help="Transactions-only: the order amount column."),
    order_col: str = typer.Option(None, help="Transactions-only: the order id column (lines are summed)."),
    validate: bool = typer.Option(True, help="Validate the input against the data contract first."),
    engine: str = typer.Option(
        "duckdb", help="Where the features are computed: duckdb, or spark (a local[2] session; needs `.[spark]`)."
    ),
) -> None:
    """Compute a point-in-time feature snapshot (or a stack of them) from data strictly before as-of.

    Examples:
      nbo features build --data demo/world --as-of end --out demo/snapshot.parquet
      nbo features build --data demo/world --every 30d --from 2025-04-01 --to 2025-10-01 \
          --horizon-days 60 --out train.parquet
      nbo features build --data orders.csv --customer-col CustomerID --ts-col InvoiceDate \
          --amount-col Total --as-of 2011-09-10 --out snap.parquet
      nbo features build --data demo/world --as-of end --engine spark --out demo/snapshot.parquet
    """
    from features.snapshot import as_of_range, build_training_set
    from features.spark import open_engine_dataset
    from features.storage import write_parquet_atomic

    with friendly_errors():
        if every is not None:
            if as_of or from_ is None or to is None:
                raise ValueError("--every needs --from and --to, and no --as-of")
        elif not as_of:
            raise ValueError("give --as-of (repeatable) or --every with --from and --to")
        columns = _transactions_columns(customer_col, ts_col, amount_col, order_col)
        options = {"transactions_columns": columns} if columns is not None else {}
        dataset = open_engine_dataset(data, engine, validate=validate, **options)
        dates = as_of_range(from_, to, every) if every else _resolve_as_of(as_of, data, dataset)
        with stage_progress(f"building {len(dates)} snapshot(s)") as progress:
            progress("features", 0.0)
            snapshot = build_training_set(dataset, dates, horizon_days, feature_set=feature_set)
        write_parquet_atomic(snapshot, out)
    n_features = snapshot.shape[1]
    console.print(
        f"Wrote {len(snapshot):,} rows x {n_features} columns for {len(dates)} as-of date(s) to {out}"
    )
    if horizon_days and "label_churned" in snapshot:
        console.print(f"Churn rate over {horizon_days} days: {snapshot['label_churned'].mean():.3f}")


# ---------------------------------------------------------------------------------- data
@data_app.command("validate")
def data_validate(
    data: Path = typer.Option(..., help="Folder of contract tables, a DuckDB file, or one transactions file."),
    customer_col: str = typer.Option(None, help="Transactions-only: the customer id column."),
    ts_col: str = typer.Option(None, help="Transactions-only: the order timestamp column."),
    amount_col: str = typer.Option(None, help="Transactions-only: the order amount column."),
    order_col: str = typer.Option(None, help="Transactions-only: the order id column."),
) -> None:
    """Check data against the contract; print what was found or every problem with examples.

    Example: nbo data validate --data demo/world
    """
    from features.io import open_dataset

    with friendly_errors():
        columns = _transactions_columns(customer_col, ts_col, amount_col, order_col)
        dataset = open_dataset(data, transactions_columns=columns, validate=True)
    table = Table(title=f"{data}: valid")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("columns")
    for name, expr in dataset.tables.items():
        table.add_row(name, f"{expr.count().execute():,}", ", ".join(expr.columns))
    console.print(table)


@data_app.command("import")
def data_import(
    source: str = typer.Argument(..., help="online-retail or hillstrom"),
    src: Path = typer.Option(..., help="The downloaded file (online_retail.parquet or hillstrom.csv)."),
    out: Path = typer.Option(..., help="Folder to write the contract tables to."),
) -> None:
    """Map a public data set onto the contract and write it as a folder of Parquet tables.

    Example: nbo data import online-retail --src ../shared/data/online_retail.parquet --out data/retail
    """
    from features.adapters import hillstrom_tables, online_retail_tables
    from features.storage import write_tables_atomic

    adapters = {"online-retail": online_retail_tables, "hillstrom": hillstrom_tables}
    with friendly_errors():
        if source not in adapters:
            raise ValueError(f"unknown data set {source!r}; choose one of {', '.join(adapters)}")
        tables = adapters[source](src)
        write_tables_atomic(tables, out)
    _print_table_counts(tables, title=f"{source} written to {out}")


def _print_table_counts(tables, title: str) -> None:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, frame in tables.items():
        table.add_row(name, f"{len(frame):,}")
    console.print(table)


def _mount_stage_groups() -> None:
    """Attach the stage commands that live in their own modules (imports there are lazy)."""
    from training.cli_campaign import campaign_app
    from training.cli_churn import churn_app, train_app, tune_app
    from training.cli_lifecycle import policy_evaluate_command, promote_command, rollback_command
    from training.cli_monitor import monitor_command
    from training.cli_nbo import decide_command, package_command, train_uplift_command
    from training.cli_report import explain_command, report_command
    from training.cli_serve import publish, serve
    from training.cli_uplift import policy_app, uplift_app

    train_app.command("uplift")(train_uplift_command)
    app.add_typer(train_app, name="train")
    app.add_typer(tune_app, name="tune")
    app.add_typer(churn_app, name="churn")
    app.add_typer(uplift_app, name="uplift")
    app.add_typer(policy_app, name="policy")
    app.command("decide")(decide_command)
    app.command("package")(package_command)
    app.command("serve")(serve)
    app.command("publish")(publish)
    app.command("report")(report_command)
    app.command("explain")(explain_command)
    app.add_typer(campaign_app, name="campaign")
    app.command("monitor")(monitor_command)
    policy_app.command("evaluate")(policy_evaluate_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)


_mount_stage_groups()

__all__ = ["app", "error_console"]
