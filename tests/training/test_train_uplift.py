"""`nbo train uplift`: exposures -> outcome windows and point-in-time features -> learners chosen by
held-out Qini -> the `uplift` model in MLflow behind a champion gate."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.dataset import Dataset
from features.simulate import simulate_world, write_world
from training.cli_nbo import nbo_app
from training.nbo_model import UpliftPyfunc
from training.train_uplift import (
    UpliftSetup,
    build_uplift_rows,
    campaign_outcomes,
    fit_uplift_models,
    log_uplift_run,
    validation_split,
)

FEATURES = "rfm_engagement"  # small set: quick snapshots
runner = CliRunner()


def _stamp(values):
    return pd.to_datetime(values).as_unit("us")


def test_outcomes_count_only_the_window_after_each_assignment():
    exposures = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "a"],
            "campaign_id": ["c1", "c1", "c1", "c2"],
            "offer_id": ["discount_10", "control", "discount_10", "control"],
            "assigned_at": _stamp(["2025-01-10", "2025-01-10", "2025-01-10", "2025-03-01"]),
            "channel": ["email"] * 4,
            "propensity": [0.5] * 4,
        }
    )
    transactions = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "c", "z"],
            # a: before the window, inside it twice; b: exactly at the window's end (excluded)
            "ts": _stamp(["2025-01-09", "2025-01-11", "2025-01-20", "2025-01-24", "2025-01-15", "2025-03-10"]),
            "amount": [100.0, 20.0, 5.0, 50.0, 7.0, 1.0],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["c", "b"],
            "ts": _stamp(["2025-01-12", "2025-02-01"]),
            "channel": ["email", "email"],
            "event_type": ["unsubscribe", "unsubscribe"],
            "campaign_id": pd.Series([None, None], dtype="str"),
            "offer_id": pd.Series([None, None], dtype="str"),
        }
    )
    dataset = Dataset.from_frames({"exposures": exposures, "transactions": transactions, "events": events})
    outcomes = campaign_outcomes(dataset, window_days=14).set_index(["customer_id", "campaign_id"])
    # c2's window (2025-03-01 + 14 days) runs past the last transaction (2025-03-10): not known yet
    assert ("a", "c2") not in outcomes.index
    assert outcomes.loc[("a", "c1"), ["outcome_convert", "outcome_revenue"]].tolist() == [1.0, 25.0]
    assert outcomes.loc[("b", "c1"), ["outcome_convert", "outcome_revenue", "outcome_unsubscribe"]].tolist() == [
        0.0,
        0.0,
        0.0,
    ]
    assert outcomes.loc[("c", "c1"), ["outcome_convert", "outcome_unsubscribe"]].tolist() == [1.0, 1.0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = simulate_world(2500, months=12, seed=21)
    folder = write_world(world, tmp_path_factory.mktemp("uplift") / "world")
    return world, folder


@pytest.fixture(scope="module")
def rows(world):
    return build_uplift_rows(Dataset.from_frames(world[0].contract_tables()), UpliftSetup(feature_set=FEATURES))


def test_features_come_from_before_the_campaign(world, rows):
    """An order placed at a campaign's first assignment changes no feature of that campaign's rows."""
    tables = world[0].contract_tables()
    campaign = rows.campaigns[2]
    first = rows.frame.loc[rows.frame["campaign_id"] == campaign, "assigned_at"].min()
    customer = rows.frame.loc[rows.frame["campaign_id"] == campaign, "customer_id"].iloc[0]
    extra = pd.DataFrame({"customer_id": [customer], "ts": [first], "amount": [999.0]})
    extra = extra.astype({"ts": tables["transactions"]["ts"].dtype})
    tables["transactions"] = pd.concat([tables["transactions"], extra], ignore_index=True)
    again = build_uplift_rows(Dataset.from_frames(tables), UpliftSetup(feature_set=FEATURES))
    keys = ["customer_id", "campaign_id"]
    before = rows.frame.set_index(keys).loc[(customer, campaign), rows.feature_columns]
    after = again.frame.set_index(keys).loc[(customer, campaign), rows.feature_columns]
    pd.testing.assert_series_equal(before, after)
    # ... while its own outcome window sees it
    assert again.frame.set_index(keys).loc[(customer, campaign), "outcome_revenue"] >= 999.0


def test_rows_hold_every_arm_and_the_latest_campaign_validates(rows):
    assert {"control", "discount_10", "free_shipping", "content_reminder"} <= set(rows.frame["offer_id"])
    assert rows.frame["propensity"].between(0, 1, inclusive="right").all()
    train, validation = validation_split(rows, 1)
    assert set(rows.frame.loc[validation, "campaign_id"]) == {rows.campaigns[-1]}
    assert rows.frame.loc[train, "assigned_at"].max() < rows.frame.loc[validation, "assigned_at"].min()
    with pytest.raises(ValueError, match="cannot hold out"):
        validation_split(rows, len(rows.campaigns))


@pytest.fixture(scope="module")
def result(rows):
    setup = UpliftSetup(feature_set=FEATURES, trials=3, learners=("s", "t"), outcomes=("convert", "unsubscribe"))
    return fit_uplift_models(rows, setup), setup


def test_learners_are_chosen_per_outcome_and_predict_every_arm(result, rows):
    fitted, _ = result
    assert set(fitted.choices) == {"convert", "unsubscribe"}
    assert all(choice.learner in ("s", "t") for choice in fitted.choices.values())
    assert len(fitted.choices["convert"].trials) == 3
    assert np.isfinite(fitted.metrics["qini_convert"])
    columns = fitted.models.predict_columns(rows.frame.head(50))
    for arm in ("discount_10", "free_shipping", "content_reminder"):
        assert f"uplift_convert__{arm}" in columns and f"uplift_unsubscribe__{arm}" in columns
    assert columns["p_convert__control"].between(0, 1).all()


def test_bad_settings_name_the_flag():
    with pytest.raises(ValueError, match="--learners"):
        UpliftSetup(learners=("magic",)).check()
    with pytest.raises(ValueError, match="--window-days"):
        UpliftSetup(window_days=0).check()


def test_registered_with_a_champion_gate(result, tmp_path, monkeypatch):
    fitted, setup = result
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("u", artifact_location=(tmp_path / "a").as_uri()))
    try:
        with mlflow.start_run() as run:
            first = log_uplift_run(fitted, setup, data_hash="x")
        assert first["model_version"] == "1" and first["decision"].promote
        artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
        assert "plots/qini_convert.png" in artifacts
        loaded = mlflow.pyfunc.load_model("models:/uplift@champion").unwrap_python_model()
        assert isinstance(loaded, UpliftPyfunc) and loaded.models.arms == fitted.models.arms
        # the same model again is not better than itself: the champion stays
        with mlflow.start_run():
            second = log_uplift_run(fitted, setup, data_hash="x")
        assert second["model_version"] == "2" and not second["decision"].promote
        champion = mlflow.MlflowClient().get_model_version_by_alias("uplift", "champion")
        assert str(champion.version) == "1"
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # mlflow.set_experiment exports it


def test_cli_trains_and_registers(world, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the default artifact folder lands in the temp dir
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    try:
        outcome = runner.invoke(
            nbo_app,
            ["train-uplift", "--data", str(world[1]), "--feature-set", FEATURES, "--trials", "1", "--learners", "t"],
        )
        assert outcome.exit_code == 0, outcome.output
        assert "Held-out Qini" in outcome.output and "uplift version 1" in outcome.output
        bad = runner.invoke(nbo_app, ["train-uplift", "--data", str(world[1]), "--learners", "magic"])
        assert bad.exit_code == 2 and "--learners" in bad.output
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # mlflow.set_experiment exports it
