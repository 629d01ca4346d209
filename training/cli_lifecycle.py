"""`nbo policy evaluate`, `nbo promote` and `nbo rollback`: the model lifecycle after launch.

Off-policy evaluation of a challenger on the decision log (training/policy_evaluation.py), the
gated move of the `champion` alias with the previous champion kept (training/promotion.py),
and the way back. `training.cli` mounts these functions; they parse flags and print.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from training.cli_common import console, friendly_errors, stage_progress

__all__ = ["policy_evaluate_command", "promote_command", "rollback_command"]


def _load(uri: str):
    """The nbo model at `uri`; registry errors become a ValueError naming the URI."""
    from mlflow.exceptions import MlflowException

    from training.decide import load_nbo_model

    try:
        return load_nbo_model(uri)
    except MlflowException as error:
        raise ValueError(f"cannot load the nbo model {uri}: {error.message}") from None


def _evaluation_table(evaluation, title: str) -> Table:
    table = Table(title=title)
    for column in ("policy", "estimator", "value", "95% CI" if evaluation.ips.confidence == 0.95 else "CI", "std err",
                   "rows"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("policy", "estimator") else "right")
    for policy, value in (("challenger", evaluation.ips), ("challenger", evaluation.doubly_robust),
                          ("champion (logged)", evaluation.champion)):  # fmt: skip
        table.add_row(
            policy, value.estimator, f"{value.value:.4f}", f"[{value.low:.4f}, {value.high:.4f}]",
            f"{value.std_error:.4f}", f"{value.n_rows:,}",
        )  # fmt: skip
    return table


def policy_evaluate_command(
    challenger: str = typer.Option(..., help="The challenger nbo model: models:/nbo/3, runs:/ URI or folder."),
    log: Path = typer.Option(..., help="The decision log (SQLite, the service's NBO_DECISION_LOG)."),
    data: Path = typer.Option(..., help="Contract tables with the outcomes after the decisions."),
    outcome: str = typer.Option("convert", help="convert, revenue or unsubscribe in the window after each decision."),
    window_days: float = typer.Option(14.0, help="Outcome window after each decision, in days."),
    observed_until: str = typer.Option(None, help="Outcomes are known up to here (default: the last transaction)."),
    confidence: float = typer.Option(0.95, help="Confidence level of the intervals."),
    net_of_send_cost: bool = typer.Option(False, help="Subtract each message's catalog send cost from its outcome."),
    greedy: bool = typer.Option(False, help="Evaluate the challenger without its exploration share."),
    since: str = typer.Option(None, help="Only decisions made at or after this time (e.g. after the training log)."),
    held_out_customers: bool = typer.Option(
        False, help="Only customers `nbo train uplift --exposures` held out of a single-day log (with --no-refit)."
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the estimates as JSON here."),
    validate: bool = typer.Option(True, help="Validate the input data against the contract first."),
) -> None:
    """Estimate what a challenger would have earned on the logged decisions (IPS and doubly
    robust, with confidence intervals), next to the champion's realised result.

    Example: nbo policy evaluate --challenger models:/nbo/4 --log decisions.sqlite --data demo/world
    """
    import mlflow

    from features.io import open_dataset
    from training.policy_evaluation import evaluate_on_log
    from training.tracking import default_tracking_uri

    with friendly_errors():
        if not log.is_file():
            raise FileNotFoundError(f"decision log {log} does not exist; point --log at the service's NBO_DECISION_LOG")
        mlflow.set_tracking_uri(default_tracking_uri())
        with stage_progress("off-policy evaluation") as progress:
            progress("loading the challenger", 0.05)
            model = _load(challenger)
            progress("reading the data", 0.15)
            dataset = open_dataset(data, validate=validate)
            progress("re-deciding the logged customers", 0.3)
            evaluation = evaluate_on_log(
                model, log, dataset, outcome=outcome, window_days=window_days, observed_until=observed_until,
                confidence=confidence, net_of_send_cost=net_of_send_cost, greedy=greedy, since=since,
                held_out_customers=held_out_customers,
            )  # fmt: skip
            progress("done", 1.0)
        if json_out is not None:
            from features.storage import write_atomic

            text = json.dumps(evaluation.as_dict(), indent=2, default=str)
            write_atomic(json_out, lambda tmp: tmp.write_text(text))
    title = f"Policy value: mean {outcome} per decision ({window_days:g}-day window)"
    console.print(_evaluation_table(evaluation, title))
    report = evaluation.report
    console.print(
        f"{evaluation.rows:,} logged decisions; the challenger agrees with the log on {evaluation.agreement:.1%}, "
        f"messages {report['challenger_messages']:,} (champion {report['champion_messages']:,}); largest weight "
        f"{report['max_weight']:.1f}; unsupported rows (holdout customers the challenger would message) "
        f"{evaluation.unsupported:,}"
    )


def promote_command(
    challenger: str = typer.Option(..., help="Registered version of the challenger (e.g. 4)."),
    model: str = typer.Option("nbo", help="Registered model name."),
    gates: Path = typer.Option(None, help="Gates YAML (training/promotion.py PromotionGates); default: all gates."),
    test_snapshot: Path = typer.Option(None, help="Labelled snapshot Parquet (label_churned) for the churn gates."),
    log: Path = typer.Option(None, help="Decision log for the uplift Qini and policy value gates."),
    data: Path = typer.Option(None, help="Contract tables with the outcomes after the logged decisions."),
    window_days: float = typer.Option(14.0, help="Outcome window after each decision, in days."),
    observed_until: str = typer.Option(None, help="Outcomes are known up to here (default: the last transaction)."),
) -> None:
    """Move the champion alias to a challenger only if it passes every gate, printing the comparison.

    Metrics are recomputed for both versions on the same evidence. Exit code 1 when refused.

    Example: nbo promote --challenger 4 --test-snapshot test.parquet --log decisions.sqlite --data demo/world
    """
    import mlflow
    import pandas as pd

    from features.io import open_dataset
    from training import tracking
    from training.log_exposures import log_exposures
    from training.policy_evaluation import evaluation_rows
    from training.promotion import comparison_table, load_gates, model_metrics, promote

    with friendly_errors():
        mlflow.set_tracking_uri(tracking.default_tracking_uri())
        config = load_gates(gates)
        if (log is None) != (data is None):
            raise ValueError("give --log and --data together (the log's outcomes are read from the data)")
        with stage_progress("comparing challenger and champion") as progress:
            progress("loading models", 0.05)
            candidate = _load(f"models:/{model}/{challenger}")
            current = tracking.version_by_alias(model, tracking.CHAMPION_ALIAS)
            champion = None if current is None else _load(f"models:/{model}/{current.version}")
            evidence = {}
            if test_snapshot is not None:
                evidence["test_snapshot"] = pd.read_parquet(test_snapshot)
            if log is not None:
                progress("reading the decision log", 0.2)
                dataset = open_dataset(data, validate=True)
                if "uplift_qini" in config.enabled():
                    evidence["uplift_rows"] = log_exposures(
                        log, dataset, window_days=window_days, observed_until=observed_until
                    ).frame
                if "policy_value" in config.enabled():
                    evidence["evaluation_rows"], _ = evaluation_rows(
                        log, dataset, window_days=window_days, observed_until=observed_until
                    )
            progress("challenger metrics", 0.5)
            challenger_metrics = model_metrics(candidate, gates=config, **evidence)
            progress("champion metrics", 0.75)
            champion_metrics = None if champion is None else model_metrics(champion, gates=config, **evidence)
            result = promote(
                model, challenger, challenger_metrics, champion_metrics, config,
                champion_version=None if current is None else str(current.version),
            )  # fmt: skip
            progress("done", 1.0)
    console.print(comparison_table(result))
    for row in result.results:
        if not row.passed:
            console.print(f"  - {row.gate}: {row.note}", highlight=False)
    console.print(result.summary())
    if not result.promoted:
        raise typer.Exit(code=1)
    if result.replaced_version:
        console.print(f"previous champion v{result.replaced_version} kept as alias 'previous-champion'")


def rollback_command(
    model: str = typer.Option("nbo", help="Registered model name."),
) -> None:
    """Restore the previous champion (recorded by `nbo promote`).

    Example: nbo rollback --model nbo
    """
    import mlflow

    from training import tracking
    from training.promotion import rollback

    with friendly_errors():
        mlflow.set_tracking_uri(tracking.default_tracking_uri())
        restored, replaced = rollback(model)
    console.print(f"{model}: champion is version {restored} again (was version {replaced})")
