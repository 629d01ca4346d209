"""`nbo report`: one self-contained HTML file for analysts, also logged to MLflow.

`build_report` gathers the sections from the packaged `nbo` model and the data (churn metrics
with calibration and ROC, SHAP drivers, Qini curves per offer with bootstrap bands, the segment
table, the decision summary); `render_report` fills training/report_template.html (images are
inline base64 PNG, no external URL, so it opens offline); `write_report` writes it atomically;
`log_report` attaches it to an MLflow run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.dataset import Dataset
from features.storage import write_atomic
from training.nbo_model import NboModel
from training.report_models import Section

logger = logging.getLogger(__name__)

__all__ = ["REPORT_EXPERIMENT", "SECTION_IDS", "Report", "build_report", "log_report", "render_report", "write_report"]

TEMPLATE = Path(__file__).with_name("report_template.html")
REPORT_EXPERIMENT = "report"
#: Sections every report has, in order (ids of the HTML <section> elements).
SECTION_IDS = ("churn", "drivers", "qini", "segments", "decisions")
Progress = Callable[[str, float], None]


@dataclass
class Report:
    """Everything the HTML shows: header facts, the sections in order, and stage timings."""

    as_of: pd.Timestamp
    model_uri: str
    model_facts: dict[str, str]
    sections: list[Section]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """Headline numbers of every section (for MLflow)."""
        return {name: value for section in self.sections for name, value in section.metrics.items()}


def build_report(
    dataset: Dataset,
    model: NboModel,
    as_of: pd.Timestamp,
    *,
    model_uri: str = "",
    horizon_days: int | None = None,
    decisions_table: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> Report:
    """Every section of the report for the customers known at `as_of`.

    `horizon_days` (churn outcome window) defaults to the churn training run's, else 90.
    `decisions_table` (e.g. `nbo decide`'s Parquet) replaces the recomputed decisions in the
    summary and segment table; it must cover the same customers.
    """
    from training.decide import decision_frame
    from training.report_decisions import align_decisions, decisions_section, segment_section
    from training.report_models import churn_section, drivers_section, logged_churn_run, qini_section

    report_progress = progress or (lambda stage, fraction: None)
    seconds: dict[str, float] = {}
    feature_set = str(model.metadata.get("decision_feature_set", "all"))
    logged = logged_churn_run(model)
    if horizon_days is None:
        horizon_days = int(float((logged or {}).get("params", {}).get("horizon_days", 90)))
    if horizon_days < 1:
        raise ValueError(f"--horizon-days must be a positive number of days, got {horizon_days}")

    def timed(name: str, fraction: float, make: Callable[[], Any]) -> Any:
        report_progress(name, fraction)
        started = time.perf_counter()
        result = make()
        seconds[name] = time.perf_counter() - started
        return result

    frame = timed("snapshot", 0.02, lambda: decision_frame(dataset, as_of, model.catalog.offer_ids, feature_set))
    decisions = timed("decisions", 0.15, lambda: model.decisions(frame, now=as_of, as_of=as_of))
    if decisions_table is not None:
        decisions = align_decisions(decisions, decisions_table)
    churn = timed("churn metrics", 0.3, lambda: churn_section(dataset, model, as_of, horizon_days, feature_set, logged))
    drivers = timed("SHAP drivers", 0.45, lambda: drivers_section(frame, model))
    qini = timed("Qini curves", 0.6, lambda: qini_section(dataset, model))
    segments = timed("segments", 0.85, lambda: segment_section(frame, decisions))
    summary = timed("decision summary", 0.9, lambda: decisions_section(decisions, stored=decisions_table is not None))
    facts = {
        "model": model_uri or "(given object)",
        "catalog version": str(model.catalog.version),
        "decision feature set": feature_set,
        "customers": f"{len(frame):,}",
        "churn horizon (days)": str(horizon_days),
        **{key: str(value) for key, value in model.metadata.items() if key.endswith("version")},
    }
    return Report(pd.Timestamp(as_of), model_uri, facts, [churn, drivers, qini, segments, summary], seconds)


def render_report(report: Report, title: str = "nbo report") -> str:
    """The report as one HTML document (autoescaped Jinja2; images inline)."""
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        title=title,
        as_of=f"{report.as_of:%Y-%m-%d %H:%M}",
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        facts=report.model_facts,
        sections=report.sections,
        seconds=report.seconds,
    )


def write_report(html: str, out: str | Path) -> Path:
    """Write the HTML atomically (a reader never sees half a report), readable by others like any
    document (the atomic writer's temporary file is private)."""

    def write(tmp: Path) -> None:
        tmp.write_text(html, encoding="utf-8")
        tmp.chmod(0o644)

    return write_atomic(out, write)


def log_report(report: Report, path: str | Path) -> str:
    """Log the HTML and the headline numbers in a new run of experiment `report`; the run id."""
    import mlflow

    from training import tracking

    mlflow.set_experiment(REPORT_EXPERIMENT)
    with mlflow.start_run(run_name="report") as run:
        tracking.log_params({"as_of": str(report.as_of), "model_uri": report.model_uri})
        tracking.log_metrics(report.metrics)
        tracking.log_metrics({f"seconds_{name.replace(' ', '_')}": value for name, value in report.seconds.items()})
        mlflow.log_artifact(str(path), artifact_path="report")
    return run.info.run_id
