"""A fitted uplift learner survives MLflow: saved, logged, registered and loaded back, it predicts
exactly what the in-process learner predicts, from raw feature columns."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.uplift import make_learner
from training.uplift_mlflow import (
    load_uplift_learner,
    load_uplift_model,
    log_uplift_model,
    save_uplift_model,
    uplift_column,
)


@pytest.fixture(scope="module")
def campaign():
    rng = np.random.default_rng(3)
    n_rows = 1500
    frame = pd.DataFrame(
        {
            "recency": rng.integers(1, 13, n_rows).astype(float),
            "channel": rng.choice(["web", "phone", "multichannel"], n_rows),
        }
    )
    arm = rng.choice(["control", "email", "sms"], n_rows)
    rate = 0.1 + 0.1 * (arm == "email") * (frame["channel"] == "web") + 0.05 * (arm == "sms")
    outcome = (rng.random(n_rows) < rate).astype(float)
    return frame, outcome, arm


@pytest.fixture(scope="module")
def fitted(campaign):
    frame, outcome, arm = campaign
    return make_learner("t", params={"n_estimators": 20, "min_child_samples": 50}).fit(
        frame, outcome, treatment=arm
    )


@pytest.fixture
def mlflow_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment("uplift-test", artifact_location=(tmp_path / "artifacts").as_uri())
        mlflow.set_experiment(experiment_id=experiment)
        yield uri
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def test_saved_model_predicts_like_the_learner(tmp_path, campaign, fitted):
    frame, _, _ = campaign
    save_uplift_model(fitted, tmp_path / "model")
    loaded = load_uplift_model(tmp_path / "model")
    predicted = loaded.predict(frame.head(200))
    assert list(predicted.columns) == [uplift_column("email"), uplift_column("sms")]
    np.testing.assert_allclose(predicted.to_numpy(), fitted.predict(frame.head(200)), rtol=0, atol=1e-12)
    learner = load_uplift_learner(tmp_path / "model")
    assert list(learner.arms_) == ["email", "sms"]


def test_logged_and_registered_model_loads_by_name(mlflow_store, campaign, fitted):
    frame, _, _ = campaign
    with mlflow.start_run():
        info = log_uplift_model(fitted, registered_model_name="uplift_test")
    assert info.registered_model_version == 1
    loaded = load_uplift_model("models:/uplift_test/1")
    np.testing.assert_allclose(
        loaded.predict(frame.tail(50)).to_numpy(), fitted.predict(frame.tail(50)), rtol=0, atol=1e-12
    )


def test_unfitted_learner_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save_uplift_model(make_learner("s"), tmp_path / "model")
