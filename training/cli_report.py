"""`nbo report` (the analysts' HTML report) and `nbo explain CUSTOMER_ID` (one customer, as a picture).

`training.cli` attaches `report_command` as `nbo report` and `explain_command` as `nbo explain`.
Both load the packaged `nbo` model (default `models:/nbo@champion`) and the data folder; the work
happens in training/report.py and training/customer_explain.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from training.cli_common import console, friendly_errors, resolve_as_of, stage_progress

__all__ = ["explain_command", "report_command"]

#: Feature/value pairs per line of the features table.
FEATURE_COLUMNS = 2


def report_command(
    data: Path = typer.Option(..., help="Folder of contract tables or a DuckDB file."),
    out: Path = typer.Option(..., help="HTML file to write (self-contained; written atomically)."),
    as_of: str = typer.Option("end", "--as-of", help="Report date; 'end' = end of the data."),
    decisions: Path = typer.Option(
        None, help="Decisions Parquet from `nbo decide` (same data and --as-of); default: decide again."
    ),
    model_uri: str = typer.Option(
        "models:/nbo@champion", "--model", help="The nbo model: registry URI, runs:/ or folder."
    ),
    horizon_days: int = typer.Option(None, help="Churn outcome window; default the churn training run's, else 90."),
    log_to_mlflow: bool = typer.Option(
        True, "--log/--no-log", help="Also log the report to MLflow (experiment report)."
    ),
    validate: bool = typer.Option(True, help="Validate the input against the data contract first."),
) -> None:
    """Write the analysts' report: churn metrics, SHAP drivers, Qini curves, segments, decisions.

    One HTML file with every plot inline (opens offline), also logged to MLflow.

    Example: nbo report --data demo/world --as-of end --decisions demo/decisions.parquet --out demo/report.html
    """
    import mlflow
    import pandas as pd

    from features.io import open_dataset
    from training.report import build_report, log_report, render_report, write_report
    from training.tracking import default_tracking_uri

    with friendly_errors():
        if out.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--out {out} should end in .html (the report is one HTML file)")
        if decisions is not None and not decisions.is_file():
            raise FileNotFoundError(f"--decisions {decisions} does not exist; write it with `nbo decide --out`")
        mlflow.set_tracking_uri(default_tracking_uri())
        dataset = open_dataset(data, validate=validate)
        resolved = resolve_as_of(as_of, data, dataset)
        stored = pd.read_parquet(decisions) if decisions is not None else None
        with stage_progress("building the report") as progress:
            progress("loading the model", 0.0)
            model = _load_model(model_uri)
            report = build_report(
                dataset, model, resolved, model_uri=model_uri, horizon_days=horizon_days,
                decisions_table=stored, progress=progress,
            )  # fmt: skip
            progress("writing", 0.97)
            path = write_report(render_report(report), out)
            run_id = log_report(report, path) if log_to_mlflow else None
    timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in report.seconds.items())
    console.print(f"timings: {timings}")
    if run_id:
        console.print(f"Logged to MLflow run {run_id} (experiment report)")
    console.print(f"Wrote the report to {path.resolve()}")


def _load_model(model_uri: str) -> Any:
    """The nbo model, or a ValueError saying how to get one (a bad URI is the user's to fix)."""
    from mlflow.exceptions import MlflowException

    from training.decide import load_nbo_model

    try:
        return load_nbo_model(model_uri)
    except MlflowException as error:
        raise ValueError(
            f"cannot load the nbo model {model_uri}: {error.message}; package one with `nbo package` "
            "or check --model and MLFLOW_TRACKING_URI"
        ) from None


def _contribution_table(title: str, rows: list[tuple[str, Any, float]], unit: str) -> Table:
    table = Table(title=title)
    table.add_column("feature")
    table.add_column("value", justify="right")
    table.add_column(f"SHAP ({unit})", justify="right")
    for feature, value, shap in rows:
        table.add_row(feature, _text(value), f"{shap:+.4f}")
    return table


def _text(value: Any) -> str:
    from training.customer_explain import format_value

    return format_value(value)


def explain_command(
    customer_id: str = typer.Argument(..., help="The customer's id, as in the data (e.g. C0000001)."),
    data: Path = typer.Option(..., help="Folder of contract tables or a DuckDB file."),
    as_of: str = typer.Option("end", "--as-of", help="Snapshot and decision time; 'end' = end of the data."),
    model_uri: str = typer.Option(
        "models:/nbo@champion", "--model", help="The nbo model: registry URI, runs:/ or folder."
    ),
    png: Path = typer.Option(None, help="Also draw the explanation as a PNG picture here."),
    top_k: int = typer.Option(8, help="How many contributions to list (largest |SHAP| first)."),
    validate: bool = typer.Option(True, help="Validate the input against the data contract first."),
) -> None:
    """Explain one customer: features, churn risk and its SHAP drivers, every offer's value or the
    rule that removed it (the content of the service's /explain, plus the option table).

    Example: nbo explain C0000001 --data demo/world --png demo/C0000001.png
    """
    import mlflow

    from features.io import open_dataset
    from training.customer_explain import explain_customer, explanation_figure, select_customer
    from training.decide import decision_frame
    from training.report_figures import figure_png
    from training.tracking import default_tracking_uri

    with friendly_errors():
        if top_k < 1:
            raise ValueError(f"--top-k must be at least 1, got {top_k}")
        mlflow.set_tracking_uri(default_tracking_uri())
        dataset = open_dataset(data, validate=validate)
        resolved = resolve_as_of(as_of, data, dataset)
        with stage_progress(f"explaining {customer_id}") as progress:
            progress("loading the model", 0.0)
            model = _load_model(model_uri)
            progress("snapshot", 0.3)
            feature_set = str(model.metadata.get("decision_feature_set", "all"))
            frame = decision_frame(dataset, resolved, model.catalog.offer_ids, feature_set=feature_set)
            row = select_customer(frame, customer_id)
            progress("explaining", 0.7)
            explanation = explain_customer(model, row, now=resolved, as_of=resolved, top_k=top_k)
            if png is not None:
                from features.storage import write_atomic

                picture = figure_png(explanation_figure(explanation), dpi=100)
                write_atomic(png, lambda tmp: tmp.write_bytes(picture))
    _print_explanation(explanation)
    if png is not None:
        console.print(f"Wrote the picture to {png.resolve()}")


def _print_explanation(explanation: Any) -> None:
    risk = "n/a" if explanation.churn_risk is None else f"{explanation.churn_risk:.1%}"
    decision = explanation.decision
    chosen = "no message" if explanation.offer_id is None else f"{explanation.offer_id} by {decision.get('channel')}"
    console.print(f"[bold]Customer {explanation.customer_id}[/]: churn risk [bold]{risk}[/]; decision: {chosen}")
    console.print(
        f"expected value {_text(decision.get('expected_value'))}, send at {decision.get('send_at')}, "
        f"holdout {bool(decision.get('holdout'))}, explored {bool(decision.get('explored'))}; "
        f"reasons: {decision.get('reason_codes')}",
        highlight=False,
    )
    console.print(_contribution_table("Churn risk drivers", explanation.churn, "log-odds"))
    if explanation.uplift:
        console.print(
            _contribution_table(f"Uplift drivers of {explanation.offer_id}", explanation.uplift, "probability")
        )
    options = Table(title="Every option: the terms that priced it, or the rule that removed it", box=None)
    options.add_column("offer/channel", no_wrap=True)
    options.add_column("status and value")
    for _, row in explanation.options.iterrows():
        chosen = row["offer_id"] == explanation.offer_id and row["channel"] == decision.get("channel")
        options.add_row(f"{row['offer_id']}/{row['channel']}", option_text(row, chosen))
    console.print(options)
    features = Table(title="Features the models read", box=None)
    for _ in range(FEATURE_COLUMNS):
        features.add_column("feature", no_wrap=True)
        features.add_column("value", justify="right", no_wrap=True)
    cells = [(str(row.feature), _text(row.value)) for row in explanation.features.itertuples(index=False)]
    for start in range(0, len(cells), FEATURE_COLUMNS):
        chunk = cells[start : start + FEATURE_COLUMNS]
        chunk += [("", "")] * (FEATURE_COLUMNS - len(chunk))
        features.add_row(*(text for pair in chunk for text in pair))
    console.print(features)


def option_text(row: Any, chosen: bool) -> str:
    """One option in words: chosen / allowed / removed by RULE, then its value and the terms."""
    rule = row.get("suppressed_by")
    status = "CHOSEN" if chosen else ("allowed" if rule is None or rule != rule else f"removed by {rule}")
    value = row.get("value")
    if value is None or value != value:
        return f"{status} (no estimate of its effect)" if status == "allowed" else status
    terms = (
        f"value {value:.3f} = margin {row['incremental_margin']:.3f} - send {row['send_cost']:.3f} "
        f"- discount {row['discount_cost']:.3f} - harm {row['harm']:.3f} "
        f"(uplift {row['uplift_convert']:.3f}, P(convert) {row['p_convert']:.3f})"
    )
    return f"{status}: {terms}"
