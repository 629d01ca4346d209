"""A small but real `nbo` model for serving tests: simulated shop, churn + DR uplift, registered.

Built once per test session (about ten seconds): a simulated world, a stacked training set for
a small calibrated churn model, a DR uplift learner fitted on randomised synthetic assignments
over the latest snapshot's features, the default catalog, all wrapped in `NboModel`, logged to
a local MLflow registry as `nbo` with alias `champion`, and the latest snapshot published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

UPLIFT_FEATURES = ("recency_days", "frequency", "monetary", "tenure_days", "avg_order_value")
CUSTOMER_COLUMNS = ("timezone", "email_consent", "sms_consent", "push_consent", "unsubscribed_at")
TABLES = ("customers", "transactions", "events", "exposures", "subscriptions")
ARMS = ("control", "discount_10", "free_shipping", "content_reminder")


@dataclass(frozen=True)
class ServingFixture:
    tracking_uri: str
    model_uri: str
    snapshot_path: Path
    snapshot: pd.DataFrame
    registry_dir: Path


def _uplift_models(snapshot: pd.DataFrame, seed: int = 0):
    from models.uplift import make_learner
    from models.uplift_base import FeatureEncoder, make_outcome_model
    from training.nbo_model import UpliftModels

    rng = np.random.default_rng(seed)
    features = snapshot[list(UPLIFT_FEATURES)].reset_index(drop=True)
    treatment = rng.choice(np.array(ARMS, dtype=object), size=len(features))
    recency = features["recency_days"].fillna(365).to_numpy(dtype=float)
    base = 0.05 + 0.1 * (recency < 60)
    effect = np.where(treatment == "discount_10", 0.08 * (recency > 30), 0.0) + np.where(
        treatment == "free_shipping", 0.03, 0.0
    )
    converted = (rng.random(len(features)) < base + effect).astype(float)
    learner = make_learner("dr", n_folds=2, params={"n_estimators": 30, "num_leaves": 7, "min_child_samples": 20})
    learner.fit(features, converted, treatment=treatment, propensity=np.full(len(features), 1.0 / len(ARMS)))
    encoder = FeatureEncoder.fit(features)
    control = treatment == "control"
    small = {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 20, "verbose": -1}
    baseline = make_outcome_model("binary", small)
    baseline.fit(encoder.transform(features[control]), converted[control])
    return UpliftModels(
        learners={"convert": learner},
        baseline_convert=baseline,
        baseline_encoder=encoder,
        feature_columns=UPLIFT_FEATURES,
    )


def build_serving_fixture(directory: Path, customers: int = 1500, seed: int = 3) -> ServingFixture:
    """Train, register and publish everything a serving test needs under `directory`."""
    import mlflow

    from features.catalog import load_catalog
    from features.dataset import Dataset
    from features.simulate import simulate_world
    from features.snapshot import build_snapshot, build_training_set
    from models.churn import ChurnClassifier
    from serving.snapshot_store import publish_snapshot
    from training.nbo_model import NboModel, log_nbo_model

    world = simulate_world(customers, months=8, seed=seed, start="2025-01-01")
    dataset = Dataset.from_frames({name: world.tables[name] for name in TABLES if name in world.tables})
    dates = ["2025-05-01", "2025-06-01", "2025-07-01"]
    training = build_training_set(dataset, dates, horizon_days=30)
    labels = [column for column in training.columns if column.startswith("label_")]
    X = training.drop(columns=[*labels, "customer_id", "as_of"])
    churn = ChurnClassifier(n_estimators=60, early_stopping_rounds=10, calibration="sigmoid", min_child_samples=20)
    churn.fit(X, training["label_churned"], as_of=training["as_of"], customer_id=training["customer_id"])
    snapshot = build_snapshot(dataset, "2025-09-01")
    # The pipeline publishes the snapshot with the customers' consents and time zone (the policy's inputs).
    consents = world.tables["customers"][["customer_id", *CUSTOMER_COLUMNS]]
    snapshot = snapshot.merge(consents, on="customer_id", how="left")
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "features" / "default_catalog.yaml")
    model = NboModel(churn, _uplift_models(snapshot, seed), catalog)

    tracking_uri = f"sqlite:///{directory / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serving-tests")
    with mlflow.start_run():
        info = log_nbo_model(model, snapshot.head(20))
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("nbo", "champion", info.registered_model_version)
    snapshot_path = directory / "snapshot.sqlite"
    publish_snapshot(snapshot, snapshot_path)
    return ServingFixture(tracking_uri, "models:/nbo@champion", snapshot_path, snapshot, directory)


def register_version(
    fixture: ServingFixture,
    *,
    name: str = "nbo",
    seed: int | None = 11,
    broken: bool = False,
    alias: str | None = None,
) -> str:
    """Register another version of the fixture's model as `name` and return its version number.

    The churn model and catalog are the fixture's; the uplift learners are refitted with `seed`,
    so the new version decides differently (`seed=None` keeps the fixture's learners).
    `broken=True` registers a version whose uplift learners read a feature no snapshot has: it
    loads, but every prediction fails (as a model trained on a different feature set would).
    `alias`, when given, is moved to the new version.
    """
    import copy
    import dataclasses

    import mlflow

    from training.nbo_model import log_nbo_model

    mlflow.set_tracking_uri(fixture.tracking_uri)
    model = copy.copy(mlflow.pyfunc.load_model(fixture.model_uri).unwrap_python_model())
    with mlflow.start_run():
        if broken:
            model.uplift_models = dataclasses.replace(model.uplift_models, feature_columns=("no_such_feature",))
            info = mlflow.pyfunc.log_model(name="model", python_model=model, registered_model_name=name)
        else:
            if seed is not None:
                model.uplift_models = _uplift_models(fixture.snapshot, seed)
            info = log_nbo_model(model, fixture.snapshot.head(20), registered_name=name)
    version = str(info.registered_model_version)
    if alias is not None:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return version
