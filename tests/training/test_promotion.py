"""Promotion gates and rollback: the champion alias moves only when every gate passes.

Gate logic is checked on literal metrics; the registry flow (`nbo promote`, `nbo rollback`)
on small real nbo models whose churn parts differ in quality by construction: one learned from
the true churn labels, one from shuffled labels (AUC near 0.5 on the test snapshot).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from training.promotion import Gate, PromotionGates, compare_metrics, load_gates

runner = CliRunner()
FEATURES = ["recency_days", "frequency", "monetary", "tenure_days", "avg_order_value"]


# ------------------------------------------------------------------------------ gate logic
def test_every_gate_passes_when_not_worse():
    gates = PromotionGates()
    champion = {"churn_auc": 0.80, "churn_brier": 0.10, "uplift_qini": 0.05, "policy_value": 0.060}
    challenger = {"churn_auc": 0.80, "churn_brier": 0.09, "uplift_qini": 0.06, "policy_value": 0.0595}
    results = compare_metrics(challenger, champion, gates)
    assert [r.gate for r in results] == ["churn_auc", "churn_brier", "uplift_qini", "policy_value"]
    assert all(r.passed for r in results)  # policy value 0.0005 lower, inside the 0.001 tolerance


@pytest.mark.parametrize(
    ("metric", "value", "gate"),
    [("churn_auc", 0.79, "churn_auc"), ("churn_brier", 0.11, "churn_brier"),
     ("uplift_qini", 0.04, "uplift_qini"), ("policy_value", 0.058, "policy_value")],
)  # fmt: skip
def test_one_worse_metric_fails_its_gate(metric, value, gate):
    champion = {"churn_auc": 0.80, "churn_brier": 0.10, "uplift_qini": 0.05, "policy_value": 0.060}
    challenger = {**champion, metric: value}
    results = {r.gate: r for r in compare_metrics(challenger, champion, PromotionGates())}
    assert not results[gate].passed
    assert all(r.passed for name, r in results.items() if name != gate)


def test_missing_evidence_fails_and_names_the_flag():
    results = compare_metrics({"churn_auc": 0.9}, {"churn_auc": 0.8}, PromotionGates())
    verdicts = {r.gate: r for r in results}
    assert verdicts["churn_auc"].passed
    assert not verdicts["churn_brier"].passed and "--test-snapshot" in verdicts["churn_brier"].note
    assert not verdicts["policy_value"].passed and "--log and --data" in verdicts["policy_value"].note


def test_no_champion_passes_and_disabled_gates_are_skipped(tmp_path):
    assert all(r.passed for r in compare_metrics({}, None, PromotionGates()))
    path = tmp_path / "gates.yaml"
    path.write_text("churn_brier: {enabled: false}\nuplift_qini: {enabled: false}\npolicy_value: {enabled: false}\n"
                    "churn_auc: {tolerance: 0.02}\n")  # fmt: skip
    gates = load_gates(path)
    assert gates.enabled() == ["churn_auc"] and gates.churn_auc == Gate(tolerance=0.02)
    assert compare_metrics({"churn_auc": 0.79}, {"churn_auc": 0.80}, gates)[0].passed
    path.write_text("churn_auc: {tolerance: -1}\n")
    with pytest.raises(ValueError, match=r"churn_auc\.tolerance"):
        load_gates(path)


# ------------------------------------------------------------------------------ registry flow
@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A test snapshot and three registered nbo versions: v1 bad churn (champion), v2 good, v3 bad."""
    import mlflow
    from sklearn.ensemble import HistGradientBoostingClassifier

    from features.catalog import load_catalog
    from features.dataset import Dataset
    from features.simulate import simulate_world
    from features.snapshot import build_snapshot
    from models.policy_config import OfferEffectPrior, PolicyConfig
    from training import tracking
    from training.nbo_model import NboModel, log_nbo_model

    directory = tmp_path_factory.mktemp("promote")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("promotion-tests")  # not an experiment id cached from another store
    world = simulate_world(800, months=6, seed=4, start="2025-01-01")
    dataset = Dataset.from_frames(world.contract_tables())
    snapshot = build_snapshot(dataset, "2025-05-15", horizon_days=30)
    snapshot = snapshot.merge(world.tables["customers"], on="customer_id", how="left")
    snapshot_path = directory / "test_snapshot.parquet"
    snapshot.to_parquet(snapshot_path)
    label = snapshot["label_churned"].to_numpy()
    shuffled = np.random.default_rng(0).permutation(label)
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "features" / "default_catalog.yaml")
    config = PolicyConfig(uplift_priors={offer: OfferEffectPrior(convert=0.02) for offer in catalog.offer_ids})

    def register(labels):
        churn = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(snapshot[FEATURES], labels)
        model = NboModel(churn, None, catalog, config, explain="none")
        with mlflow.start_run():
            return str(log_nbo_model(model, snapshot.drop(columns=["label_churned"]).head(10)).registered_model_version)

    versions = [register(shuffled), register(label), register(np.roll(shuffled, 7))]
    tracking.set_champion("nbo", versions[0])
    gates = directory / "churn_gates.yaml"
    gates.write_text("uplift_qini: {enabled: false}\npolicy_value: {enabled: false}\n")
    try:
        yield versions, snapshot_path, gates
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def _aliases():
    from training import tracking

    champion = tracking.version_by_alias("nbo", tracking.CHAMPION_ALIAS)
    previous = tracking.version_by_alias("nbo", tracking.PREVIOUS_CHAMPION_ALIAS)
    return (None if champion is None else str(champion.version), None if previous is None else str(previous.version))


def test_promote_accepts_better_refuses_worse_and_rollback_restores(registry):
    from training.cli import app

    (bad, good, worse), snapshot_path, gates = registry
    flags = ["--test-snapshot", str(snapshot_path), "--gates", str(gates)]
    accepted = runner.invoke(app, ["promote", "--challenger", good, *flags])
    assert accepted.exit_code == 0, accepted.output
    assert "churn_auc" in accepted.output and "pass" in accepted.output
    assert _aliases() == (good, bad)

    refused = runner.invoke(app, ["promote", "--challenger", worse, *flags])
    assert refused.exit_code == 1, refused.output
    assert "FAIL" in refused.output and "refused" in refused.output
    assert _aliases() == (good, bad)  # nothing moved

    rolled = runner.invoke(app, ["rollback"])
    assert rolled.exit_code == 0, rolled.output
    assert _aliases() == (bad, None)
    again = runner.invoke(app, ["rollback"])
    assert again.exit_code == 2 and "nothing to roll back" in again.output
    assert _aliases() == (bad, None)


def test_promote_refuses_without_evidence_for_a_configured_gate(registry):
    from training.cli import app

    (_, good, _), snapshot_path, _ = registry
    before = _aliases()
    result = runner.invoke(app, ["promote", "--challenger", good, "--test-snapshot", str(snapshot_path)])
    assert result.exit_code == 1, result.output
    assert "--log and --data" in result.output
    assert _aliases() == before


def test_model_metrics_are_recomputed_on_the_snapshot(registry):
    import pandas as pd

    from training.decide import load_nbo_model
    from training.promotion import model_metrics

    (bad, good, _), snapshot_path, gates = registry
    snapshot = pd.read_parquet(snapshot_path)
    config = load_gates(gates)
    good_metrics = model_metrics(load_nbo_model(f"models:/nbo/{good}"), gates=config, test_snapshot=snapshot)
    bad_metrics = model_metrics(load_nbo_model(f"models:/nbo/{bad}"), gates=config, test_snapshot=snapshot)
    assert good_metrics["churn_auc"] > 0.75
    assert abs(bad_metrics["churn_auc"] - 0.5) < 0.1
    assert good_metrics["churn_brier"] < bad_metrics["churn_brier"]
