"""Campaign analysis on Hillstrom's RCT against independent scipy/statsmodels calls (1e-9)."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from features.adapters import hillstrom_tables
from models.campaign import analyze_campaign
from models.campaign_outcomes import attach_costs, campaign_outcomes
from tests.conftest import shared_file

TOLERANCE = 1e-9
ARMS = ("Womens E-Mail", "Mens E-Mail")


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    return pd.read_csv(shared_file("hillstrom.csv"))  # the `hillstrom_path` fixture, module-wide


@pytest.fixture(scope="module")
def analysis(hillstrom):
    table, _ = attach_costs(hillstrom, arm_col="segment", control="No E-Mail", cost_per_send=0.10)
    return analyze_campaign(
        table, arm_col="segment", control="No E-Mail", outcomes=["visit", "conversion", "spend"],
        revenue_col="spend",
    )  # fmt: skip


@pytest.mark.parametrize("arm", ARMS)
@pytest.mark.parametrize("outcome", ["visit", "conversion"])
def test_rates_match_statsmodels(hillstrom, analysis, arm, outcome):
    treated = hillstrom.loc[hillstrom["segment"] == arm, outcome]
    control = hillstrom.loc[hillstrom["segment"] == "No E-Mail", outcome]
    counts, sizes = [treated.sum(), control.sum()], [len(treated), len(control)]
    z, p = proportions_ztest(counts, sizes)
    low, high = confint_proportions_2indep(counts[0], sizes[0], counts[1], sizes[1], method="newcomb")
    ratio_low, ratio_high = confint_proportions_2indep(
        counts[0], sizes[0], counts[1], sizes[1], compare="ratio", method="log"
    )
    (item,) = [c for c in analysis.comparisons if c.arm == arm and c.outcome == outcome]
    assert item.kind == "binary" and (item.n_arm, item.n_control) == tuple(sizes)
    assert item.absolute_lift == pytest.approx(treated.mean() - control.mean(), abs=TOLERANCE)
    assert item.relative_lift == pytest.approx(treated.mean() / control.mean() - 1, abs=TOLERANCE)
    expected = [z, p, low, high, ratio_low - 1, ratio_high - 1]
    got = [item.statistic, item.p_value, item.absolute_ci_low, item.absolute_ci_high,
           item.relative_ci_low, item.relative_ci_high]  # fmt: skip
    assert got == pytest.approx(expected, abs=TOLERANCE)
    # Both e-mails raise visits and conversions; the effect is far above what 21k per arm detects.
    assert item.p_value < 0.001 and item.absolute_ci_low > 0 and not item.underpowered


@pytest.mark.parametrize("arm", ARMS)
def test_spend_matches_welch(hillstrom, analysis, arm):
    treated = hillstrom.loc[hillstrom["segment"] == arm, "spend"]
    control = hillstrom.loc[hillstrom["segment"] == "No E-Mail", "spend"]
    welch = stats.ttest_ind(treated, control, equal_var=False)
    interval = welch.confidence_interval(0.95)
    (item,) = [c for c in analysis.comparisons if c.arm == arm and c.outcome == "spend"]
    assert item.kind == "continuous"
    got = [item.absolute_lift, item.statistic, item.p_value, item.absolute_ci_low, item.absolute_ci_high]
    expected = [treated.mean() - control.mean(), welch.statistic, welch.pvalue, interval.low, interval.high]
    assert got == pytest.approx(expected, abs=TOLERANCE)
    (money,) = [e for e in analysis.economics if e.arm == arm]
    difference = treated.mean() - control.mean()
    assert money.net_incremental_revenue == pytest.approx(difference * len(treated) - 0.10 * len(treated), abs=1e-6)


def test_contract_route_gives_the_same_answers(hillstrom_path, analysis):
    """Hillstrom mapped to contract tables and joined point in time reproduces the flat table."""
    tables = hillstrom_tables(hillstrom_path)
    outcomes = campaign_outcomes(tables["exposures"], tables["transactions"], events=tables["events"])
    contract = analyze_campaign(outcomes, outcomes=["visit", "conversion", "revenue"])
    names = {"womens_email": "Womens E-Mail", "mens_email": "Mens E-Mail", "revenue": "spend"}
    flat = {(c.arm, c.outcome): c for c in analysis.comparisons}
    for item in contract.comparisons:
        reference = flat[(names[item.arm], names.get(item.outcome, item.outcome))]
        assert (item.n_arm, item.n_control) == (reference.n_arm, reference.n_control)
        assert [item.absolute_lift, item.p_value, item.absolute_ci_low, item.absolute_ci_high] == pytest.approx(
            [reference.absolute_lift, reference.p_value, reference.absolute_ci_low, reference.absolute_ci_high],
            abs=TOLERANCE,
        )
