"""The drift monitor's glue: find the reference, score both populations, log and report.

The reference is a snapshot Parquet file, or an MLflow run / registered model whose run holds
the reference sample the churn training logs (`REFERENCE_ARTIFACT`: a random sample of the
test snapshot's rows, every feature column). For `models:/nbo@...` the sample is taken from the
churn run the package was built from (the version's `churn_version` tag). The checks themselves
are `models.drift`; this module reads files, calls the model, writes HTML/JSON and MLflow.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from models.drift import DriftConfig, DriftResult, check_population, drift_report

logger = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "monitoring/reference_sample.parquet"
REFERENCE_SAMPLE_ROWS = 5000
EXPERIMENT = "monitor"
DECISION_COLUMN = "offer_id"
TOP_PSI_SHOWN = 20
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
Progress = Callable[[str, float], None]


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def load_drift_config(path: str | Path | None) -> DriftConfig:
    """Thresholds from a YAML file (keys of `models.drift.DriftConfig`); defaults without one.

    Example file: `psi: {warn: 0.1, alert: 0.2}` and `ignore: [cohort_month]`.
    """
    if path is None:
        return DriftConfig()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"monitor config {path} not found; give a YAML file or leave --config out")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"monitor config {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"monitor config {path} must be a mapping of settings, got {type(raw).__name__}")
    try:
        return DriftConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise ValueError(f"monitor config {path} is invalid: {problems}") from None


def read_parquet_frame(path: str | Path, what: str) -> pd.DataFrame:
    """A Parquet file as a frame, with a clear error naming `what` it should have been."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found; build one with `nbo features build ... --out FILE`")
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"{what} {path} is not a readable Parquet file: {error}") from None


def read_decisions(path: str | Path, column: str = DECISION_COLUMN) -> pd.Series:
    """The chosen offer per customer from a decisions Parquet (`nbo decide --out`)."""
    frame = read_parquet_frame(path, "decisions file")
    if column not in frame.columns:
        raise ValueError(
            f"decisions file {path} has no {column!r} column (columns: {list(frame.columns)[:8]}); "
            "pass the output of `nbo decide --out FILE`"
        )
    return frame[column]


def _download_reference(run_id: str) -> pd.DataFrame | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=folder
            )
        except (MlflowException, OSError) as error:
            logger.info("run %s has no %s: %s", run_id, REFERENCE_ARTIFACT, error)
            return None
        return pd.read_parquet(local)


def _model_version(uri: str) -> Any:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name_part = uri.removeprefix("models:/")
    client = MlflowClient()
    try:
        if "@" in name_part:
            name, alias = name_part.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, _, version = name_part.partition("/")
        if not version.isdigit():
            raise ValueError(f"model URI {uri!r} must look like models:/NAME@ALIAS or models:/NAME/VERSION")
        return client.get_model_version(name, version)
    except MlflowException as error:
        raise ValueError(f"cannot find registered model {uri}: {error.message}") from None


def resolve_reference(reference: str) -> tuple[pd.DataFrame, str]:
    """The reference frame and a description of where it came from.

    `reference`: a Parquet file; `runs:/RUN_ID` or a bare 32-hex run id; `models:/NAME@ALIAS`
    or `models:/NAME/VERSION` (for an `nbo` package without the sample, its churn model's run).
    """
    path = Path(reference)
    if path.suffix in {".parquet", ".pq"} or path.is_file():
        return read_parquet_frame(path, "reference snapshot"), str(path)
    run_id = reference.removeprefix("runs:/").strip("/").split("/")[0]
    if reference.startswith("runs:/") or RUN_ID_PATTERN.match(reference):
        frame = _download_reference(run_id)
        if frame is None:
            raise ValueError(
                f"run {run_id} has no {REFERENCE_ARTIFACT}; give a run of `nbo train churn` (which logs it) "
                "or a snapshot Parquet file"
            )
        return frame, f"runs:/{run_id}/{REFERENCE_ARTIFACT}"
    if reference.startswith("models:/"):
        version = _model_version(reference)
        frame = _download_reference(version.run_id)
        if frame is not None:
            return frame, f"{reference} (run {version.run_id})"
        churn_version = (version.tags or {}).get("churn_version")
        if churn_version:
            churn = _model_version(f"models:/churn/{churn_version}")
            frame = _download_reference(churn.run_id)
            if frame is not None:
                return frame, f"{reference} -> churn v{churn_version} (run {churn.run_id})"
        raise ValueError(
            f"neither {reference} nor the churn model it was built from logged {REFERENCE_ARTIFACT}; "
            "retrain churn with `nbo train churn` (it logs the sample) or pass a snapshot Parquet file"
        )
    raise FileNotFoundError(
        f"reference {reference!r} is neither an existing Parquet file nor an MLflow run id "
        "(runs:/ID or 32 hex digits) nor a registered model (models:/NAME@ALIAS)"
    )


def reference_sample(frame: pd.DataFrame, max_rows: int = REFERENCE_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """Up to `max_rows` random rows of a snapshot without its label columns (the reference)."""
    columns = [column for column in frame.columns if not str(column).startswith("label_")]
    sample = frame[columns]
    if len(sample) > max_rows:
        sample = sample.sample(n=max_rows, random_state=seed)
    return sample.reset_index(drop=True)


def log_reference_sample(frame: pd.DataFrame, max_rows: int = REFERENCE_SAMPLE_ROWS) -> int:
    """Log `reference_sample(frame)` to the active MLflow run as `REFERENCE_ARTIFACT`; its row count."""
    import mlflow

    sample = reference_sample(frame, max_rows)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / Path(REFERENCE_ARTIFACT).name
        sample.to_parquet(local, index=False)
        mlflow.log_artifact(str(local), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
    return len(sample)


# ----------------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------------


def load_nbo_model(uri: str) -> Any:
    """The `NboModel` behind a registered `nbo` pyfunc (ValueError when it is something else)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from training.nbo_model import NboModel

    try:
        model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except MlflowException as error:
        raise ValueError(f"cannot load the model {uri}: {error.message}; package one with `nbo package`") from None
    if not isinstance(model, NboModel):
        raise ValueError(f"{uri} holds a {type(model).__name__}, not an nbo model; pass models:/nbo@champion")
    return model


def score_frame(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Churn risk and per-offer uplift (and baseline conversion) of every row of `frame`."""
    scored, _ = model.decision_inputs(frame.reset_index(drop=True))
    risk = model.config.churn_risk_column
    columns = [column for column in scored.columns if column == risk or column.startswith("uplift_")]
    if model.uplift_models is not None and model.uplift_models.baseline_convert is not None:
        columns += [column for column in scored.columns if column.startswith("p_convert__")]
    return scored[columns].astype(float)


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------


def psi_chart_png(result: DriftResult, top: int = TOP_PSI_SHOWN) -> bytes:
    """A horizontal bar chart of the largest PSI values with the warn/alert lines, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    psi = result.table[result.table["check"] == "psi"].sort_values("value", ascending=False).head(top)
    colours = {"ok": "#4c9a2a", "warn": "#e0a800", "alert": "#c62828"}
    figure, axis = plt.subplots(figsize=(7.5, 0.32 * max(len(psi), 3) + 1.2))
    try:
        labels = [f"{row.column} ({row.group})" if row.group != "feature" else row.column for row in psi.itertuples()]
        axis.barh(labels[::-1], psi["value"].to_numpy()[::-1], color=[colours[s] for s in psi["status"][::-1]])
        if len(psi):
            axis.axvline(float(psi["warn_threshold"].iloc[0]), color=colours["warn"], linestyle="--", label="warn")
            axis.axvline(float(psi["alert_threshold"].iloc[0]), color=colours["alert"], linestyle="--", label="alert")
            axis.legend(loc="lower right")
        axis.set_xlabel("population stability index")
        axis.set_title(f"Top {len(psi)} PSI values")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return buffer.getvalue()


def summary_json(result: DriftResult, reference: str, current: str, run_id: str | None = None) -> dict[str, Any]:
    """The JSON summary: overall status, flagged columns per check and every check row."""
    table = result.table
    flagged = {
        level: {
            check: table[(table["check"] == check) & (table["status"] == level)]["column"].tolist()
            for check in sorted(table["check"].unique())
        }
        for level in ("alert", "warn")
    }
    rows = table.replace({np.nan: None}).to_dict(orient="records")
    return {
        "status": result.status,
        "reference": reference,
        "current": current,
        "checks": len(table),
        "flagged": flagged,
        "mlflow_run_id": run_id,
        "results": rows,
    }


def render_html(
    result: DriftResult, reference: str, current: str, run_id: str | None = None, chart: bytes | None = None
) -> str:
    """A self-contained HTML report: status, the PSI chart (embedded PNG) and the check table."""
    chart_text = base64.b64encode(psi_chart_png(result) if chart is None else chart).decode("ascii")
    shown = result.table[result.table["status"] != "ok"]
    rows = "\n".join(
        f'<tr class="{row.status}"><td>{html.escape(str(row.group))}</td><td>{html.escape(str(row.column))}</td>'
        f"<td>{row.check}</td><td>{row.value:.4f}</td><td>{row.warn_threshold:g} / {row.alert_threshold:g}</td>"
        f"<td>{row.status}</td><td>{html.escape(str(row.detail))}</td></tr>"
        for row in shown.itertuples()
    )
    counts = result.table["status"].value_counts().to_dict()
    run = f"<p>MLflow run: <code>{html.escape(run_id)}</code></p>" if run_id else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nbo drift monitor: {result.status}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; }}
tr.alert td {{ background: #fdecea; }} tr.warn td {{ background: #fff8e1; }}
.status {{ font-size: 1.4em; font-weight: bold; }}
</style></head><body>
<h1>Drift monitor</h1>
<p class="status">Status: {result.status}</p>
<p>Reference: <code>{html.escape(reference)}</code><br>Current: <code>{html.escape(current)}</code></p>
{run}
<p>{len(result.table)} checks: {counts.get("alert", 0)} alert, {counts.get("warn", 0)} warn,
{counts.get("ok", 0)} ok. PSI over the reference's quantile bins (missing values their own bin).</p>
<img alt="top PSI values" src="data:image/png;base64,{chart_text}">
<h2>Checks at warn or alert</h2>
<table><tr><th>group</th><th>column</th><th>check</th><th>value</th><th>warn / alert</th><th>status</th>
<th>detail</th></tr>
{rows}
</table></body></html>
"""


# ----------------------------------------------------------------------------------------------
# The whole run
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorOutcome:
    """What one monitor run produced."""

    result: DriftResult
    summary: dict[str, Any]
    html_path: Path | None
    run_id: str | None


def _log_run(result: DriftResult, summary: dict[str, Any], chart: bytes, config: DriftConfig, inputs: dict) -> str:
    import mlflow

    from training import tracking

    with mlflow.start_run(run_name="monitor") as run:
        tracking.log_params({**inputs, "bins": config.bins, "psi_warn": config.psi.warn, "psi_alert": config.psi.alert})
        mlflow.set_tags({"monitor_status": result.status})
        table = result.table
        metrics = {f"{row.check}.{row.group}.{row.column}": row.value for row in table.itertuples()}
        metrics["alerts"] = float((table["status"] == "alert").sum())
        metrics["warnings"] = float((table["status"] == "warn").sum())
        tracking.log_metrics(metrics)
        page = render_html(result, inputs["reference"], inputs["current"], run.info.run_id, chart)
        mlflow.log_text(page, "monitor.html")
        mlflow.log_dict({**summary, "mlflow_run_id": run.info.run_id}, "monitor.json")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "monitor_psi.png"
            path.write_bytes(chart)
            mlflow.log_artifact(str(path), "plots")
    return run.info.run_id


def run_monitor(
    reference: str,
    current: str | Path,
    *,
    model: str | None = None,
    decisions_reference: str | Path | None = None,
    decisions_current: str | Path | None = None,
    config: DriftConfig | None = None,
    out: str | Path | None = None,
    track: bool = True,
    progress: Progress | None = None,
) -> MonitorOutcome:
    """Compare a current snapshot with the reference, write the HTML report, log an MLflow run.

    With `model` (e.g. models:/nbo@champion) both populations are scored and the churn risk
    and uplift columns are checked too; with both decision files the offer mix is compared.
    `track=False` skips MLflow (the caller has set up tracking otherwise).
    """
    from features.storage import write_atomic

    config = config or DriftConfig()
    report = progress or (lambda stage, fraction: None)
    report("reading", 0.0)
    reference_frame, reference_name = resolve_reference(reference)
    current_frame = read_parquet_frame(current, "current snapshot")
    check_population(reference_frame, f"reference {reference_name}", config)
    check_population(current_frame, f"current snapshot {current}", config)
    scores: dict[str, pd.DataFrame] = {}
    if model is not None:
        report("scoring", 0.2)
        nbo = load_nbo_model(model)
        scores = {
            "reference_scores": score_frame(nbo, reference_frame),
            "current_scores": score_frame(nbo, current_frame),
        }
    decisions: dict[str, pd.Series] = {}
    if (decisions_reference is None) != (decisions_current is None):
        raise ValueError("give both --decisions-reference and --decisions-current, or neither")
    if decisions_reference is not None:
        decisions = {
            "reference_decisions": read_decisions(decisions_reference),
            "current_decisions": read_decisions(decisions_current),
        }
    report("checking", 0.6)
    result = drift_report(reference_frame, current_frame, config, **scores, **decisions)
    summary = summary_json(result, reference_name, str(current))
    chart = psi_chart_png(result)
    run_id = None
    if track:
        report("logging", 0.8)
        inputs = {"reference": reference_name, "current": str(current), "model": model}
        run_id = _log_run(result, summary, chart, config, inputs)
        summary["mlflow_run_id"] = run_id
    html_path = None
    if out is not None:
        html_path = Path(out)
        page = render_html(result, reference_name, str(current), run_id, chart)
        write_atomic(html_path, lambda temporary: temporary.write_text(page, encoding="utf-8"))
    report("done", 1.0)
    return MonitorOutcome(result=result, summary=summary, html_path=html_path, run_id=run_id)


def write_summary(summary: dict[str, Any], path: str | Path) -> Path:
    """Write the JSON summary atomically."""
    from features.storage import write_atomic

    path = Path(path)
    text = json.dumps(summary, indent=2, default=str)
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    return path
