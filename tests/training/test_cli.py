"""The `nbo` command line end to end on a tiny simulated world: the commands a newcomer pastes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "world"
    result = runner.invoke(app, ["simulate", "--customers", "800", "--months", "6", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_simulate_writes_every_table_and_meta(world_dir):
    for name in ("customers", "transactions", "events", "exposures", "subscriptions", "ground_truth"):
        assert (world_dir / f"{name}.parquet").exists(), name
    meta = json.loads((world_dir / "world.json").read_text())
    assert meta["n_customers"] == 800
    assert pd.read_parquet(world_dir / "customers.parquet")["customer_id"].nunique() == 800


def test_features_build_as_of_end_is_the_worlds_end(world_dir, tmp_path):
    out = tmp_path / "snapshot.parquet"
    result = runner.invoke(app, ["features", "build", "--data", str(world_dir), "--as-of", "end", "--out", str(out)])
    assert result.exit_code == 0, result.output
    snapshot = pd.read_parquet(out)
    end = pd.Timestamp(json.loads((world_dir / "world.json").read_text())["end"])
    assert (snapshot["as_of"] == end).all()
    assert snapshot["customer_id"].is_unique
    assert "recency_days" in snapshot and "label_churned" not in snapshot


def test_features_build_stacks_dates_with_labels(world_dir, tmp_path):
    out = tmp_path / "train.parquet"
    result = runner.invoke(
        app,
        ["features", "build", "--data", str(world_dir), "--every", "30d", "--from", "2025-03-01",
         "--to", "2025-04-30", "--horizon-days", "30", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    stacked = pd.read_parquet(out)
    assert sorted(stacked["as_of"].unique()) == [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-03-31"),
                                                  pd.Timestamp("2025-04-30")]
    assert set(stacked["label_churned"].unique()) <= {0, 1}


def test_bad_input_is_a_message_not_a_traceback_and_writes_nothing(tmp_path):
    bad = tmp_path / "orders.csv"
    bad.write_text("cust,when,total\na,2020-01-01,5\nb,not a date,-3\n")
    out = tmp_path / "snapshot.parquet"
    result = runner.invoke(
        app,
        ["features", "build", "--data", str(bad), "--customer-col", "cust", "--ts-col", "when",
         "--amount-col", "total", "--as-of", "2020-02-01", "--out", str(out)],
    )
    assert result.exit_code == 2
    assert "transactions.ts" in result.output and "not a date" in result.output
    assert "transactions.amount" in result.output and "-3" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_transactions_only_mode_needs_all_column_flags(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text("cust,when,total\na,2020-01-01,5\n")
    result = runner.invoke(app, ["data", "validate", "--data", str(orders), "--customer-col", "cust"])
    assert result.exit_code == 2
    assert "--ts-col" in result.output


def test_transactions_only_snapshot_from_renamed_columns(tmp_path):
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "cust,when,total,invoice\n"
        "a,2020-01-01 10:00:00,5.0,i1\na,2020-01-01 10:00:00,7.0,i1\na,2020-01-15 09:00:00,3.0,i2\n"
        "b,2020-01-20 12:00:00,10.0,i3\n"
    )
    out = tmp_path / "snapshot.parquet"
    result = runner.invoke(
        app,
        ["features", "build", "--data", str(orders), "--customer-col", "cust", "--ts-col", "when",
         "--amount-col", "total", "--order-col", "invoice", "--as-of", "2020-02-01", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    snapshot = pd.read_parquet(out).set_index("customer_id")
    assert snapshot.loc["a", "frequency"] == 2
    assert snapshot.loc["a", "monetary"] == pytest.approx(15.0)
    assert snapshot.loc["b", "recency_days"] == pytest.approx(11.5)


def test_features_list_shows_registry(world_dir):
    result = runner.invoke(app, ["features", "list", "--set", "transactions_only"])
    assert result.exit_code == 0, result.output
    assert "recency_days" in result.output
    assert "email_open_rate" not in result.output
