"""Batch decisions: snapshot + customer context -> the nbo model -> Parquet and a summary.

A light nbo model (analyst priors instead of trained uplift models, no churn model) keeps these
tests about the batch glue: what is joined, what is written, what is printed, what fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

import features
from features.catalog import load_catalog
from features.dataset import Dataset
from features.simulate import simulate_world, write_world
from models.policy_config import NO_MESSAGE, OfferEffectPrior, PolicyConfig
from training.cli_nbo import nbo_app
from training.decide import customer_context, decision_frame, run_decide
from training.nbo_model import NboModel, register_nbo_model

CATALOG = load_catalog(Path(features.__file__).parent / "default_catalog.yaml")
PRIORS = {offer_id: OfferEffectPrior(convert=0.05, unsubscribe=0.001) for offer_id in CATALOG.offer_ids}
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = simulate_world(1500, months=8, seed=5)
    folder = write_world(world, tmp_path_factory.mktemp("decide") / "world")
    return world, Dataset.from_frames(world.contract_tables()), folder


@pytest.fixture(scope="module")
def light_model():
    config = PolicyConfig(uplift_priors=PRIORS, fallback_order_value=40.0)
    return NboModel(None, None, CATALOG, config, explain="none")


def test_customer_context_takes_the_last_send_before_as_of():
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "timezone": ["Europe/London", None],
            "email_consent": [True, False],
            "sms_consent": [False, False],
            "push_consent": [True, True],
            "unsubscribed_at": pd.to_datetime([None, "2025-03-01"]).as_unit("us"),
        }
    )
    stamps = pd.to_datetime(["2025-03-01", "2025-03-20", "2025-04-02", "2025-03-05", "2025-03-07"]).as_unit("us")
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "ts": stamps,
            "channel": ["email"] * 5,
            "event_type": ["send", "send", "send", "open", "send"],
            "campaign_id": ["c1", "c2", "c3", "c1", None],
            "offer_id": ["discount_10", "discount_10", "discount_10", "discount_10", None],
        }
    )
    transactions = pd.DataFrame(
        {"customer_id": ["a"], "ts": pd.to_datetime(["2025-01-01"]).as_unit("us"), "amount": [10.0]}
    )
    dataset = Dataset.from_frames({"customers": customers, "events": events, "transactions": transactions})
    context = customer_context(dataset, pd.Timestamp("2025-04-01"), CATALOG.offer_ids).set_index("customer_id")
    # the send after as-of and the open do not count; b never got a discount_10 send
    assert context.loc["a", "last_sent_at__discount_10"] == pd.Timestamp("2025-03-20")
    assert pd.isna(context.loc["b", "last_sent_at__discount_10"])
    assert not context.loc["b", "email_consent"]


def test_batch_writes_one_decision_per_customer_and_sums_up(world, light_model, tmp_path):
    world, dataset, _ = world
    out = tmp_path / "decisions.parquet"
    result = run_decide(dataset, world.meta["end"], out, model=light_model)
    written = pd.read_parquet(out)
    assert len(written) == len(result.decisions.table) == result.summary.customers
    assert written["customer_id"].is_unique
    messages = int((written["offer_id"] != NO_MESSAGE).sum())
    assert result.summary.messages == messages > 0
    assert result.summary.by_offer_channel["messages"].sum() == messages
    assert 0.03 < result.summary.holdout / result.summary.customers < 0.07
    assert not written.loc[written["holdout"], "offer_id"].ne(NO_MESSAGE).any()
    assert {"snapshot", "decide", "write"} <= set(result.seconds)
    again = run_decide(dataset, world.meta["end"], None, model=light_model)
    assert again.decisions.table["holdout"].equals(result.decisions.table["holdout"])


def test_offer_cooldown_uses_past_campaign_sends(world, light_model):
    world, dataset, _ = world
    as_of = pd.Timestamp(world.meta["campaigns"][-1]["date"]) + pd.Timedelta(days=5)
    frame = decision_frame(dataset, as_of, CATALOG.offer_ids)
    recent = frame["last_sent_at__discount_10"] > as_of - pd.Timedelta(days=30)
    assert recent.sum() > 20
    table = light_model.decisions(frame, as_of=as_of).table
    assert not (table.loc[recent.to_numpy(), "offer_id"] == "discount_10").any()
    assert (table.loc[~recent.to_numpy(), "offer_id"] == "discount_10").any()


def test_cli_decides_with_the_registered_champion(world, light_model, tmp_path, monkeypatch):
    world, dataset, folder = world
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("t", artifact_location=(tmp_path / "a").as_uri()))
    try:
        register_nbo_model(light_model, decision_frame(dataset, world.meta["end"], CATALOG.offer_ids))
        out, summary = tmp_path / "decisions.parquet", tmp_path / "summary.json"
        result = runner.invoke(
            nbo_app,
            ["decide", "--data", str(folder), "--as-of", "end", "--out", str(out), "--summary-json", str(summary)],
        )
        assert result.exit_code == 0, result.output
        assert "Messages by offer and channel" in result.output and "holdout" in result.output
        assert len(pd.read_parquet(out)) == len(world.tables["customers"])
        assert '"suppressed_by_rule"' in summary.read_text()
        # bad input: a message naming the problem, exit code 2, nothing written
        bad_out = tmp_path / "bad.parquet"
        bad = runner.invoke(nbo_app, ["decide", "--data", str(folder), "--as-of", "1999-01-01", "--out", str(bad_out)])
        assert bad.exit_code == 2 and "as_of" in bad.output and not bad_out.exists()
        missing = runner.invoke(
            nbo_app, ["decide", "--data", str(folder), "--out", str(bad_out), "--model-uri", "models:/nope@champion"]
        )
        assert missing.exit_code != 0 and not bad_out.exists()
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # mlflow.set_experiment exports it
