"""`mlflow run . -e train_churn --env-manager local` on a small simulated world: run, metrics, plots, registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from features.simulate import simulate_world, write_world
from tests.conftest import PROJECT_ROOT

PLOTS = {"calibration_curve", "roc_curve", "shap_beeswarm", "shap_bar", "feature_importance"}


def test_mlproject_declares_every_stage_with_cli_flags():
    project = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())
    entry_points = project["entry_points"]
    assert {"simulate", "features", "train_churn", "tune_churn"} <= set(entry_points)
    for name, entry in entry_points.items():
        for parameter in entry.get("parameters", {}):
            flag = "--" + parameter.replace("_", "-")
            assert f"{flag} {{{parameter}}}" in " ".join(entry["command"].split()), (name, parameter)


@pytest.mark.slow
def test_mlflow_run_train_churn_logs_and_registers(tmp_path):
    world = tmp_path / "world"
    write_world(simulate_world(1500, months=8, seed=11), world)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = mlflow.create_experiment("mlproject", artifact_location=str(tmp_path / "artifacts"))
        bin_folder = str(Path(sys.executable).parent)
        environment = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": bin_folder + os.pathsep + os.environ["PATH"]}
        environment.pop("MLFLOW_RUN_ID", None)
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlflow",
                "run",
                str(PROJECT_ROOT),
                "-e",
                "train_churn",
                "--env-manager",
                "local",
                "--experiment-id",
                experiment_id,
                "-P",
                f"data={world}",
                "-P",
                "feature_set=rfm",
                "-P",
                "horizon_days=60",
            ],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
        client = MlflowClient()
        (run,) = client.search_runs([experiment_id])
        assert run.info.status == "FINISHED"
        assert run.data.params["feature_set"] == "rfm"
        assert run.data.params["horizon_days"] == "60"
        for metric in (
            "test_roc_auc",
            "test_pr_auc",
            "test_brier",
            "test_log_loss",
            "test_ece",
            "test_top_decile_lift",
        ):
            assert 0 <= run.data.metrics[metric] <= 10, metric
            assert f"baseline_{metric}" in run.data.metrics
        plots = {item.path for item in client.list_artifacts(run.info.run_id, "plots")}
        assert plots == {f"plots/{name}.png" for name in PLOTS}
        local = Path(client.download_artifacts(run.info.run_id, "plots/shap_beeswarm.png", str(tmp_path)))
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        champion = client.get_model_version_by_alias("churn", "champion")
        assert champion.run_id == run.info.run_id
        assert run.data.tags["champion_gate.decision"] == "promote"
        assert "Registered model churn version 1" in completed.stdout
    finally:
        mlflow.set_tracking_uri(None)
