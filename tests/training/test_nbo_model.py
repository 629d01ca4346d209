"""The deployable nbo model: churn + uplift + policy + catalog + send time as one MLflow pyfunc.

A small simulated world trains a quick churn model and uplift learners; the assembled model is
logged and registered in a temporary MLflow store, loaded back through `mlflow.pyfunc`, and must
decide exactly as the in-process object does, with flat scalar columns and the hard rules kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import features
from features.catalog import load_catalog
from features.dataset import Dataset
from features.simulate import simulate_world
from features.snapshot import build_training_set
from models.churn import ChurnClassifier
from models.policy import DECISION_COLUMNS
from models.policy_config import NO_MESSAGE
from training.churn import feature_columns
from training.decide import decision_frame
from training.nbo_model import (
    NboModel,
    UpliftPyfunc,
    assemble_nbo_model,
    load_champions,
    package_nbo,
    register_nbo_model,
    set_prediction_threads,
)
from training.tracking import log_sklearn_model
from training.train_uplift import UpliftSetup, build_uplift_rows, fit_uplift_models

CATALOG = load_catalog(Path(features.__file__).parent / "default_catalog.yaml")
TRAIN_SET = "rfm_engagement"  # small feature set: quick snapshots for training


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A temporary SQLite tracking store and artifact folder, restored afterwards."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment("nbo-test", artifact_location=(folder / "artifacts").as_uri())
        mlflow.set_experiment(experiment_id=experiment)
        yield uri
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # mlflow.set_experiment exports it


@pytest.fixture(scope="module")
def world():
    world = simulate_world(2000, months=12, seed=11)
    return world, Dataset.from_frames(world.contract_tables())


@pytest.fixture(scope="module")
def trained(world):
    world, dataset = world
    stacked = build_training_set(dataset, ["2025-07-01", "2025-08-01", "2025-09-01"], 60, feature_set=TRAIN_SET)
    columns = feature_columns(stacked)
    churn = ChurnClassifier(n_estimators=40, early_stopping_rounds=10, calibration="sigmoid").fit(
        stacked[columns],
        stacked["label_churned"].to_numpy(),
        as_of=stacked["as_of"].to_numpy(),
        customer_id=stacked["customer_id"].to_numpy(),
    )
    setup = UpliftSetup(feature_set=TRAIN_SET, trials=1, learners=("dr",), outcomes=("convert", "unsubscribe"))
    uplift = fit_uplift_models(build_uplift_rows(dataset, setup), setup).models
    end = pd.Timestamp(world.meta["end"])
    frame = decision_frame(dataset, end, CATALOG.offer_ids)
    return churn, uplift, frame, end


@pytest.fixture(scope="module")
def nbo(trained):
    churn, uplift, frame, _ = trained
    model = assemble_nbo_model(churn, uplift, CATALOG, frame)
    model.explain = "all"  # churn drivers for every customer (the batch default explains messages only)
    return model


@pytest.fixture(scope="module")
def decided(nbo, trained):
    return nbo.predict(None, trained[2])


def test_predict_returns_one_flat_row_per_customer(decided, trained):
    frame, table = trained[2], decided
    assert list(table.columns) == list(DECISION_COLUMNS)
    assert table["customer_id"].tolist() == frame["customer_id"].tolist()
    for column in table.columns:  # scalars and strings only: what spark_udf can carry
        assert table[column].dtype != object, column
    messaged = table["offer_id"] != NO_MESSAGE
    assert 0 < messaged.sum() < len(table)
    assert table.loc[messaged, "reason_codes"].str.contains("best_value|exploration").all()
    # churn drivers are phrases about the customer, not feature names and numbers
    assert table["churn_drivers"].str.contains(r"\((?:raises|lowers) risk\)").mean() > 0.95
    # the DR learner's per-arm effect trees explain the chosen offer's uplift
    assert (table.loc[messaged, "uplift_drivers"].str.len() > 0).mean() > 0.5


def test_messages_respect_consent_and_unsubscribe(nbo, trained):
    frame = trained[2].copy()
    frame["email_consent"] = False
    frame.loc[frame.index[::2], "push_consent"] = False
    table = nbo.predict(None, frame)
    assert not (table["channel"] == "email").any()
    assert not ((table["channel"] == "push") & ~frame["push_consent"].to_numpy(dtype=bool)).any()
    # an unsubscribe (request context) stops e-mail even where consent remains
    again = trained[2].copy()
    again["unsubscribed_at"] = pd.Timestamp("2025-06-01")
    assert not (nbo.predict(None, again)["channel"] == "email").any()


def test_chunking_does_not_change_decisions(trained, nbo, decided):
    churn, uplift, frame, _ = trained
    small_chunks = NboModel(
        churn, uplift, CATALOG, nbo.config, send_time_model=nbo.send_time_model, value=nbo.value, chunk_size=333,
        explain="all",
    )  # fmt: skip
    pd.testing.assert_frame_equal(small_chunks.predict(None, frame), decided)


def test_skipping_rule_blocked_customers_and_threads_change_nothing(trained, nbo, decided):
    churn, uplift, frame, end = trained
    blocked = nbo.blocked_by_rules(frame, end, end)
    assert 0 < blocked.sum() < len(frame)  # holdout and no-consent customers at least
    assert (decided.loc[blocked, "offer_id"] == NO_MESSAGE).all()
    full = NboModel(
        churn, uplift, CATALOG, nbo.config, send_time_model=nbo.send_time_model, value=nbo.value,
        explain="all", skip_blocked=False, threads=2,
    )  # fmt: skip
    pd.testing.assert_frame_equal(full.predict(None, frame), decided)
    assert set_prediction_threads(uplift, 1) >= 3  # the learners' and the baseline's boosters


def test_default_explains_messaged_customers_only(trained, nbo, decided):
    churn, uplift, frame, _ = trained
    lean = NboModel(churn, uplift, CATALOG, nbo.config, send_time_model=nbo.send_time_model, value=nbo.value)
    table = lean.predict(None, frame)
    messaged = table["offer_id"] != NO_MESSAGE
    pd.testing.assert_frame_equal(table.drop(columns="churn_drivers"), decided.drop(columns="churn_drivers"))
    # the same drivers (TreeSHAP on a subset may differ in the last float bits, reordering near-ties)
    first = table.loc[messaged, "churn_drivers"].str.split("; ").str[0]
    assert (first == decided.loc[messaged, "churn_drivers"].str.split("; ").str[0]).mean() > 0.9
    assert (table.loc[messaged, "churn_drivers"].str.len() > 0).all()
    assert (table.loc[~messaged, "churn_drivers"] == "").all()


def test_decision_time_param_moves_send_times(nbo, trained):
    frame, end = trained[2], trained[3]
    later = end + pd.Timedelta(days=2, hours=5)
    table = nbo.predict(None, frame, params={"now": later.isoformat()})
    sent = table["send_at"].dropna()
    assert len(sent) > 0 and (sent >= later).all()


def test_missing_model_columns_are_named(nbo, trained):
    frame = trained[2].drop(columns=["recency_days", "monetary_365d"])
    with pytest.raises(ValueError, match="recency_days"):
        nbo.predict(None, frame)


def test_logged_model_loads_and_decides_the_same(mlflow_store, nbo, trained, decided):
    frame = trained[2]
    outcome = register_nbo_model(nbo, frame, tags={"purpose": "test"})
    loaded = mlflow.pyfunc.load_model("models:/nbo@champion")
    pd.testing.assert_frame_equal(loaded.predict(frame), decided)
    assert outcome["champion"] and outcome["model_version"] == "1"
    signature = loaded.metadata.get_input_schema()
    assert not any(spec.required for spec in signature.inputs)  # the model names what is missing itself
    # context columns outside the snapshot survive MLflow's schema enforcement
    context = frame.copy()
    context["last_sent_at__discount_10"] = pd.Timestamp(trained[3]) - pd.Timedelta(days=2)
    assert not (loaded.predict(context)["offer_id"] == "discount_10").any()


def test_package_from_registered_champions(mlflow_store, trained):
    churn, uplift, frame, _ = trained
    with mlflow.start_run():
        log_sklearn_model(churn, frame[list(churn.feature_names_in_)].head(5), "churn")
        mlflow.pyfunc.log_model(name="uplift", python_model=UpliftPyfunc(uplift), registered_model_name="uplift")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("churn", "champion", "1")
    client.set_registered_model_alias("uplift", "champion", "1")
    loaded_churn, loaded_uplift = load_champions()
    assert loaded_uplift.arms == uplift.arms
    np.testing.assert_allclose(
        loaded_churn.predict_proba(frame[list(churn.feature_names_in_)]),
        churn.predict_proba(frame[list(churn.feature_names_in_)]),
    )
    outcome = package_nbo(frame, CATALOG, promote=True)
    version = client.get_model_version("nbo", outcome["model_version"])
    assert version.tags["churn_version"] == "1" and version.tags["uplift_version"] == "1"
    assert str(client.get_model_version_by_alias("nbo", "champion").version) == outcome["model_version"]
    decisions = mlflow.pyfunc.load_model("models:/nbo@champion").predict(frame)
    assert len(decisions) == len(frame)
