"""`nbo monitor`: drift of features, scores and decisions against a reference, for schedulers.

Exit codes: 0 when no check reached the `--fail-on` level (default: alert), 1 when one did,
2 for bad input (missing files, unreadable config) as for every `nbo` command.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from training.cli_common import console, error_console, friendly_errors, stage_progress

FAIL_LEVELS = ("alert", "warn", "never")


def monitor_command(
    reference: str = typer.Option(
        ...,
        help="Reference: a snapshot Parquet, an MLflow run id (runs:/ID) of `nbo train churn`, or "
        "a registered model such as models:/nbo@champion (its churn run's reference sample).",
    ),
    current: Path = typer.Option(..., help="Current snapshot Parquet (from `nbo features build --out`)."),
    model: str = typer.Option(
        None,
        help="Also score both populations with this nbo model (e.g. models:/nbo@champion) and check "
        "the drift of churn risk and uplift per offer.",
    ),
    decisions_reference: Path = typer.Option(None, help="Reference decisions Parquet (`nbo decide --out`)."),
    decisions_current: Path = typer.Option(None, help="Current decisions Parquet, compared for the offer mix."),
    config: Path = typer.Option(
        None, help="YAML thresholds (keys of models.drift.DriftConfig, e.g. `psi: {warn: 0.1, alert: 0.25}`)."
    ),
    out: Path = typer.Option(Path("monitor.html"), help="Self-contained HTML report to write."),
    json_out: Path = typer.Option(None, "--json-out", help="Also write the JSON summary to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON summary instead of a table."),
    fail_on: str = typer.Option("alert", help="Exit 1 when a check reaches this level: alert, warn or never."),
    track: bool = typer.Option(True, help="Log the run (PSI metrics, report) to MLflow."),
) -> None:
    """Check a current snapshot for drift against a reference; exit 1 when an alert threshold is crossed.

    PSI per feature (and per score with --model), missing-share change, out-of-range share and the
    decision mix. Exit 0 = fine, 1 = a check reached --fail-on, 2 = bad input.

    Example: nbo monitor --reference models:/nbo@champion --current snap.parquet --model models:/nbo@champion
    """
    from training.monitor import EXPERIMENT, load_drift_config, run_monitor, write_summary
    from training.tracking import setup_tracking

    with friendly_errors():
        if fail_on not in FAIL_LEVELS:
            raise ValueError(f"--fail-on must be one of {', '.join(FAIL_LEVELS)}, got {fail_on!r}")
        settings = load_drift_config(config)
        needs_mlflow = track or model is not None or not Path(reference).suffix
        if needs_mlflow:
            setup_tracking(EXPERIMENT)
        with stage_progress("monitoring") as progress:
            outcome = run_monitor(
                reference, current, model=model, decisions_reference=decisions_reference,
                decisions_current=decisions_current, config=settings, out=out, track=track, progress=progress,
            )  # fmt: skip
        if json_out is not None:
            write_summary(outcome.summary, json_out)
    result = outcome.result
    if as_json:
        typer.echo(json.dumps(outcome.summary, default=str))
    else:
        _print_summary(outcome)
    failing = {"alert": ("alert",), "warn": ("warn", "alert"), "never": ()}[fail_on]
    if result.status in failing:
        error_console.print(f"drift status {result.status}: exit 1 (--fail-on {fail_on})", highlight=False)
        raise typer.Exit(code=1)


def _print_summary(outcome) -> None:
    from rich.table import Table

    result = outcome.result
    flagged = result.table[result.table["status"] != "ok"]
    table = Table(title=f"Drift status: {result.status} ({len(result.table)} checks, {len(flagged)} flagged)")
    for name in ("group", "column", "check", "value", "status"):
        table.add_column(name, justify="right" if name == "value" else "left")
    for row in flagged.head(30).itertuples():
        table.add_row(row.group, row.column, row.check, f"{row.value:.4f}", row.status)
    console.print(table)
    if outcome.html_path is not None:
        console.print(f"report: {outcome.html_path}")
    if outcome.run_id is not None:
        console.print(f"MLflow run: {outcome.run_id}")
