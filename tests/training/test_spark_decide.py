"""Batch decisions on Spark (`mlflow.pyfunc.spark_udf` of the registered `nbo` model) equal the
DuckDB batch decisions for the same customers, column by column.

The model is small but real: a LightGBM churn model trained on this world's snapshots, analyst
uplift priors and the default catalog, registered in a temporary MLflow registry. Skipped, with
the reason, without PySpark or Java.
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
from features.io import open_dataset
from features.simulate import simulate_world, write_world
from features.snapshot import build_training_set
from features.spark import spark_problem
from models.policy import DECISION_COLUMNS
from models.policy_config import NO_MESSAGE, OfferEffectPrior, PolicyConfig
from training.decide import decision_frame, run_decide
from training.nbo_model import NboModel, register_nbo_model

pytestmark = pytest.mark.skipif(spark_problem() is not None, reason=f"Spark unavailable: {spark_problem()}")
CATALOG = load_catalog(Path(features.__file__).parent / "default_catalog.yaml")
AS_OF = "2025-08-15"


@pytest.fixture(scope="session")
def spark_con():
    """The local[2] session (shared with the other Spark tests: getOrCreate)."""
    from features.spark import SMALL_DATA_CONFIG, spark_connection, spark_session

    return spark_connection(spark_session(shuffle_partitions=2, driver_memory="1g", config=SMALL_DATA_CONFIG))


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A world on disk and a small nbo model (churn + priors) registered as nbo@champion."""
    from models.churn import ChurnClassifier

    folder = tmp_path_factory.mktemp("spark_decide")
    world = write_world(simulate_world(600, months=9, seed=8), folder / "world")
    duck = open_dataset(world)
    training = build_training_set(duck, ["2025-05-01", "2025-06-01", "2025-07-01"], horizon_days=30)
    labels = [column for column in training.columns if column.startswith("label_")]
    churn = ChurnClassifier(n_estimators=30, early_stopping_rounds=5, calibration="sigmoid", min_child_samples=20)
    churn.fit(
        training.drop(columns=[*labels, "customer_id", "as_of"]), training["label_churned"],
        as_of=training["as_of"], customer_id=training["customer_id"],
    )  # fmt: skip
    priors = {offer_id: OfferEffectPrior(convert=0.05, unsubscribe=0.001) for offer_id in CATALOG.offer_ids}
    config = PolicyConfig(uplift_priors=priors, fallback_order_value=40.0)
    model = NboModel(churn, None, CATALOG, config, explain="none")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("spark", artifact_location=(folder / "a").as_uri()))
    try:
        info = register_nbo_model(model, decision_frame(duck, AS_OF, CATALOG.offer_ids).head(50))
        yield world, duck, model, info["model_uri"], folder
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def test_spark_batch_decisions_equal_duckdb_batch_decisions(registered, spark_con):
    from features.spark import open_spark_dataset
    from training.spark_decide import run_spark_decide

    world, duck, model, model_uri, folder = registered
    expected = run_decide(duck, AS_OF, None, model=model).decisions.table
    result = run_spark_decide(open_spark_dataset(world, con=spark_con), AS_OF, folder / "spark", model_uri=model_uri)
    actual = pd.read_parquet(result.out).sort_values("customer_id", ignore_index=True)
    expected = expected.sort_values("customer_id", ignore_index=True)

    assert list(actual.columns) == list(DECISION_COLUMNS)
    assert result.summary["customers"] == len(actual) == len(expected) > 400
    # real decisions: messages, holdout, several offers, churn scores from the model
    assert (expected["offer_id"] != NO_MESSAGE).sum() > 100 and expected["holdout"].any()
    assert expected["offer_id"].nunique() >= 2 and expected["churn_risk"].nunique() > 50
    assert result.summary["messages"] == int((expected["offer_id"] != NO_MESSAGE).sum())
    for column in DECISION_COLUMNS:
        want, got = expected[column], actual[column]
        if pd.api.types.is_float_dtype(want):
            np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=1e-9, equal_nan=True,
                                       err_msg=column)  # fmt: skip
        else:
            same = (got.astype(object) == want.astype(object)) | (got.isna() & want.isna())
            assert same.all(), f"{column}: {int((~same).sum())} differ, e.g. {got[~same].head(3).tolist()}"


def test_a_failed_spark_write_leaves_the_previous_decisions(registered, spark_con, monkeypatch):
    """The Parquet parts go to a staging folder first: a write that dies half-way (here after one
    part) leaves the previous decisions folder as it was, and no staging folder behind."""
    from pyspark.sql import DataFrameWriter

    from features.spark import open_spark_dataset
    from training.spark_decide import run_spark_decide

    world, _, _, model_uri, folder = registered
    out = folder / "spark_rerun"
    run_spark_decide(open_spark_dataset(world, con=spark_con), AS_OF, out, model_uri=model_uri)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    assert any(name.endswith(".parquet") for name in before)

    def dies_half_way(self, path, *args, **kwargs):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "part-00000-half.parquet").write_bytes(b"PAR1")
        raise RuntimeError("executor lost")

    monkeypatch.setattr(DataFrameWriter, "parquet", dies_half_way)
    with pytest.raises(RuntimeError, match="executor lost"):
        run_spark_decide(open_spark_dataset(world, con=spark_con), AS_OF, out, model_uri=model_uri)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".spark_rerun")]


def test_engine_flags_refuse_what_they_cannot_do(tmp_path):
    """Unknown engines and Spark with transactions-only flags fail fast, naming the problem."""
    from typer.testing import CliRunner

    from training.cli import app

    runner = CliRunner()
    folder = tmp_path / "world"
    folder.mkdir()
    pd.DataFrame({"customer_id": ["a"], "ts": [pd.Timestamp("2025-01-01")], "amount": [1.0]}).to_parquet(
        folder / "transactions.parquet"
    )
    out = tmp_path / "snapshot.parquet"
    build = ["features", "build", "--data", str(folder), "--as-of", "2025-02-01", "--out", str(out)]
    unknown = runner.invoke(app, [*build, "--engine", "nope"])
    assert unknown.exit_code == 2 and "unknown engine 'nope'" in unknown.output
    columns = ["--customer-col", "customer_id", "--ts-col", "ts", "--amount-col", "amount"]
    mapped = runner.invoke(app, [*build, "--engine", "spark", *columns])
    assert mapped.exit_code == 2 and "need --engine duckdb" in mapped.output
    decide = runner.invoke(
        app, ["decide", "--data", str(folder), "--out", str(tmp_path / "d"), "--engine", "nope"]
    )
    assert decide.exit_code == 2 and "unknown engine 'nope'" in decide.output
    assert not out.exists() and not (tmp_path / "d").exists()
