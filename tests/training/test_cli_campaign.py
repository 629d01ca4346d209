"""`nbo campaign analyze|plan` through the real CLI on a tiny simulated world, a flat table and a
decision log."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest
from typer.testing import CliRunner

from models.campaign_power import plan_control_group
from serving.decision_log import DecisionLog
from training.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign") / "world"
    result = runner.invoke(app, ["simulate", "--customers", "1500", "--months", "6", "--seed", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _invoke_json(arguments: list[str]) -> dict:
    result = runner.invoke(app, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_analyze_a_simulated_campaign(world_dir):
    exposures = pd.read_parquet(world_dir / "exposures.parquet")
    campaign = sorted(exposures["campaign_id"].unique())[0]
    result = _invoke_json(["campaign", "analyze", "--data", str(world_dir), "--campaign-id", campaign])
    assert result["campaign_id"] == campaign and result["control"] == "control"
    chosen = exposures.loc[exposures["campaign_id"] == campaign]
    sizes = chosen["offer_id"].value_counts()
    arms = sorted(set(sizes.index) - {"control"})
    conversion = [row for row in result["comparisons"] if row["outcome"] == "conversion"]
    assert [row["arm"] for row in conversion] == arms
    for row in conversion:
        assert (row["n_arm"], row["n_control"]) == (sizes[row["arm"]], sizes["control"])
    # Revenue economics for every arm, costed from the default catalog.
    assert [row["arm"] for row in result["economics"]] == arms
    # Independent check of one comparison from the raw files: orders in [assigned_at, +14 days).
    orders = pd.read_parquet(world_dir / "transactions.parquet")
    joined = chosen.merge(orders, on="customer_id", how="left")
    inside = (joined["ts"] >= joined["assigned_at"]) & (joined["ts"] < joined["assigned_at"] + pd.Timedelta(days=14))
    converted = joined.assign(hit=inside).groupby("customer_id")["hit"].any()
    chosen = chosen.assign(conversion=chosen["customer_id"].map(converted).astype(int))
    first = conversion[0]
    counts = [chosen.loc[chosen["offer_id"] == name, "conversion"].sum() for name in (first["arm"], "control")]
    _, p = proportions_ztest(counts, [first["n_arm"], first["n_control"]])
    assert first["p_value"] == pytest.approx(p, abs=1e-9)


def test_analyze_prints_tables_and_the_power_warning(world_dir):
    exposures = pd.read_parquet(world_dir / "exposures.parquet")
    campaign = sorted(exposures["campaign_id"].unique())[0]
    result = runner.invoke(app, ["campaign", "analyze", "--data", str(world_dir), "--campaign-id", campaign])
    assert result.exit_code == 0, result.output
    assert "conversion (rate)" in result.output and "discount_10" in result.output
    assert "Incremental revenue" in result.output
    # A few hundred customers per arm cannot detect the small simulated effects at 80% power.
    assert "too small to detect" in result.output


def test_unknown_campaign_lists_the_known_ones(world_dir):
    result = runner.invoke(app, ["campaign", "analyze", "--data", str(world_dir), "--campaign-id", "nope"])
    assert result.exit_code == 2
    assert "unknown campaign id 'nope'" in result.output and "cmp01_" in result.output
    result = runner.invoke(app, ["campaign", "analyze", "--data", str(world_dir)])
    assert result.exit_code == 2 and "--campaign-id" in result.output


def test_flat_table_matches_welch(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "segment": np.repeat(["mail", "none"], 400),
            "bought": rng.binomial(1, np.repeat([0.2, 0.12], 400)),
            "spend": rng.exponential(np.repeat([12.0, 10.0], 400)),
        }
    )
    path = tmp_path / "campaign.csv"
    table.to_csv(path, index=False)
    flags = ["--treatment-col", "segment", "--control", "none", "--outcome-col", "bought,spend",
             "--revenue-col", "spend", "--cost-per-send", "0.5"]  # fmt: skip
    result = _invoke_json(["campaign", "analyze", "--data", str(path), *flags])
    spend = next(row for row in result["comparisons"] if row["outcome"] == "spend")
    welch = stats.ttest_ind(table.loc[table.segment == "mail", "spend"], table.loc[table.segment == "none", "spend"],
                            equal_var=False)  # fmt: skip
    assert spend["kind"] == "continuous" and spend["p_value"] == pytest.approx(welch.pvalue, abs=1e-9)
    (money,) = result["economics"]
    assert money["send_cost"] == pytest.approx(0.5 * 400)
    assert money["net_incremental_revenue"] == pytest.approx(spend["absolute_lift"] * 400 - 200, abs=1e-6)
    missing = runner.invoke(app, ["campaign", "analyze", "--data", str(path), "--treatment-col", "segment",
                                  "--outcome-col", "bought"])  # fmt: skip
    assert missing.exit_code == 2 and "no control arm 'control'" in missing.output and "--control" in missing.output


def test_decision_log_uses_the_holdout_as_control(world_dir, tmp_path):
    customers = pd.read_parquet(world_dir / "customers.parquet")["customer_id"].tolist()[:600]
    decided_at = "2025-03-01T09:00:00"
    offers = ["holdout", "no_message", "discount_10"]
    records = [
        {
            "decision_id": f"d{index}", "customer_id": customer, "decided_at": decided_at,
            "offer_id": offers[index % 3], "channel": None if index % 3 < 2 else "email",
            "propensity": 1.0, "holdout": index % 3 == 0, "explored": False,
        }
        for index, customer in enumerate(customers)
    ]  # fmt: skip
    log = DecisionLog(tmp_path / "decisions.sqlite")
    log.append(records)
    log.close()
    log_path = str(tmp_path / "decisions.sqlite")
    result = _invoke_json(["campaign", "analyze", "--data", str(world_dir), "--log", log_path])
    assert result["campaign_id"] == "nbo-2025-03-01"
    conversion = {row["arm"]: row for row in result["comparisons"] if row["outcome"] == "conversion"}
    assert set(conversion) == {"discount_10", "no_message"}
    assert conversion["discount_10"]["n_control"] == 200 and conversion["no_message"]["n_arm"] == 200
    assert "only the holdout is randomised" in result["warnings"][0]


def test_plan_prints_sizes_and_json():
    result = runner.invoke(app, ["campaign", "plan", "--baseline-rate", "0.05", "--min-lift", "0.01"])
    assert result.exit_code == 0, result.output
    expected = plan_control_group(0.05, 0.01, treated_share=0.9)
    assert f"{expected.control_size:,}" in result.output and f"{expected.treated_size:,}" in result.output
    plan = _invoke_json(
        ["campaign", "plan", "--baseline-rate", "0.05", "--min-lift", "0.1", "--relative", "--arms", "3"]
    )
    assert plan == plan_control_group(0.05, 0.1, relative=True, treated_share=0.9, arms=3).to_dict()
    bad = runner.invoke(app, ["campaign", "plan", "--baseline-rate", "1.5", "--min-lift", "0.01"])
    assert bad.exit_code == 2 and "baseline rate must be strictly between 0 and 1" in bad.output


@pytest.mark.parametrize("command", ["analyze", "plan"])
def test_help_has_an_example(command):
    result = runner.invoke(app, ["campaign", command, "--help"])
    assert result.exit_code == 0 and "Example: nbo campaign" in result.output
