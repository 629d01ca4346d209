"""The H-visit and H-policy protocols of DATA.md on ../shared/data/hillstrom.csv (issue 5 targets),
and the backtest commands' handling of bad input on a small table.

Each protocol runs once per module: 10 stratified 50/50 splits, seeds 0..9, every choice made on
the training half. The splits reproduce the published baselines (always-* values below).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import shared_file
from training.backtest import load_campaign_table, run_policy_backtest, run_visit_backtest
from training.cli import app

FEATURES = ["recency", "history", "mens", "womens", "newbie", "zip_code", "channel"]
CANDIDATES = ["s-shift", "s-additive", "s", "t"]
CONTROL = "No E-Mail"
# Best public learner on the same protocol (DATA.md): scikit-uplift SoloModel.
PUBLIC_BEST = {"Womens E-Mail": 0.0585, "Mens E-Mail": 0.0115}
TARGET = {"Womens E-Mail": 0.065, "Mens E-Mail": 0.020}


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    return load_campaign_table(shared_file("hillstrom.csv"))


@pytest.fixture(scope="module")
def visit_results(hillstrom):
    """H-visit, one arm against control at a time (the published protocol)."""
    return {
        arm: run_visit_backtest(
            hillstrom, treatment_col="segment", control=CONTROL, outcome_col="visit", arm=arm,
            features=FEATURES, splits=10, learner="auto", candidates=CANDIDATES,
        )
        for arm in TARGET
    }


@pytest.fixture(scope="module")
def policy_result(hillstrom):
    return run_policy_backtest(
        hillstrom, treatment_col="segment", control=CONTROL, outcome_col="spend",
        cost_per_send=0.10, features=FEATURES, splits=10,
    )


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("arm", list(TARGET))
def test_h_visit_qini_target(visit_results, arm):
    result = visit_results[arm]
    summary = result["summary"][arm]
    assert result["splits"] == 10 and len(result["per_split"]) == 10
    assert summary["qini"]["mean"] > PUBLIC_BEST[arm]
    assert summary["qini"]["mean"] >= TARGET[arm], summary
    assert summary["uplift_at_k"]["mean"] > 0.05


@pytest.mark.slow
@pytest.mark.realdata
def test_h_policy_reproduces_the_published_baselines_and_beats_the_argmax(policy_result):
    summary = policy_result["summary"]
    # DATA.md: always none 0.648, always womens 1.043, always mens 1.314 (propensity exactly 1/3;
    # here each arm's share of rows, 0.3329-0.3342)
    assert summary["always No E-Mail"]["mean"] == pytest.approx(0.648, abs=0.003)
    assert summary["always Womens E-Mail"]["mean"] == pytest.approx(1.043, abs=0.005)
    assert summary["always Mens E-Mail"]["mean"] == pytest.approx(1.314, abs=0.005)
    best_constant = max(summary[f"always {label}"]["mean"] for label in (CONTROL, "Mens E-Mail", "Womens E-Mail"))
    assert summary["learned"]["mean"] >= best_constant - 0.01
    assert summary["learned"]["mean"] > 1.098  # per-arm LightGBM argmax (DATA.md)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.xfail(
    strict=True,
    reason="issue 5 target H-policy >= 1.35 not reached: the learned policy keeps 'always Mens' "
    "(1.316 here); no deviation survives cross-validation on any training half (RESULTS.md)",
)
def test_h_policy_value_target(policy_result):
    assert policy_result["summary"]["learned"]["mean"] >= 1.35


@pytest.mark.realdata
def test_uplift_backtest_command_prints_json():
    path = shared_file("hillstrom.csv")
    result = CliRunner().invoke(
        app,
        [
            "uplift", "backtest", "--data", str(path), "--treatment-col", "segment", "--control", CONTROL,
            "--outcome-col", "visit", "--features", ",".join(FEATURES), "--splits", "2",
            "--learner", "s", "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout[result.stdout.index("{"):])
    assert output["arms"] == ["Mens E-Mail", "Womens E-Mail"]
    assert set(output["summary"]) == {"Mens E-Mail", "Womens E-Mail"}
    assert len(output["per_split"]) == 4


@pytest.fixture
def small_table(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "arm": rng.choice(["ctl", "a", "b"], 300),
            "region": rng.choice(["north", "south"], 300),
            "age": rng.integers(18, 80, 300),
            "bought": rng.integers(0, 2, 300),
        }
    )
    path = tmp_path / "campaign.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--treatment-col", "group"], "--treatment-col 'group' is not a column"),
        (["--control", "none"], "control label 'none' not found in column 'arm'"),
        (["--arm", "c"], "--arm 'c' not found"),
        (["--arm", "ctl"], "is the control label"),
        (["--features", "age,income"], "['income'] are not columns"),
        (["--learner", "q"], "--learner 'q' unknown"),
        (["--splits", "1"], "--splits must be at least 2"),
    ],
)
def test_uplift_backtest_names_what_is_wrong(small_table, arguments, message):
    base = {"--treatment-col": "arm", "--control": "ctl", "--outcome-col": "bought", "--splits": "2"}
    for flag, value in zip(arguments[::2], arguments[1::2], strict=True):
        base[flag] = value
    flags = [item for pair in base.items() for item in pair]
    result = CliRunner().invoke(app, ["uplift", "backtest", "--data", str(small_table), *flags])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_single_arm_and_missing_file_are_clear(tmp_path, small_table):
    frame = pd.read_csv(small_table)
    frame["arm"] = "ctl"
    only_control = tmp_path / "control_only.csv"
    frame.to_csv(only_control, index=False)
    common = ["--treatment-col", "arm", "--control", "ctl", "--outcome-col", "bought", "--cost-per-send", "0.1"]
    result = CliRunner().invoke(app, ["policy", "backtest", "--data", str(only_control), *common])
    assert result.exit_code == 2
    assert "holds only the control label" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["policy", "backtest", "--data", str(tmp_path / "nope.csv"), *common])
    assert result.exit_code == 2
    assert "does not exist" in " ".join(result.output.split())
