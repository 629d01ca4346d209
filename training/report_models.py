"""The model sections of `nbo report`: churn metrics and plots, SHAP drivers, Qini curves per offer.

Each function works from the packaged `nbo` model and the data, returns a `Section` (HTML
tables, embedded images, notes) and never writes files. Where the training run logged test
metrics in MLflow they are shown as logged; the plots are recomputed on the data so the report
works on any data folder.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CONTROL_OFFER_ID
from features.dataset import Dataset
from features.snapshot import build_snapshot
from training.nbo_model import NboModel
from training.report_figures import EmbeddedImage, embed_figure, table_html

logger = logging.getLogger(__name__)

__all__ = ["Section", "churn_section", "drivers_section", "logged_churn_run", "qini_section"]

QINI_FRACTIONS = np.linspace(0.0, 1.0, 51)
QINI_RESAMPLES = 200
QINI_CONFIDENCE = 0.9


@dataclass
class Section:
    """One part of the report: a title, HTML tables, images, explanatory notes and headline figures."""

    section_id: str
    title: str
    tables: list[tuple[str, str]] = field(default_factory=list)  # (caption, html)
    images: list[EmbeddedImage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def logged_churn_run(model: NboModel) -> dict[str, Any] | None:
    """Params and test metrics MLflow holds for the churn model packaged in `model` (None when
    the model was not packaged from a registered churn version or the registry cannot say)."""
    import mlflow

    version = str(model.metadata.get("churn_version") or "")
    uri = str(model.metadata.get("churn_uri") or "")
    if not version or not uri.startswith("models:/"):
        return None
    name = uri.removeprefix("models:/").split("@", 1)[0].split("/", 1)[0]
    try:
        client = mlflow.MlflowClient()
        run = client.get_run(client.get_model_version(name, version).run_id)
    except Exception as error:  # the report still works from the data alone
        logger.warning("cannot read the churn training run of %s version %s: %s", name, version, error)
        return None
    return {"run_id": run.info.run_id, "version": version, "params": run.data.params, "metrics": run.data.metrics}


def churn_section(
    dataset: Dataset,
    model: NboModel,
    as_of: pd.Timestamp,
    horizon_days: int,
    feature_set: str,
    logged: Mapping[str, Any] | None,
) -> Section:
    """Churn metrics, calibration and ROC on the latest snapshot whose `horizon_days` outcome window
    lies in the data and before `as_of`."""
    from models import explain
    from models.classification_metrics import binary_classification_report

    section = Section("churn", "Churn model")
    churn = model.churn_model
    if churn is None:
        section.notes.append("The packaged model has no churn model.")
        return section
    if logged is not None:
        metrics = {k.removeprefix("test_"): v for k, v in logged["metrics"].items() if k.startswith("test_")}
        if metrics:
            frame = pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())})
            section.tables.append(
                (f"Test metrics logged by the training run (churn version {logged['version']}, "
                 f"test snapshot {logged['params'].get('test_as_of', '?')})", table_html(frame, "churn-logged-metrics"))
            )  # fmt: skip
    from training.churn import latest_test_as_of

    evaluated_at = min(latest_test_as_of(dataset, horizon_days), (as_of - pd.Timedelta(days=horizon_days)).normalize())
    snapshot = build_snapshot(dataset, evaluated_at, horizon_days=horizon_days, feature_set=feature_set)
    names = [str(name) for name in churn.feature_names_in_]
    y_true = snapshot["label_churned"].to_numpy(dtype=float)
    probability = churn.predict_proba(snapshot[names])[:, 1]
    report = binary_classification_report(y_true, probability)
    section.metrics = {f"churn_{name}": value for name, value in report.items()}
    frame = pd.DataFrame({"metric": list(report), "value": list(report.values())})
    section.tables.append(
        (f"Churn metrics on the snapshot as of {evaluated_at:%Y-%m-%d} with outcomes over the next "
         f"{horizon_days} days ({len(snapshot):,} customers)", table_html(frame, "churn-metrics"))
    )  # fmt: skip
    last_training = (logged or {}).get("params", {}).get("last_training_as_of")
    if last_training is None or pd.Timestamp(last_training) >= evaluated_at:
        section.notes.append(
            "This snapshot may overlap the model's training snapshots, so these figures can be optimistic; "
            "the logged test metrics (when shown) come from a snapshot the model never saw."
        )
    shown = {"nbo churn model": probability}
    section.images.append(
        embed_figure(explain.calibration_figure(y_true, shown), "churn-calibration", "Calibration (reliability)")
    )
    section.images.append(embed_figure(explain.roc_figure(y_true, shown), "churn-roc", "ROC curve"))
    return section


def drivers_section(frame: pd.DataFrame, model: NboModel, top: int = 4, max_rows: int = 2000) -> Section:
    """SHAP beeswarm of churn risk today and dependence plots of the `top` drivers (mean |SHAP|)."""
    from models import explain

    section = Section("drivers", "What drives churn risk")
    if model.churn_model is None:
        section.notes.append("The packaged model has no churn model.")
        return section
    names = [str(name) for name in model.churn_model.feature_names_in_]
    explanation = explain.churn_shap_values(model.churn_model, frame[names], max_rows=max_rows)
    importance = pd.Series(np.abs(explanation.values).mean(axis=0), index=explanation.feature_names)
    leaders = importance.sort_values(ascending=False).head(top)
    section.images.append(
        embed_figure(explain.beeswarm_figure(explanation), "shap-beeswarm", "SHAP beeswarm (log-odds of churn)")
    )
    for rank, feature in enumerate(leaders.index, start=1):
        section.images.append(
            embed_figure(
                explain.dependence_figure(explanation, feature), f"shap-dependence-{rank}",
                f"Driver {rank}: {feature} (mean |SHAP| {leaders[feature]:.3f})",
            )
        )  # fmt: skip
    section.notes.append(
        f"SHAP values of {len(explanation.values):,} customers as of the report date; red dots are high feature values."
    )
    return section


def _evaluation_campaigns(campaigns: list[str], trained_on: list[str], most: int) -> tuple[list[str], str]:
    """The latest `most` campaigns the learners never saw; else the latest campaign, flagged optimistic."""
    unseen = [campaign for campaign in campaigns if campaign not in trained_on][-most:]
    if unseen:
        return unseen, f"campaigns the uplift models were not trained on: {', '.join(unseen)}"
    latest = campaigns[-1:]
    return latest, (
        f"the latest campaign ({latest[0]}); the learners were fitted on it too (refit on every campaign), "
        "so the curves are optimistic"
    )


def _exposure_rows(dataset: Dataset, window_days: int, feature_set: str, trained_on: list[str], most: int):
    """Exposures of the evaluation campaigns with outcomes and the snapshot as of each campaign's start."""
    from training.train_uplift import campaign_outcomes

    outcomes = campaign_outcomes(dataset, window_days)
    if outcomes.empty:
        raise ValueError(f"no exposure has a complete {window_days}-day outcome window in the data")
    starts = outcomes.groupby("campaign_id")["assigned_at"].min().sort_values()
    chosen, description = _evaluation_campaigns([str(c) for c in starts.index], trained_on, most)
    parts = []
    for campaign in chosen:
        snapshot = build_snapshot(dataset, starts[campaign], feature_set=feature_set)
        rows = outcomes[outcomes["campaign_id"] == campaign]
        parts.append(rows.merge(snapshot.drop(columns=["as_of"]), on="customer_id", how="inner"))
    return pd.concat(parts, ignore_index=True), description


def qini_section(dataset: Dataset, model: NboModel, seed: int = 0, campaigns: int = 2) -> Section:
    """Per offer, the conversion Qini curve against control with a bootstrap band, on the latest
    `campaigns` campaigns the uplift models did not see (else the latest one, flagged)."""
    from models import explain
    from models.uplift_metrics import qini_auc_score_interval
    from models.uplift_resampling import bootstrap_weights

    section = Section("qini", "Offer response (Qini curves)")
    uplift = model.uplift_models
    learner = None if uplift is None else uplift.learners.get("convert")
    if learner is None or not dataset.has("exposures"):
        section.notes.append("No conversion uplift model or no exposures table: no Qini curves.")
        return section
    feature_set = str(uplift.metadata.get("feature_set", "all"))
    trained_on = [str(campaign) for campaign in uplift.metadata.get("campaigns", [])]
    window = max(1, round(uplift.window_days))
    frame, description = _exposure_rows(dataset, window, feature_set, trained_on, campaigns)
    uplift.check_columns(frame)
    effects = learner.predict(frame[list(uplift.feature_columns)])
    offer_ids = frame["offer_id"].astype(str).to_numpy()
    converted = frame["outcome_convert"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    summary = []
    for position, arm in enumerate(str(label) for label in learner.arms_):
        keep = (offer_ids == CONTROL_OFFER_ID) | (offer_ids == arm)
        treated = (offer_ids[keep] == arm).astype(int)
        y, score = converted[keep], effects[keep, position]
        if treated.sum() < 10 or (1 - treated).sum() < 10 or len(np.unique(y)) < 2:
            section.notes.append(f"{arm}: too few exposures or no conversions in the evaluation campaigns.")
            continue
        curve = explain.weighted_qini_curves(y, score, treated, np.ones((1, len(y))), QINI_FRACTIONS)[0]
        resampled = explain.weighted_qini_curves(
            y, score, treated, bootstrap_weights(treated, QINI_RESAMPLES, rng), QINI_FRACTIONS
        )
        tail = (1 - QINI_CONFIDENCE) / 2
        low, high = np.quantile(resampled, [tail, 1 - tail], axis=0)
        interval = qini_auc_score_interval(y, score, treated, n_bootstrap=QINI_RESAMPLES, confidence=QINI_CONFIDENCE)
        figure = explain.qini_band_figure(
            QINI_FRACTIONS, curve, low, high, title=f"{arm} vs control (conversion)", confidence=QINI_CONFIDENCE
        )
        section.images.append(embed_figure(figure, f"qini-{arm}", f"Qini curve: {arm}"))
        section.metrics[f"qini_{arm}"] = interval.estimate
        summary.append({
            "offer": arm, "treated": int(treated.sum()), "control": int((1 - treated).sum()),
            "observed uplift": float(y[treated == 1].mean() - y[treated == 0].mean()),
            "Qini coefficient": interval.estimate, "low": interval.low, "high": interval.high,
        })  # fmt: skip
    if summary:
        section.tables.append(
            (f"Qini coefficient with its {QINI_CONFIDENCE:.0%} bootstrap interval ({QINI_RESAMPLES} resamples)",
             table_html(pd.DataFrame(summary), "qini-summary", float_format="{:,.4f}"))
        )  # fmt: skip
    section.notes.insert(
        0,
        f"Evaluated on {len(frame):,} exposures of {description}. Bands: {QINI_CONFIDENCE:.0%} percentile "
        "bootstrap, treated and control rows resampled separately.",
    )
    return section
