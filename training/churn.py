"""Train and evaluate the churn model: stacked snapshots before a test as-of, one test snapshot.

The test snapshot is taken at `as_of` with labels from [as_of, as_of + horizon). Training
snapshots are taken every `every` back from `as_of - horizon`, so every training label window
ends by the test as-of and nothing after it is used. The estimator (`models.churn`) splits the
training snapshots by time itself. `run_churn_experiment` is the MLflow-free core shared by
`nbo train churn`, `nbo tune churn` and `nbo churn backtest`; `log_churn_run` records it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.dataset import Dataset
from features.labels import LABEL_COLUMNS
from features.snapshot import build_snapshot, data_bounds, parse_timestamp
from models.churn import MIN_ROWS_PER_CLASS, ChurnClassifier, RecencyBaseline
from models.classification_metrics import binary_classification_report

logger = logging.getLogger(__name__)

LABEL = "label_churned"
KEY_COLUMNS = ("customer_id", "as_of")
CHURN_DEFINITIONS = ("no_purchase", "subscription")
RECENCY_FEATURE = "recency_days"
# Columns the churn model never reads:
# - cohort_month: a calendar id (yyyymm) whose values at a later test date never occur in training;
# - days_to_renewal, usage_ratio: computed from the subscriptions table, which holds each
#   subscription's *latest* state, so renews_at and usage of a subscription cancelled after the
#   as-of time reveal the cancellation (with them subscription churn scored ROC-AUC 1.000 on the
#   simulator); lifecycle_stage's `renewal_due` rule reads days_to_renewal, and its other rules
#   restate RFM and recency columns the model already has.
EXCLUDED_FEATURES = ("cohort_month", "days_to_renewal", "usage_ratio", "lifecycle_stage")
SUBSCRIPTION_ENDED = ("cancelled", "past_due")
MODEL_NAME = "churn"
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ChurnSetup:
    """What to train on and test against; the flags of `nbo train churn`."""

    as_of: pd.Timestamp
    horizon_days: int = 90
    every: str = "30d"
    feature_set: str = "all"
    churn_definition: str = "no_purchase"
    min_history_days: int = 14

    def check(self) -> None:
        """ValueError for settings that cannot work, naming the flag."""
        if self.churn_definition not in CHURN_DEFINITIONS:
            raise ValueError(
                f"--churn-definition {self.churn_definition!r} is unknown; use one of {', '.join(CHURN_DEFINITIONS)}"
            )
        if isinstance(self.horizon_days, bool) or int(self.horizon_days) != self.horizon_days or self.horizon_days < 1:
            raise ValueError(f"--horizon-days must be a positive whole number of days, got {self.horizon_days!r}")
        if every_delta(self.every) <= pd.Timedelta(0):
            raise ValueError(f"--every must be a positive duration such as 30d, got {self.every!r}")


@dataclass
class ChurnData:
    """Stacked training snapshots, the test snapshot, and the columns the model reads."""

    train: pd.DataFrame
    test: pd.DataFrame
    feature_columns: list[str]
    training_dates: list[pd.Timestamp]


@dataclass
class ChurnResult:
    """A fitted model and baseline with their test-snapshot predictions and metrics."""

    model: ChurnClassifier
    baseline: RecencyBaseline
    data: ChurnData
    probabilities: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def every_delta(every: str) -> pd.Timedelta:
    """Parse '30d', '7d', '2W'…; ValueError naming the flag otherwise."""
    try:
        return pd.Timedelta(every)
    except (TypeError, ValueError):
        raise ValueError(f"--every {every!r} is not a duration; use e.g. 30d or 7d") from None


def latest_test_as_of(dataset: Dataset, horizon_days: int) -> pd.Timestamp:
    """The latest midnight whose label window [as_of, as_of + horizon) fits in the data."""
    _, last = data_bounds(dataset)
    return (last - pd.Timedelta(days=int(horizon_days))).normalize()


def check_test_as_of(dataset: Dataset, as_of: pd.Timestamp, horizon_days: int) -> None:
    """ValueError when the test as-of lies outside the data or its label window runs past it."""
    first, last = data_bounds(dataset)
    if as_of <= first or as_of > last:
        raise ValueError(
            f"--as-of {as_of} is outside the data, which runs from {first} to {last}; "
            "choose an as-of with history before it and a label window after it"
        )
    window_end = as_of + pd.Timedelta(days=int(horizon_days))
    if window_end > last:
        raise ValueError(
            f"the test label window [{as_of}, {window_end}) runs past the last transaction ({last}); "
            f"use --as-of {latest_test_as_of(dataset, horizon_days).date()} or earlier, or a shorter --horizon-days"
        )


def training_as_of_dates(
    first_transaction: pd.Timestamp, as_of: pd.Timestamp, horizon_days: int, every: str, min_history_days: int
) -> list[pd.Timestamp]:
    """As-of dates every `every` back from `as_of - horizon`, each with `min_history_days` of history.

    Their label windows end by `as_of`, so training never sees the test period.
    """
    step = every_delta(every)
    earliest = first_transaction + pd.Timedelta(days=min_history_days)
    dates = []
    current = as_of - pd.Timedelta(days=int(horizon_days))
    while current >= earliest:
        dates.append(current)
        current -= step
    needed = 3  # training, early stopping, calibration
    if len(dates) < needed:
        raise ValueError(
            f"only {len(dates)} training snapshot(s) fit between the first transaction ({first_transaction}) + "
            f"{min_history_days} days of history and {as_of} - {horizon_days} days (labels must end before the "
            f"test as-of); at least {needed} are needed. Use a shorter --every, a shorter --horizon-days or a "
            "later --as-of"
        )
    return sorted(dates)


def subscription_labels(subscriptions: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """Subscribers at `as_of` and whether they cancel or fail to renew within the horizon.

    A subscription is live at as_of when it started before it and was not over yet (active, or
    ended at `renews_at` >= as_of). A customer churns when every live subscription ends
    (cancelled or past due) before as_of + horizon. The table holds each subscription's latest
    state, so this is exact only for subscriptions that change state at most once.
    """
    missing = [column for column in ("customer_id", "started_at", "renews_at", "status") if column not in subscriptions]
    if missing:
        raise ValueError(
            f"--churn-definition subscription needs subscriptions columns {missing}; "
            f"the table has {list(subscriptions.columns)}"
        )
    end = as_of + pd.Timedelta(days=int(horizon_days))
    status = subscriptions["status"].astype(str).str.lower()
    ends_at = subscriptions["renews_at"]
    ended = status.isin(SUBSCRIPTION_ENDED)
    live = (subscriptions["started_at"] < as_of) & (~ended | (ends_at >= as_of))
    churns = ended & (ends_at < end)
    frame = pd.DataFrame({"customer_id": subscriptions["customer_id"].astype(str), "churns": churns})[live.to_numpy()]
    labels = frame.groupby("customer_id", as_index=False)["churns"].all()
    return labels.rename(columns={"churns": LABEL}).astype({LABEL: "int64"})


def _apply_churn_definition(frame: pd.DataFrame, definition: str, dataset: Dataset, horizon_days: int) -> pd.DataFrame:
    if definition == "no_purchase":
        return frame
    if not dataset.has("subscriptions"):
        raise ValueError(
            "--churn-definition subscription needs a subscriptions table, and this data set has none "
            f"(tables: {', '.join(sorted(dataset.tables))}); use --churn-definition no_purchase"
        )
    subscriptions = dataset["subscriptions"].execute()
    parts = []
    for as_of, rows in frame.groupby("as_of", sort=True):
        labels = subscription_labels(subscriptions, pd.Timestamp(as_of), horizon_days)
        parts.append(rows.drop(columns=[LABEL]).merge(labels, on="customer_id", how="inner"))
    return pd.concat(parts, ignore_index=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Every snapshot column except keys, labels and `EXCLUDED_FEATURES`."""
    excluded = set(KEY_COLUMNS) | set(LABEL_COLUMNS) | set(EXCLUDED_FEATURES)
    return [column for column in frame.columns if column not in excluded]


def build_churn_data(dataset: Dataset, setup: ChurnSetup, progress: Progress | None = None) -> ChurnData:
    """Training snapshots and the test snapshot, labelled by the chosen churn definition."""
    setup.check()
    as_of = parse_timestamp(setup.as_of, "--as-of")
    check_test_as_of(dataset, as_of, setup.horizon_days)
    first, _ = data_bounds(dataset)
    dates = training_as_of_dates(first, as_of, setup.horizon_days, setup.every, setup.min_history_days)
    report = progress or (lambda stage, fraction: None)
    parts = []
    for index, date in enumerate(dates):
        report(f"training snapshot {date.date()}", index / (len(dates) + 1))
        parts.append(build_snapshot(dataset, date, setup.horizon_days, setup.feature_set))
    report(f"test snapshot {as_of.date()}", len(dates) / (len(dates) + 1))
    train = pd.concat(parts, ignore_index=True)
    test = build_snapshot(dataset, as_of, setup.horizon_days, setup.feature_set)
    train = _apply_churn_definition(train, setup.churn_definition, dataset, setup.horizon_days)
    test = _apply_churn_definition(test, setup.churn_definition, dataset, setup.horizon_days)
    churners = int(test[LABEL].sum())
    if churners < MIN_ROWS_PER_CLASS or len(test) - churners < MIN_ROWS_PER_CLASS:
        raise ValueError(
            f"the test snapshot at {as_of} has {len(test)} customers of whom {churners} churn; at least "
            f"{MIN_ROWS_PER_CLASS} churners and {MIN_ROWS_PER_CLASS} non-churners are needed to score a model. "
            "Use more customers or another --as-of/--horizon-days"
        )
    columns = feature_columns(test)
    if RECENCY_FEATURE not in columns:
        raise ValueError(
            f"feature set {setup.feature_set!r} has no {RECENCY_FEATURE!r}, which the recency baseline needs; "
            "choose a set that includes RFM (e.g. all, transactions_only, rfm)"
        )
    logger.info("churn data: %d training rows from %d snapshots, %d test rows", len(train), len(dates), len(test))
    return ChurnData(train=train, test=test, feature_columns=columns, training_dates=dates)


def fit_churn_model(
    data: ChurnData, params: Mapping[str, Any] | None = None, callbacks: list | None = None
) -> ChurnClassifier:
    """Fit the calibrated LightGBM model on the stacked training snapshots."""
    train = data.train
    return ChurnClassifier(**dict(params or {})).fit(
        train[data.feature_columns],
        train[LABEL].to_numpy(),
        as_of=train["as_of"].to_numpy(),
        customer_id=train["customer_id"].to_numpy(),
        callbacks=callbacks,
    )


def run_churn_experiment(data: ChurnData, params: Mapping[str, Any] | None = None) -> ChurnResult:
    """Fit model and recency baseline on the training snapshots; score both on the test snapshot."""
    model = fit_churn_model(data, params)
    baseline = RecencyBaseline(RECENCY_FEATURE).fit(data.train, data.train[LABEL].to_numpy())
    test = data.test
    probabilities = {
        "model": model.predict_proba(test[data.feature_columns])[:, 1],
        "model_uncalibrated": model.predict_uncalibrated_proba(test[data.feature_columns]),
        "baseline": baseline.predict_proba(test)[:, 1],
    }
    y = test[LABEL].to_numpy()
    metrics = {name: binary_classification_report(y, prob) for name, prob in probabilities.items()}
    return ChurnResult(model, baseline, data, probabilities, metrics)


def gate_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics the champion gate compares."""
    return {name: metrics[name] for name in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift")}


# ------------------------------------------------------------------------------ MLflow run
PROMOTE_MODES = ("gate", "always", "never")


@dataclass
class TrackedRun:
    """What a tracked training run produced: ids, the registered version and the gate decision."""

    run_id: str
    model_version: str | None
    decision: Any | None
    result: ChurnResult


def _champion_probabilities(champion_uri: str, dataset: Dataset, data: ChurnData, setup: ChurnSetup) -> np.ndarray:
    """The champion's P(churn) for the customers of the current test snapshot.

    When the champion reads columns the current feature set lacks, its own feature set (a tag
    on its version) is rebuilt at the same as-of, so both models face the same customers.
    """
    import mlflow

    champion = mlflow.sklearn.load_model(champion_uri)
    needed = list(getattr(champion, "feature_names_in_", []))
    test = data.test
    missing = [column for column in needed if column not in test.columns]
    if missing:
        from mlflow import MlflowClient

        version = MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
        feature_set = version.tags.get("feature_set")
        if not feature_set:
            raise ValueError(f"the champion needs columns {missing[:5]} and records no feature set to rebuild them")
        own = build_snapshot(dataset, test["as_of"].iloc[0], setup.horizon_days, feature_set)
        test = test[["customer_id"]].merge(own.drop(columns=list(LABEL_COLUMNS)), on="customer_id", how="left")
    return champion.predict_proba(test[needed])[:, 1]


def log_churn_run(
    result: ChurnResult,
    setup: ChurnSetup,
    *,
    dataset: Dataset,
    data_hash: str,
    params: Mapping[str, Any] | None = None,
    register: bool = True,
    promote: str = "gate",
) -> TrackedRun:
    """Log one churn training run into the active MLflow run and apply the champion gate.

    Logs settings, feature set name/version/fingerprint, the input data hash, test metrics of
    the model and the recency baseline, PNG plots (calibration, ROC, SHAP beeswarm and bar,
    importance), the model with signature and input example, registered as `churn`, and a
    sample of the test snapshot as the drift monitor's reference (`training.monitor`).
    """
    import mlflow

    from features import registry
    from models import explain
    from training import tracking

    if promote not in PROMOTE_MODES:
        raise ValueError(f"--promote must be one of {', '.join(PROMOTE_MODES)}, got {promote!r}")
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_churn_run needs an active MLflow run (mlflow.start_run())")
    data, model = result.data, result.model
    feature_set = registry.feature_set(setup.feature_set)
    tracking.log_params(
        {
            "test_as_of": str(pd.Timestamp(setup.as_of)),
            "horizon_days": setup.horizon_days,
            "every": setup.every,
            "churn_definition": setup.churn_definition,
            "feature_set": feature_set.name,
            "feature_set_version": feature_set.version,
            "feature_set_fingerprint": feature_set.fingerprint,
            "n_features": len(data.feature_columns),
            "training_snapshots": len(data.training_dates),
            "first_training_as_of": str(data.training_dates[0]),
            "last_training_as_of": str(data.training_dates[-1]),
            "n_training_rows": len(data.train),
            "n_test_customers": len(data.test),
            "data_hash": data_hash,
        }
    )
    tracking.log_params({**model.get_params(), **dict(params or {})}, prefix="model.")
    mlflow.set_tags({"feature_set": feature_set.name, "data_hash": data_hash, "model": MODEL_NAME})
    for name, values in result.metrics.items():
        tracking.log_metrics(values, prefix=f"{name}_test_" if name != "model" else "test_")
    tracking.log_metrics({"best_iteration": model.best_iteration_, "validation_log_loss": model.validation_log_loss_})
    mlflow.log_dict(model.split_summary_, "split_summary.json")
    # A sample of the test snapshot (features, no labels): the reference `nbo monitor` compares against.
    from training.monitor import log_reference_sample

    tracking.log_params({"reference_sample_rows": log_reference_sample(data.test)})

    y_test = data.test[LABEL].to_numpy()
    shown = {"LightGBM calibrated": result.probabilities["model"], "recency baseline": result.probabilities["baseline"]}
    tracking.log_figure(explain.calibration_figure(y_test, shown), "plots/calibration_curve.png")
    tracking.log_figure(explain.roc_figure(y_test, shown), "plots/roc_curve.png")
    explanation = explain.churn_shap_values(model, data.test[data.feature_columns])
    tracking.log_figure(explain.beeswarm_figure(explanation), "plots/shap_beeswarm.png")
    tracking.log_figure(explain.bar_figure(explanation), "plots/shap_bar.png")
    tracking.log_figure(explain.feature_importance_figure(model.feature_importance_), "plots/feature_importance.png")

    version_tags = {
        "feature_set": feature_set.name,
        "feature_set_version": str(feature_set.version),
        "test_as_of": str(pd.Timestamp(setup.as_of)),
        "horizon_days": str(setup.horizon_days),
        "churn_definition": setup.churn_definition,
        "data_hash": data_hash,
    }
    example = data.test[data.feature_columns].head(5)
    info = tracking.log_sklearn_model(model, example, MODEL_NAME if register else None, tags=version_tags)
    version = None if not register or info.registered_model_version is None else str(info.registered_model_version)
    if version is not None:
        from mlflow import MlflowClient

        client = MlflowClient()
        for name, value in version_tags.items():
            client.set_model_version_tag(MODEL_NAME, version, name, value)
        for name, value in gate_metrics(result.metrics["model"]).items():
            client.set_model_version_tag(MODEL_NAME, version, f"test_{name}", f"{value:.6f}")

    decision = None
    if version is not None:
        decision = _decide_promotion(result, setup, dataset, promote)
        tracking.record_gate_decision(decision, MODEL_NAME, version)
        if decision.promote:
            tracking.set_champion(MODEL_NAME, version)
    return TrackedRun(run.info.run_id, version, decision, result)


def _decide_promotion(result: ChurnResult, setup: ChurnSetup, dataset: Dataset, promote: str) -> Any:
    """Apply the champion gate (or the forced mode) on the current test snapshot."""
    from training import tracking

    challenger = gate_metrics(result.metrics["model"])
    current = tracking.champion_version(MODEL_NAME)
    if promote != "gate":
        champion_number = None if current is None else str(current.version)
        reason = f"--promote {promote}: gate not applied"
        return tracking.GateDecision(promote == "always", reason, challenger, None, champion_number, {"mode": promote})
    if current is None:
        return tracking.champion_gate(challenger, None)
    try:
        probabilities = _champion_probabilities(f"models:/{MODEL_NAME}@champion", dataset, result.data, setup)
    except (ValueError, KeyError) as error:
        reason = f"the champion (v{current.version}) cannot score this test snapshot ({error}); use --promote always"
        return tracking.GateDecision(False, reason, challenger, None, str(current.version), {"mode": "gate"})
    champion_metrics = gate_metrics(binary_classification_report(result.data.test[LABEL].to_numpy(), probabilities))
    return tracking.champion_gate(challenger, champion_metrics, champion_version=str(current.version))


# ------------------------------------------------------------------------------ backtest
@dataclass(frozen=True)
class ExportColumns:
    """Columns of a retailer's order export: the amount directly, or quantity x unit price."""

    customer: str
    ts: str
    amount: str | None = None
    order: str | None = None
    quantity: str | None = None
    price: str | None = None

    def check(self) -> None:
        """ValueError unless exactly one way to get the amount is given."""
        if self.amount is not None and (self.quantity is not None or self.price is not None):
            raise ValueError("give either --amount-col or --quantity-col with --price-col, not both")
        if self.amount is None and (self.quantity is None or self.price is None):
            raise ValueError(
                "the order value is missing: give --amount-col, or --quantity-col and --price-col "
                "(amount = quantity x price, e.g. --quantity-col Quantity --price-col UnitPrice)"
            )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_order_export(path: str, columns: ExportColumns, out_file: str) -> dict[str, int]:
    """Write the export's purchase rows as contract columns to `out_file` (Parquet); return counts.

    Kept: rows with a customer id and a positive quantity (or, without a quantity, a
    non-negative amount); returns, cancellations and anonymous rows are not purchases of a
    known customer. Values keep their source types; `open_dataset` coerces and validates them.
    """
    import duckdb

    columns.check()
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"--transactions {path} is not a file; give a CSV or Parquet order export")
    suffix = "".join(source.suffixes).lower()
    if suffix.endswith((".parquet", ".pq")):
        relation = f"read_parquet('{source.as_posix()}')"
    elif suffix.endswith((".csv", ".csv.gz", ".tsv")):
        relation = f"read_csv_auto('{source.as_posix()}', all_varchar=false)"
    else:
        raise ValueError(f"--transactions {path}: expected a .parquet or .csv file")
    con = duckdb.connect()
    try:
        present = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        wanted = {
            "--customer-col": columns.customer,
            "--ts-col": columns.ts,
            "--amount-col": columns.amount,
            "--order-col": columns.order,
            "--quantity-col": columns.quantity,
            "--price-col": columns.price,
        }
        absent = [f"{flag} {name}" for flag, name in wanted.items() if name is not None and name not in present]
        if absent:
            raise ValueError(f"{path} has no column(s) {', '.join(absent)}; its columns are {', '.join(present)}")
        if columns.amount is not None:
            amount = f"TRY_CAST({_quote(columns.amount)} AS DOUBLE)"
            purchase = f"{amount} >= 0"
        else:
            quantity = f"TRY_CAST({_quote(columns.quantity)} AS DOUBLE)"
            amount = f"{quantity} * TRY_CAST({_quote(columns.price)} AS DOUBLE)"
            purchase = f"{quantity} > 0"
        customer = _quote(columns.customer)
        items = [f"{customer} AS customer_id", f"{_quote(columns.ts)} AS ts", f"{amount} AS amount"]
        if columns.order is not None:
            items.append(f"{_quote(columns.order)} AS order_id")
        (rows, anonymous, not_purchase) = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {customer} IS NULL), "
            f"count(*) FILTER (WHERE {customer} IS NOT NULL AND NOT coalesce({purchase}, FALSE)) FROM {relation}"
        ).fetchone()
        kept = f"SELECT {', '.join(items)} FROM {relation} WHERE {customer} IS NOT NULL AND coalesce({purchase}, FALSE)"
        con.execute(f"COPY ({kept}) TO '{Path(out_file).as_posix()}' (FORMAT parquet)")
    finally:
        con.close()
    kept_rows = rows - anonymous - not_purchase
    if kept_rows == 0:
        raise ValueError(f"{path}: none of its {rows} rows is a purchase with a customer id")
    return {
        "rows_read": rows,
        "rows_without_customer": anonymous,
        "rows_not_purchases": not_purchase,
        "rows_used": kept_rows,
    }


def run_backtest(
    path: str,
    columns: ExportColumns,
    setup: ChurnSetup,
    params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train on an order export's history before `setup.as_of` and score the snapshot at it.

    Returns one flat dict: the model's test metrics (auc, brier, …), the recency baseline's
    (baseline_auc, …), population counts and what was read.
    """
    from features.contract import DataContractError
    from features.io import open_dataset

    with tempfile.TemporaryDirectory(prefix="nbo-backtest-") as folder:
        orders_file = str(Path(folder) / "transactions.parquet")
        counts = read_order_export(path, columns, orders_file)
        try:
            dataset = open_dataset(orders_file, validate=True)
        except DataContractError as error:
            names = f"customer_id = {columns.customer}, ts = {columns.ts}" + (
                f", order_id = {columns.order}" if columns.order else ""
            )
            raise ValueError(
                f"{path} does not fit the transactions contract ({names}; row numbers count only the "
                f"{counts['rows_used']} purchase rows kept): {error}"
            ) from None
        data = build_churn_data(dataset, setup, progress)
        result = run_churn_experiment(data, params)
    model, baseline = result.metrics["model"], result.metrics["baseline"]
    summary: dict[str, Any] = {
        "auc": model["roc_auc"],
        "brier": model["brier"],
        "pr_auc": model["pr_auc"],
        "log_loss": model["log_loss"],
        "ece": model["ece"],
        "top_decile_lift": model["top_decile_lift"],
        "mean_prediction": model["mean_prediction"],
        "n_customers": int(model["n"]),
        "churn_rate": model["positive_rate"],
        "baseline_auc": baseline["roc_auc"],
        "baseline_brier": baseline["brier"],
        "uncalibrated_auc": result.metrics["model_uncalibrated"]["roc_auc"],
        "uncalibrated_brier": result.metrics["model_uncalibrated"]["brier"],
        "as_of": str(parse_timestamp(setup.as_of)),
        "horizon_days": setup.horizon_days,
        "every": setup.every,
        "feature_set": setup.feature_set,
        "training_snapshots": len(data.training_dates),
        "first_training_as_of": str(data.training_dates[0]),
        "last_training_as_of": str(data.training_dates[-1]),
        "n_training_rows": len(data.train),
        "best_iteration": result.model.best_iteration_,
        "calibration_method": result.model.calibration_method_,
        **counts,
    }
    return summary
