"""`nbo train churn`, `nbo tune churn` and `nbo churn backtest`: churn models without writing code.

Mounted by `training.cli` (groups `train`, `tune`, `churn`). Flags match the MLproject
parameters. Commands parse flags, call `training.churn`/`training.tune` and print results.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from training.cli_common import console, friendly_errors, stage_progress

train_app = typer.Typer(help="Train models and register them in MLflow.", no_args_is_help=True)
tune_app = typer.Typer(help="Tune models with Optuna, then train the best.", no_args_is_help=True)
churn_app = typer.Typer(help="Churn tools that need no MLflow (backtests on your own data).", no_args_is_help=True)

EXPERIMENT = "churn"

AS_OF_HELP = (
    "Test snapshot time (a date means midnight at its start); 'latest' = the latest that leaves a full horizon."
)


def _setup(data, as_of: str, horizon_days: int, every: str, feature_set: str, churn_definition: str):
    """Open the data and resolve the settings (as-of 'latest' included)."""
    from features.io import open_dataset
    from training.churn import ChurnSetup, latest_test_as_of

    dataset = open_dataset(data, validate=True)
    if as_of == "latest":
        resolved = latest_test_as_of(dataset, horizon_days)
    else:
        from features.snapshot import parse_timestamp

        resolved = parse_timestamp(as_of, "--as-of")
    setup = ChurnSetup(
        as_of=resolved,
        horizon_days=horizon_days,
        every=every,
        feature_set=feature_set,
        churn_definition=churn_definition,
    )
    setup.check()
    return dataset, setup


def _print_metrics(metrics: dict[str, dict[str, float]], title: str) -> None:
    table = Table(title=title)
    table.add_column("model")
    columns = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in metrics.items():
        table.add_row(name, *(f"{values[column]:.4f}" for column in columns))
    console.print(table)


def _train_and_log(dataset, setup, data, data_path: Path, params: dict, register: bool, promote: str) -> None:
    """Fit, evaluate, log to the active MLflow run, register and gate; print the outcome."""
    from training.churn import log_churn_run, run_churn_experiment
    from training.tracking import data_fingerprint

    with stage_progress("training churn model") as progress:
        progress("fitting", 0.1)
        result = run_churn_experiment(data, params)
        progress("logging to MLflow", 0.6)
        tracked = log_churn_run(
            result,
            setup,
            dataset=dataset,
            data_hash=data_fingerprint(data_path),
            params=params,
            register=register,
            promote=promote,
        )
    model = result.metrics["model"]
    _print_metrics(
        {name: result.metrics[name] for name in ("model", "baseline")},
        f"Test snapshot {setup.as_of} ({int(model['n'])} customers, churn rate {model['positive_rate']:.3f})",
    )
    console.print(f"MLflow run {tracked.run_id}; {result.model.best_iteration_} trees")
    if tracked.model_version is not None:
        console.print(f"Registered model churn version {tracked.model_version}")
    if tracked.decision is not None:
        console.print(tracked.decision.summary())


@train_app.command("churn")
def train_churn(
    data: Path = typer.Option(..., help="Folder of contract tables (or a DuckDB file), e.g. demo/world."),
    as_of: str = typer.Option(..., "--as-of", help=AS_OF_HELP),
    horizon_days: int = typer.Option(90, help="Churn = no purchase (or subscription ended) within this many days."),
    every: str = typer.Option("30d", help="Distance between stacked training snapshots, e.g. 30d or 7d."),
    feature_set: str = typer.Option("all", help="Named feature set (see `nbo features list`)."),
    churn_definition: str = typer.Option("no_purchase", help="no_purchase, or subscription (cancelled / not renewed)."),
    promote: str = typer.Option("gate", help="gate: champion alias moves only if the new model wins; always; never."),
    register: bool = typer.Option(True, help="Register the model as `churn` in the MLflow registry."),
    seed: int = typer.Option(0, help="Random seed of LightGBM."),
    experiment: str = typer.Option(EXPERIMENT, help="MLflow experiment name."),
) -> None:
    """Train the calibrated LightGBM churn model on stacked snapshots and evaluate it on the test snapshot.

    Logs everything to MLflow (sqlite:///mlflow.db here unless MLFLOW_TRACKING_URI is set),
    registers the model as `churn` and moves the `champion` alias only when it beats the
    current champion on the same test snapshot.

    Example: nbo train churn --data demo/world --as-of latest --horizon-days 90
    """
    import mlflow

    from training.churn import build_churn_data
    from training.tracking import setup_tracking

    with friendly_errors():
        dataset, setup = _setup(data, as_of, horizon_days, every, feature_set, churn_definition)
        with stage_progress("building snapshots") as progress:
            churn_data = build_churn_data(dataset, setup, progress)
        setup_tracking(experiment)
        with mlflow.start_run(run_name=f"train churn {setup.as_of.date()}"):
            _train_and_log(dataset, setup, churn_data, data, {"random_state": seed}, register, promote)


@tune_app.command("churn")
def tune_churn(
    data: Path = typer.Option(..., help="Folder of contract tables (or a DuckDB file), e.g. demo/world."),
    as_of: str = typer.Option(..., "--as-of", help=AS_OF_HELP),
    trials: int = typer.Option(20, help="Number of Optuna trials."),
    timeout: float = typer.Option(None, help="Stop starting trials after this many seconds."),
    horizon_days: int = typer.Option(90, help="Churn = no purchase (or subscription ended) within this many days."),
    every: str = typer.Option("30d", help="Distance between stacked training snapshots, e.g. 30d or 7d."),
    feature_set: str = typer.Option("all", help="Named feature set (see `nbo features list`)."),
    churn_definition: str = typer.Option("no_purchase", help="no_purchase, or subscription (cancelled / not renewed)."),
    promote: str = typer.Option("gate", help="gate: champion alias moves only if the new model wins; always; never."),
    register: bool = typer.Option(True, help="Register the final model as `churn` in the MLflow registry."),
    seed: int = typer.Option(0, help="Seed of the Optuna sampler and LightGBM."),
    experiment: str = typer.Option(EXPERIMENT, help="MLflow experiment name."),
) -> None:
    """Search LightGBM parameters with Optuna (pruning; one nested MLflow run per trial), then train,
    log, register and gate the final model with the best parameters.

    The search minimises validation log loss on held-out customers before the calibration
    snapshot; the test snapshot is only used once, to score the final model.

    Example: nbo tune churn --data demo/world --as-of latest --trials 30
    """
    import mlflow

    from training.churn import build_churn_data
    from training.tracking import log_metrics, setup_tracking
    from training.tune import tune_churn as run_study

    with friendly_errors():
        dataset, setup = _setup(data, as_of, horizon_days, every, feature_set, churn_definition)
        with stage_progress("building snapshots") as progress:
            churn_data = build_churn_data(dataset, setup, progress)
        setup_tracking(experiment)
        with mlflow.start_run(run_name=f"tune churn {setup.as_of.date()}"):
            with stage_progress(f"tuning ({trials} trials)") as progress:
                study = run_study(
                    churn_data,
                    trials,
                    seed=seed,
                    timeout_seconds=timeout,
                    base_params={"random_state": seed},
                    progress=progress,
                )
            states = [trial.state.name for trial in study.trials]
            log_metrics(
                {
                    "best_validation_log_loss": study.best_value,
                    "trials_complete": states.count("COMPLETE"),
                    "trials_pruned": states.count("PRUNED"),
                }
            )
            console.print(
                f"Best of {len(states)} trials ({states.count('PRUNED')} pruned): validation log loss "
                f"{study.best_value:.4f} with {json.dumps(study.best_params)}"
            )
            params = {**study.best_params, "random_state": seed}
            _train_and_log(dataset, setup, churn_data, data, params, register, promote)


@churn_app.command("backtest")
def churn_backtest(
    transactions: Path = typer.Option(..., help="Your order export: one CSV or Parquet file (lines or orders)."),
    customer_col: str = typer.Option(..., help="Column with the customer id; rows without one are skipped."),
    ts_col: str = typer.Option(..., help="Column with the order timestamp (UTC)."),
    amount_col: str = typer.Option(None, help="Column with the order (or line) value; negative rows are skipped."),
    quantity_col: str = typer.Option(None, help="Instead of --amount-col: quantity (rows with quantity <= 0 skipped)."),
    price_col: str = typer.Option(None, help="Instead of --amount-col: unit price (amount = quantity x price)."),
    order_col: str = typer.Option(None, help="Order id: lines of one order are summed into one order."),
    as_of: str = typer.Option(..., "--as-of", help="Test snapshot time; a date means midnight at its start."),
    horizon_days: int = typer.Option(90, help="Churn = no order within this many days after --as-of."),
    every: str = typer.Option("30d", help="Distance between stacked training snapshots, e.g. 30d or 7d."),
    feature_set: str = typer.Option("all", help="Named feature set (see `nbo features list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Backtest the churn model on your own order export: train on history before --as-of, score the
    customers known at --as-of on whether they order within --horizon-days.

    Prints the model's AUC, Brier score and more, next to a recency-only baseline.

    Example (UCI Online Retail, amount = Quantity x UnitPrice): nbo churn backtest --transactions
    online_retail.parquet --customer-col CustomerID --ts-col InvoiceDate --quantity-col Quantity
    --price-col UnitPrice --order-col InvoiceNo --as-of 2011-09-10 --horizon-days 90 --json
    """
    from features.snapshot import parse_timestamp
    from training.churn import ChurnSetup, ExportColumns, run_backtest

    with friendly_errors():
        columns = ExportColumns(
            customer=customer_col, ts=ts_col, amount=amount_col, order=order_col, quantity=quantity_col, price=price_col
        )
        columns.check()
        setup = ChurnSetup(
            as_of=parse_timestamp(as_of, "--as-of"), horizon_days=horizon_days, every=every, feature_set=feature_set
        )
        setup.check()
        if as_json:
            summary = run_backtest(str(transactions), columns, setup)
        else:
            with stage_progress("backtest") as progress:
                summary = run_backtest(str(transactions), columns, setup, progress=progress)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"Churn backtest as of {summary['as_of']}, {horizon_days}-day horizon")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in summary.items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
