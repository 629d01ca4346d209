"""`nbo decide`, `nbo package` and `nbo train uplift`: decisions and the models behind them.

The functions here are Typer commands; `training.cli` attaches them (`decide_command` as
`nbo decide`, `package_command` as `nbo package`, `train_uplift_command` to the `train` group).
Flags match the MLproject parameters. Commands parse flags, call `training.decide`,
`training.nbo_model` and `training.train_uplift`, and print results.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from features.catalog import DEFAULT_CATALOG_PATH as DEFAULT_CATALOG
from training.cli_common import console, friendly_errors, resolve_as_of, stage_progress

__all__ = ["decide_command", "nbo_app", "package_command", "train_uplift_command"]


def _print_summary(result) -> None:
    summary = result.summary
    console.print(
        f"[bold]{summary.customers:,}[/] customers: [bold]{summary.messages:,}[/] messages, "
        f"holdout {summary.holdout:,} ({summary.holdout / max(summary.customers, 1):.1%}), "
        f"explored {summary.explored:,}"
    )
    console.print(
        f"expected incremental profit {summary.expected_value:,.2f}, incremental revenue "
        f"{summary.expected_incremental_revenue:,.2f}, cost {summary.expected_cost:,.2f}"
    )
    offers = Table(title="Messages by offer and channel")
    for column in ("offer", "channel", "messages", "expected profit", "incr. revenue", "cost"):
        offers.add_column(column, justify="right" if column not in ("offer", "channel") else "left")
    for row in summary.by_offer_channel.itertuples(index=False):
        offers.add_row(
            row.offer_id, row.channel, f"{row.messages:,}", f"{row.expected_value:,.2f}",
            f"{row.expected_incremental_revenue:,.2f}", f"{row.expected_cost:,.2f}",
        )  # fmt: skip
    console.print(offers)
    rules = Table(title="Suppressed by rule (first rule that removed an option)")
    for column in ("rule", "customers", "options"):
        rules.add_column(column, justify="left" if column == "rule" else "right")
    for row in summary.suppressed_by_rule.itertuples(index=False):
        rules.add_row(row.rule, f"{row.customers:,}", f"{row.options:,}")
    console.print(rules)
    timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.seconds.items())
    console.print(f"timings: {timings}")


def decide_command(
    data: Path = typer.Option(..., help="Folder of contract tables or a DuckDB file."),
    as_of: str = typer.Option("end", "--as-of", help="Snapshot time; 'end' = end of the data."),
    out: Path = typer.Option(..., help="Parquet file for the decisions (written atomically)."),
    model_uri: str = typer.Option("models:/nbo@champion", help="The nbo model: registry URI, runs:/ URI or folder."),
    now: str = typer.Option(None, help="Decision time (UTC); default the as-of time."),
    feature_set: str = typer.Option(None, help="Snapshot feature set; default the one the model records."),
    summary_json: Path = typer.Option(None, help="Also write the summary as JSON here."),
    threads: int = typer.Option(None, help="Prediction threads for the models (default: as trained)."),
    validate: bool = typer.Option(True, help="Validate the input against the data contract first."),
    engine: str = typer.Option(
        "duckdb", help="duckdb, or spark: snapshot in Spark and scoring by mlflow spark_udf (local[2]; needs "
        "`.[spark]`); --out is then a folder of Parquet parts."
    ),
) -> None:
    """Decide for every customer: which offer, on which channel, when, or nothing, and why.

    Example: nbo decide --data demo/world --as-of end --out demo/decisions.parquet
    """
    if engine != "duckdb":
        from training.spark_decide import decide_on_engine

        decide_on_engine(engine, data, as_of, out, model_uri=model_uri, now=now, feature_set=feature_set,
                         summary_json=summary_json, validate=validate)  # fmt: skip
        return
    from features.io import open_dataset
    from training.decide import as_dict, run_decide
    from training.tracking import default_tracking_uri

    with friendly_errors():
        import mlflow

        mlflow.set_tracking_uri(default_tracking_uri())
        dataset = open_dataset(data, validate=validate)
        resolved = resolve_as_of(as_of, data, dataset)
        with stage_progress("deciding") as progress:
            progress("snapshot and decisions", 0.1)
            result = run_decide(
                dataset, resolved, out, model_uri=model_uri, now=now, feature_set=feature_set, threads=threads
            )
        if summary_json is not None:
            from features.storage import write_atomic

            text = json.dumps(as_dict(result), indent=2, default=str)
            write_atomic(summary_json, lambda tmp: tmp.write_text(text))
    _print_summary(result)
    console.print(f"Wrote {result.summary.customers:,} decisions to {out}")


def package_command(
    data: Path = typer.Option(..., help="Data to learn the send-time model from and take example rows of."),
    as_of: str = typer.Option("end", "--as-of", help="Snapshot time for the send-time model; 'end' = end of data."),
    catalog: Path = typer.Option(DEFAULT_CATALOG, help="Offers catalog YAML."),
    churn_uri: str = typer.Option("models:/churn@champion", help="The churn model to package."),
    uplift_uri: str = typer.Option("models:/uplift@champion", help="The uplift models to package."),
    feature_set: str = typer.Option("all", help="Snapshot feature set decisions are made on."),
    holdout_share: float = typer.Option(0.05, help="Share of customers in the global holdout."),
    exploration_share: float = typer.Option(0.05, help="Share of decisions drawn at random among allowed options."),
    frequency_cap: int = typer.Option(3, help="Most messages per customer per rolling week."),
    promote: bool = typer.Option(True, help="Make the new version the `nbo` champion."),
) -> None:
    """Assemble churn + uplift + catalog + policy + send time into one model, registered as `nbo`.

    Example: nbo package --data demo/world
    """
    from features.catalog import load_catalog
    from features.io import open_dataset
    from features.snapshot import build_snapshot
    from models.policy_config import PolicyConfig
    from training.decide import customer_context
    from training.nbo_model import package_nbo
    from training.tracking import setup_tracking

    with friendly_errors():
        offers = load_catalog(catalog)
        config = PolicyConfig(
            holdout_share=holdout_share, exploration_share=exploration_share, frequency_cap=frequency_cap
        )
        setup_tracking("nbo")
        dataset = open_dataset(data, validate=True)
        resolved = resolve_as_of(as_of, data, dataset)
        with stage_progress("packaging nbo") as progress:
            progress("snapshot", 0.1)
            snapshot = build_snapshot(dataset, resolved, feature_set=feature_set)
            context = customer_context(dataset, resolved, offers.offer_ids)
            if context is not None:
                snapshot = snapshot.merge(context, on="customer_id", how="left")
            progress("registering", 0.5)
            outcome = package_nbo(
                snapshot, offers, churn_uri=churn_uri, uplift_uri=uplift_uri, config=config,
                promote=promote, feature_set=feature_set,
            )  # fmt: skip
    alias = " (champion)" if outcome["champion"] else ""
    console.print(f"Registered nbo version {outcome['model_version']}{alias} in run {outcome['run_id']}")


def train_uplift_command(
    data: Path = typer.Option(..., help="Folder of contract tables with exposures (randomised campaigns)."),
    window_days: int = typer.Option(14, help="Outcome window after each assignment, in days."),
    feature_set: str = typer.Option("all", help="Snapshot feature set the learners read."),
    trials: int = typer.Option(6, help="Optuna trials per outcome (learner and tree shape)."),
    validation_campaigns: int = typer.Option(1, help="Latest campaigns held out to choose learners."),
    learners: str = typer.Option("s,t,x,dr", help="Learners to choose among (comma separated)."),
    refit: bool = typer.Option(True, help="Refit the chosen learners on every campaign before registering."),
    promote: str = typer.Option("gate", help="gate (champion gate on held-out Qini), always or never."),
    seed: int = typer.Option(0, help="Random seed."),
    register: bool = typer.Option(True, help="Register the model as `uplift`."),
    exposures: Path = typer.Option(
        None, help="Learn from this decision log (SQLite) instead of the exposures table: its randomised decisions."
    ),
    observed_until: str = typer.Option(None, help="With --exposures: outcomes known up to here (default: last order)."),
    max_weight: float = typer.Option(200.0, help="With --exposures: cap on 1 / logged probability."),
) -> None:
    """Train multi-arm uplift models (conversion, revenue, unsubscribe) on past campaigns, or on
    the decision log's holdout and exploration decisions (`--exposures`, logged probabilities).

    Example: nbo train uplift --data demo/world --trials 6
    Example: nbo train uplift --data demo/world --exposures decisions.sqlite
    """
    import mlflow

    from features.io import open_dataset
    from training.tracking import data_fingerprint, decision_json, setup_tracking
    from training.train_uplift import (
        EXPERIMENT,
        UpliftSetup,
        build_uplift_rows,
        build_uplift_rows_from_log,
        fit_uplift_models,
        log_uplift_run,
    )

    with friendly_errors():
        setup = UpliftSetup(
            window_days=window_days, feature_set=feature_set, trials=trials,
            validation_campaigns=validation_campaigns,
            learners=tuple(name.strip() for name in learners.split(",") if name.strip()),
            refit=refit, seed=seed,
        )  # fmt: skip
        setup.check()
        setup_tracking(EXPERIMENT)
        dataset = open_dataset(data, validate=True)
        with stage_progress("training uplift models") as progress:
            if exposures is None:
                rows = build_uplift_rows(dataset, setup, progress=lambda stage, f: progress(stage, 0.3 * f))
            else:
                progress("decision log", 0.05)
                rows, log_report = build_uplift_rows_from_log(
                    exposures, dataset, setup, observed_until=observed_until, max_weight=max_weight
                )
                console.print(f"decision log: {log_report}", highlight=False)
            result = fit_uplift_models(rows, setup, progress=lambda stage, f: progress(stage, 0.3 + 0.6 * f))
            progress("logging to MLflow", 0.9)
            with mlflow.start_run(run_name="train_uplift"):
                tracked = log_uplift_run(
                    result, setup, data_hash=data_fingerprint(data), register=register, promote=promote
                )
    table = Table(title="Held-out Qini by outcome and arm (latest campaigns)")
    table.add_column("outcome")
    table.add_column("learner")
    arms = list(result.models.arms)
    for arm in arms:
        table.add_column(arm, justify="right")
    table.add_column("mean", justify="right")
    for outcome, choice in result.choices.items():
        table.add_row(
            outcome, choice.learner, *(f"{choice.validation_qini.get(arm, float('nan')):.4f}" for arm in arms),
            f"{result.metrics[f'qini_{outcome}']:.4f}",
        )  # fmt: skip
    console.print(table)
    if tracked["decision"] is not None:
        console.print(tracked["decision"].summary())
        console.print(decision_json(tracked["decision"]), highlight=False)
    version = tracked["model_version"]
    console.print(f"MLflow run {tracked['run_id']}" + (f", uplift version {version}" if version else ""))


#: The commands as one Typer app (for tests and for mounting as a group if preferred).
nbo_app = typer.Typer(help="Decisions and the deployable nbo model.", no_args_is_help=True)
nbo_app.command("decide")(decide_command)
nbo_app.command("package")(package_command)
nbo_app.command("train-uplift")(train_uplift_command)
