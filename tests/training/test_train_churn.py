"""The churn training pipeline: snapshot dates, labels, calibration on the simulator, MLflow, gate, tuning."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.dataset import Dataset
from features.simulate import simulate_world, write_world
from training.churn import (
    LABEL,
    ChurnSetup,
    build_churn_data,
    feature_columns,
    latest_test_as_of,
    log_churn_run,
    run_churn_experiment,
    subscription_labels,
    training_as_of_dates,
)
from training.cli import app
from training.tracking import champion_gate, default_tracking_uri

WEAK = {"n_estimators": 1, "early_stopping_rounds": 1, "num_leaves": 2, "calibration": "sigmoid"}


@pytest.fixture(scope="module")
def world():
    return simulate_world(1500, months=8, seed=3)


@pytest.fixture(scope="module")
def dataset(world) -> Dataset:
    return Dataset.from_frames(world.contract_tables())


@pytest.fixture(scope="module")
def rfm_data(dataset):
    setup = ChurnSetup(as_of=latest_test_as_of(dataset, 60), horizon_days=60, every="30d", feature_set="rfm")
    return setup, build_churn_data(dataset, setup)


@pytest.fixture
def tracking(tracking_store, request):
    """A fresh experiment (artifacts in the store's folder) and no registered `churn` model."""
    name = request.node.name
    experiment_id = mlflow.create_experiment(name, artifact_location=str(tracking_store / name))
    mlflow.set_experiment(experiment_id=experiment_id)
    client = MlflowClient()
    if client.search_registered_models(filter_string="name = 'churn'"):
        client.delete_registered_model("churn")
    return experiment_id


def test_training_snapshots_end_before_the_test_as_of():
    first, as_of = pd.Timestamp("2025-01-01 09:00"), pd.Timestamp("2025-08-01")
    dates = training_as_of_dates(first, as_of, horizon_days=90, every="30d", min_history_days=14)
    assert dates == [pd.Timestamp(day) for day in ("2025-02-02", "2025-03-04", "2025-04-03", "2025-05-03")]
    assert all(date + pd.Timedelta(days=90) <= as_of for date in dates)
    with pytest.raises(ValueError, match="only 2 training snapshot"):
        training_as_of_dates(first, pd.Timestamp("2025-06-01"), horizon_days=90, every="30d", min_history_days=14)


def test_churn_data_stacks_snapshots_with_labels_before_the_test(rfm_data):
    setup, data = rfm_data
    train_dates = pd.to_datetime(data.train["as_of"].unique())
    assert len(train_dates) == len(data.training_dates) >= 3
    assert (train_dates + pd.Timedelta(days=setup.horizon_days) <= setup.as_of).all()
    assert (data.test["as_of"] == setup.as_of).all()
    assert data.test["customer_id"].is_unique
    assert not {"customer_id", "as_of", LABEL, "label_revenue", "cohort_month"} & set(data.feature_columns)
    assert "recency_days" in data.feature_columns


def test_feature_columns_leave_out_keys_labels_and_state_that_reveals_the_future():
    columns = ["customer_id", "as_of", "recency_days", "days_to_renewal", "usage_ratio", "cohort_month"]
    columns += ["lifecycle_stage", "has_subscription", "label_churned", "label_purchases", "label_revenue"]
    assert feature_columns(pd.DataFrame(columns=columns)) == ["recency_days", "has_subscription"]


def test_bad_settings_and_dates_get_clear_errors(dataset):
    end = latest_test_as_of(dataset, 60)
    with pytest.raises(ValueError, match="outside the data"):
        build_churn_data(dataset, ChurnSetup(as_of=pd.Timestamp("2020-01-01"), feature_set="rfm"))
    with pytest.raises(ValueError, match="outside the data"):
        build_churn_data(dataset, ChurnSetup(as_of=pd.Timestamp("2031-01-01"), feature_set="rfm"))
    with pytest.raises(ValueError, match="runs past the last transaction"):
        build_churn_data(dataset, ChurnSetup(as_of=end, horizon_days=90, feature_set="rfm"))
    with pytest.raises(ValueError, match="--churn-definition 'lapsed' is unknown"):
        build_churn_data(dataset, ChurnSetup(as_of=end, churn_definition="lapsed"))
    with pytest.raises(ValueError, match="--every 'monthly' is not a duration"):
        build_churn_data(dataset, ChurnSetup(as_of=end, every="monthly"))


def test_too_few_customers_is_an_error_not_a_crash():
    rng = np.random.default_rng(0)
    rows = 60
    transactions = pd.DataFrame(
        {
            "customer_id": pd.array([f"c{i % 12}" for i in range(rows)], dtype="str"),
            "ts": (pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 300, rows), unit="D")).astype(
                "datetime64[us]"
            ),
            "amount": rng.uniform(5, 50, rows),
        }
    )
    tiny = Dataset.from_frames({"transactions": transactions})
    with pytest.raises(ValueError, match="has 12 customers of whom 4 churn; at least 10 churners and 10 non-churners"):
        build_churn_data(tiny, ChurnSetup(as_of=pd.Timestamp("2025-08-01"), horizon_days=60, feature_set="rfm"))


def test_subscription_labels_literal():
    subscriptions = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "e"],
            "started_at": pd.to_datetime(
                ["2025-01-01", "2025-01-01", "2025-01-01", "2025-07-01", "2025-01-01", "2025-02-01"]
            ),
            "renews_at": pd.to_datetime(
                ["2025-07-01", "2025-08-01", "2025-12-01", "2025-09-01", "2025-06-20", "2025-12-01"]
            ),
            "status": ["cancelled", "active", "cancelled", "active", "past_due", "active"],
        }
    )
    labels = subscription_labels(subscriptions, pd.Timestamp("2025-06-01"), 60).set_index("customer_id")[LABEL]
    # a ends within the window; b renews; c ends after it; d starts later; e keeps one live subscription
    assert labels.to_dict() == {"a": 1, "b": 0, "c": 0, "e": 0}


def test_subscription_churn_definition_keeps_only_subscribers(dataset, world):
    setup = ChurnSetup(
        as_of=latest_test_as_of(dataset, 60), horizon_days=60, feature_set="rfm", churn_definition="subscription"
    )
    data = build_churn_data(dataset, setup)
    assert data.test[LABEL].sum() >= 10
    expected = subscription_labels(world.tables["subscriptions"], setup.as_of, 60)
    merged = data.test[["customer_id", LABEL]].merge(expected, on="customer_id", suffixes=("", "_expected"))
    assert len(merged) == len(data.test) == len(expected)
    assert (merged[LABEL] == merged[f"{LABEL}_expected"]).all()


def test_calibrated_model_is_calibrated_on_the_simulator():
    """ECE <= 0.03 on a 10,000-customer world. The test as-of sits where the calibration window
    and the test window have the same seasonal demand (symmetric around the summer trough);
    across a winter peak the shift in churn rate itself shows up as calibration error."""
    world = simulate_world(10_000, months=24, seed=7)
    dataset = Dataset.from_frames(world.contract_tables())
    setup = ChurnSetup(as_of=pd.Timestamp("2026-07-16"), horizon_days=90, every="60d", feature_set="rfm")
    result = run_churn_experiment(build_churn_data(dataset, setup))
    model, raw, baseline = (result.metrics[name] for name in ("model", "model_uncalibrated", "baseline"))
    assert model["ece"] <= 0.03
    assert model["ece"] < raw["ece"] - 0.02
    assert model["roc_auc"] > baseline["roc_auc"]


def test_champion_gate_decisions():
    champion = {"roc_auc": 0.75, "brier": 0.20}
    assert champion_gate({"roc_auc": 0.7, "brier": 0.3}, None).promote
    better = champion_gate({"roc_auc": 0.76, "brier": 0.201}, champion, champion_version="3")
    assert better.promote and "v3" in better.reason
    assert not champion_gate({"roc_auc": 0.74, "brier": 0.10}, champion).promote
    assert not champion_gate({"roc_auc": 0.75, "brier": 0.10}, champion).promote  # a tie is not a win
    worse_calibrated = champion_gate({"roc_auc": 0.80, "brier": 0.21}, champion)
    assert not worse_calibrated.promote and "brier" in worse_calibrated.reason
    assert not champion_gate({"roc_auc": 0.76, "brier": 0.2}, champion, min_improvement=0.02).promote
    with pytest.raises(ValueError, match="unknown gate metric 'f1'"):
        champion_gate({"roc_auc": 0.7}, champion, primary="f1")


def test_tracked_runs_register_and_move_the_champion_only_when_better(tracking, rfm_data, dataset, tmp_path):
    setup, data = rfm_data
    weak = run_churn_experiment(data, WEAK)
    strong = run_churn_experiment(data)
    assert strong.metrics["model"]["roc_auc"] > weak.metrics["model"]["roc_auc"]
    client = MlflowClient()
    outcomes = []
    for result in (weak, strong, weak):
        with mlflow.start_run() as run:
            tracked = log_churn_run(result, setup, dataset=dataset, data_hash="abc123")
        outcomes.append((run.info.run_id, tracked))
    assert [tracked.decision.promote for _, tracked in outcomes] == [True, True, False]
    assert [tracked.model_version for _, tracked in outcomes] == ["1", "2", "3"]
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "2"

    strong_run = client.get_run(outcomes[1][0])
    assert strong_run.data.params["feature_set"] == "rfm"
    assert strong_run.data.params["feature_set_version"] == "1"
    assert strong_run.data.params["data_hash"] == "abc123"
    assert strong_run.data.metrics["test_roc_auc"] == pytest.approx(strong.metrics["model"]["roc_auc"])
    assert "baseline_test_roc_auc" in strong_run.data.metrics
    assert strong_run.data.tags["champion_gate.decision"] == "promote"
    last = client.get_run(outcomes[2][0])
    assert last.data.tags["champion_gate.decision"] == "keep"
    assert "not better" in last.data.tags["champion_gate.reason"]
    plots = {item.path for item in client.list_artifacts(outcomes[1][0], "plots")}
    assert plots == {
        f"plots/{name}.png"
        for name in ("calibration_curve", "roc_curve", "shap_beeswarm", "shap_bar", "feature_importance")
    }
    champion = mlflow.sklearn.load_model("models:/churn@champion")
    served = champion.predict_proba(data.test[data.feature_columns])[:, 1]
    assert np.allclose(served, strong.probabilities["model"])
    assert mlflow.models.get_model_info("models:/churn@champion").signature is not None


def test_tuning_logs_each_trial_as_a_nested_run(tracking, rfm_data):
    from training.tune import tune_churn

    _, data = rfm_data
    with mlflow.start_run() as parent:
        study = tune_churn(data, 3, seed=0, base_params={"n_estimators": 200})
    assert len(study.trials) == 3
    children = MlflowClient().search_runs([tracking], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3
    assert {run.data.tags["trial_state"] for run in children} <= {"complete", "pruned"}
    assert "learning_rate" in children[0].data.params
    assert study.best_value == pytest.approx(
        min(run.data.metrics["validation_log_loss"] for run in children if "validation_log_loss" in run.data.metrics)
    )


def test_default_tracking_store_is_sqlite_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/x.db")
    assert default_tracking_uri() == "sqlite:////elsewhere/x.db"


def test_cli_reports_bad_input_without_a_traceback(world, tmp_path, monkeypatch):
    folder = tmp_path / "world"
    write_world(world, folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    runner = CliRunner()
    outside = runner.invoke(app, ["train", "churn", "--data", str(folder), "--as-of", "2031-01-01"])
    assert outside.exit_code == 2, outside.output
    assert "outside the data" in outside.output
    assert "Traceback" not in outside.output
    definition = runner.invoke(
        app, ["train", "churn", "--data", str(folder), "--as-of", "latest", "--churn-definition", "lapsed"]
    )
    assert definition.exit_code == 2
    assert "--churn-definition 'lapsed' is unknown" in definition.output
