"""Campaign analysis: exact fixtures, independent scipy/statsmodels checks on simulated
campaigns, the power warning, control-group sizing and bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from features.catalog import DEFAULT_CATALOG_PATH, load_catalog
from features.simulate import simulate_world
from models.campaign import analyze_campaign, compare_binary, compare_continuous
from models.campaign_outcomes import (
    attach_costs,
    campaign_outcomes,
    decision_log_arms,
    select_campaign,
)
from models.campaign_power import (
    binary_minimum_detectable_lift,
    plan_control_group,
    power_at_effect,
    required_control_size,
)

TOLERANCE = 1e-9


def _flat(arm_counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """A flat campaign table with exactly `successes` of `n` converting in each arm."""
    frames = []
    for arm, (successes, n) in arm_counts.items():
        frames.append(pd.DataFrame({"offer_id": arm, "conversion": [1] * successes + [0] * (n - successes)}))
    return pd.concat(frames, ignore_index=True)


# --- exact fixtures ------------------------------------------------------------------------------


def test_binary_comparison_matches_hand_arithmetic():
    # 30/100 vs 20/100: pooled rate 0.25, z = 0.1 / sqrt(0.25 * 0.75 * (1/100 + 1/100)).
    item = compare_binary(np.r_[np.ones(30), np.zeros(70)], np.r_[np.ones(20), np.zeros(80)])
    assert item.value_arm == 0.3 and item.value_control == 0.2
    assert item.absolute_lift == pytest.approx(0.1, abs=1e-15)
    assert item.relative_lift == pytest.approx(0.5, abs=1e-15)
    assert item.statistic == pytest.approx(0.1 / math.sqrt(0.25 * 0.75 * 0.02), abs=1e-12)
    assert item.p_value == pytest.approx(2 * stats.norm.sf(0.1 / math.sqrt(0.00375)), abs=1e-12)
    # Newcombe's interval from the two Wilson score intervals (Newcombe 1998, method 10).
    z = stats.norm.ppf(0.975)

    def wilson(p, n):
        center, half = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        return (center - half) / (1 + z**2 / n), (center + half) / (1 + z**2 / n)

    (low1, high1), (low0, high0) = wilson(0.3, 100), wilson(0.2, 100)
    assert item.absolute_ci_low == pytest.approx(0.1 - math.hypot(0.3 - low1, high0 - 0.2), abs=1e-12)
    assert item.absolute_ci_high == pytest.approx(0.1 + math.hypot(high1 - 0.3, 0.2 - low0), abs=1e-12)
    assert item.absolute_ci_low < 0 < item.absolute_ci_high and item.p_value > 0.05


def test_outcomes_are_point_in_time():
    assigned = pd.Timestamp("2025-01-10 10:00")
    exposures = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            "campaign_id": "cmp",
            "offer_id": ["discount_10", "control", "discount_10"],
            "assigned_at": [assigned, assigned, assigned + pd.Timedelta(days=1)],
            "channel": "email",
        }
    )
    transactions = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "A", "A", "B", "D"],
            "ts": [
                assigned - pd.Timedelta(seconds=1),  # before the exposure: never counts
                assigned,  # at the exposure: counts
                assigned + pd.Timedelta(days=3),  # inside
                assigned + pd.Timedelta(days=14),  # window end is exclusive
                assigned + pd.Timedelta(days=30),  # after
                assigned + pd.Timedelta(days=13, hours=23),  # inside
                assigned + pd.Timedelta(days=1),  # not exposed
            ],
            "amount": [100.0, 10.0, 5.5, 1000.0, 1000.0, 7.0, 50.0],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["C", "C"],
            "ts": [assigned, assigned + pd.Timedelta(days=2)],  # C's first event is before its exposure
            "event_type": ["visit", "unsubscribe"],
        }
    )
    out = campaign_outcomes(
        exposures, transactions, events=events, data_end=pd.Timestamp("2025-01-24 10:00")
    ).set_index("customer_id")
    assert out["orders"].to_dict() == {"A": 2, "B": 1, "C": 0}
    assert out["conversion"].to_dict() == {"A": 1, "B": 1, "C": 0}
    assert out["revenue"].to_dict() == {"A": 15.5, "B": 7.0, "C": 0.0}
    assert out["visit"].to_dict() == {"A": 0, "B": 0, "C": 0}
    assert out["unsubscribe"].to_dict() == {"A": 0, "B": 0, "C": 1}
    assert out["window_complete"].to_dict() == {"A": True, "B": True, "C": False}


def test_costs_come_from_the_catalog_per_channel_and_redemption():
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    table = pd.DataFrame(
        {
            "offer_id": ["discount_10", "discount_10", "free_shipping", "free_shipping", "control", "mystery"],
            "channel": ["email", "sms", "push", "email", None, "email"],
            "conversion": [1, 0, 1, 0, 1, 1],
        }
    )
    costed, margins = attach_costs(table, catalog=catalog)
    fixed = catalog.offer("free_shipping").fixed_cost
    assert costed["send_cost"].tolist()[:5] == [0.01, 0.05, 0.002, 0.01, 0.0]
    assert costed["redemption_cost"].tolist()[:5] == [0.0, 0.0, fixed, 0.0, 0.0]
    assert np.isnan(costed["send_cost"].iloc[5])  # unknown offer: no cost, not zero
    assert margins == {"discount_10": 0.4, "free_shipping": 0.4}
    flat, _ = attach_costs(table, catalog=None, cost_per_send=0.1)
    assert flat["send_cost"].tolist() == [0.1, 0.1, 0.1, 0.1, 0.0, 0.1]
    # free_shipping has no SMS cost in the catalog: unknown, not free.
    sms, _ = attach_costs(table.assign(channel=["email", "sms", "sms", "email", None, "email"]), catalog=catalog)
    assert np.isnan(sms["send_cost"].iloc[2]) and sms["send_cost"].iloc[3] == 0.01


def test_decision_log_holdout_is_the_control():
    exposures = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "campaign_id": "nbo-2025-01-01",
            "offer_id": ["control", "control", "discount_10", "discount_10"],
            "assigned_at": pd.Timestamp("2025-01-01"),
            "holdout": [1, 0, 0, 0],
        }
    )
    assert decision_log_arms(exposures)["offer_id"].tolist() == ["control", "no_message", "discount_10", "discount_10"]


# --- independent computation on simulated campaigns -------------------------------------------


@pytest.fixture(scope="module")
def world():
    return simulate_world(2500, months=6, seed=3)


def _independent_outcomes(exposures: pd.DataFrame, transactions: pd.DataFrame, days: float) -> pd.DataFrame:
    """Conversion and revenue per exposure by a plain loop over each customer's orders."""
    by_customer = {key: group for key, group in transactions.groupby("customer_id")}
    conversion, revenue = [], []
    for customer, assigned in zip(exposures["customer_id"], exposures["assigned_at"], strict=True):
        orders = by_customer.get(customer)
        total, count = 0.0, 0
        if orders is not None:
            end = assigned + pd.Timedelta(days=days)
            for ts, amount in zip(orders["ts"], orders["amount"], strict=True):
                if assigned <= ts < end:
                    total += amount
                    count += 1
        conversion.append(int(count > 0))
        revenue.append(total)
    return exposures.assign(conversion=conversion, revenue=revenue)


def test_simulated_campaigns_match_scipy_and_statsmodels(world):
    tables = world.tables
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    campaigns = sorted(tables["exposures"]["campaign_id"].unique())
    assert len(campaigns) >= 3
    checked = 0
    for campaign in campaigns:
        exposures = select_campaign(tables["exposures"], campaign)
        outcomes, margins = attach_costs(campaign_outcomes(exposures, tables["transactions"]), catalog=catalog)
        analysis = analyze_campaign(outcomes, margins=margins)
        expected = _independent_outcomes(exposures, tables["transactions"], 14.0)
        control = expected.loc[expected["offer_id"] == "control"]
        results = {(item.arm, item.outcome): item for item in analysis.comparisons}
        economics = {item.arm: item for item in analysis.economics}
        for arm in sorted(set(expected["offer_id"]) - {"control"}):
            rows = expected.loc[expected["offer_id"] == arm]
            c1, n1, c0, n0 = rows["conversion"].sum(), len(rows), control["conversion"].sum(), len(control)
            z, p = proportions_ztest([c1, c0], [n1, n0])
            low, high = confint_proportions_2indep(c1, n1, c0, n0, compare="diff", method="newcomb")
            ratio_low, ratio_high = confint_proportions_2indep(c1, n1, c0, n0, compare="ratio", method="log")
            got = results[(arm, "conversion")]
            assert (got.n_arm, got.n_control) == (n1, n0)
            assert got.absolute_lift == pytest.approx(c1 / n1 - c0 / n0, abs=TOLERANCE)
            for value, reference in [(got.statistic, z), (got.p_value, p), (got.absolute_ci_low, low),
                                     (got.absolute_ci_high, high), (got.relative_ci_low, ratio_low - 1),
                                     (got.relative_ci_high, ratio_high - 1)]:  # fmt: skip
                assert value == pytest.approx(reference, abs=TOLERANCE)
            welch = stats.ttest_ind(rows["revenue"], control["revenue"], equal_var=False)
            interval = welch.confidence_interval(0.95)
            got = results[(arm, "revenue")]
            difference = rows["revenue"].mean() - control["revenue"].mean()
            assert got.absolute_lift == pytest.approx(difference, abs=TOLERANCE)
            assert got.statistic == pytest.approx(welch.statistic, abs=TOLERANCE)
            assert got.p_value == pytest.approx(welch.pvalue, abs=TOLERANCE)
            assert got.absolute_ci_low == pytest.approx(interval.low, abs=TOLERANCE)
            assert got.absolute_ci_high == pytest.approx(interval.high, abs=TOLERANCE)
            # Net incremental revenue: the offer's send cost on each row's channel plus its
            # per-redemption cost for every converting customer.
            offer = catalog.offer(arm)
            money = economics[arm]
            assert money.incremental_revenue == pytest.approx(difference * n1, abs=1e-6)
            if not set(rows["channel"]) <= set(offer.cost_per_send):
                # The simulator sends on channels the default catalog does not price: no net figure.
                assert money.net_incremental_revenue is None
                assert any(f"'{arm}'" in note and "no cost known" in note for note in analysis.warnings)
                checked += 1
                continue
            cost = sum(offer.cost_per_send[channel] for channel in rows["channel"])
            cost += (offer.fixed_cost or 0.0) * rows["conversion"].sum()
            assert money.net_incremental_revenue == pytest.approx(difference * n1 - cost, abs=1e-6)
            assert money.net_ci_low == pytest.approx(interval.low * n1 - cost, abs=1e-6)
            assert money.net_incremental_margin == pytest.approx(offer.margin * difference * n1 - cost, abs=1e-6)
            checked += 1
    assert checked == 3 * len(campaigns)


def test_stratified_campaign_is_flagged(world):
    exposures = world.tables["exposures"]
    stratified = [c for c, group in exposures.groupby("campaign_id") if group["propensity"].nunique() > 1]
    assert stratified, "the simulator runs one stratified campaign"
    outcomes = campaign_outcomes(select_campaign(exposures, stratified[0]), world.tables["transactions"])
    assert any("assignment probabilities differ" in note for note in analyze_campaign(outcomes).warnings)


# --- power -----------------------------------------------------------------------------------


def test_power_warning_on_a_tiny_control_but_not_a_big_one():
    # The same true rates, 0.30 vs 0.20 (Cohen's h 0.23): 5,000 treated against 40 or 5,000 controls.
    only_conversion = {"outcomes": ["conversion"], "revenue_col": None}
    tiny = analyze_campaign(_flat({"offer": (1500, 5000), "control": (8, 40)}), **only_conversion)
    big = analyze_campaign(_flat({"offer": (1500, 5000), "control": (1000, 5000)}), **only_conversion)
    (small_item,), (big_item,) = tiny.comparisons, big.comparisons
    assert small_item.underpowered and not big_item.underpowered
    assert any("too small to detect" in note for note in tiny.warnings)
    assert not any("too small" in note for note in big.warnings)
    # The observed lift lies below the tiny control's MDE and above the big one's.
    assert small_item.minimum_detectable_lift > 0.1 > big_item.minimum_detectable_lift
    # The control size it suggests does reach 80% power for the observed effect.
    needed = small_item.required_control
    effect = proportion_effectsize(0.3, 0.2)
    assert needed is not None and 40 < needed < 5000
    assert NormalIndPower().power(effect, nobs1=5000, alpha=0.05, ratio=needed / 5000) >= 0.8
    assert NormalIndPower().power(effect, nobs1=5000, alpha=0.05, ratio=(needed - 1) / 5000) < 0.8


def test_minimum_detectable_lift_is_where_power_reaches_the_target():
    mde = binary_minimum_detectable_lift(0.1, 2000, 500, alpha=0.05, power=0.8)
    effect = proportion_effectsize(0.1 + mde, 0.1)
    assert power_at_effect(effect, 2000, 500) == pytest.approx(0.8, abs=1e-5)  # solve_power's tolerance
    assert required_control_size(0.01, 100) is None  # no control makes 100 treated enough


def test_plan_matches_statsmodels_and_the_textbook_size():
    plan = plan_control_group(0.10, 0.02, treated_share=0.5)
    # Cohen's h for 10% -> 12% is 0.0640; n = (z_0.975 + z_0.8)^2 * 2 / h^2 = 3,834.4 per group,
    # within 0.2% of the unpooled textbook (z_0.975 + z_0.8)^2 (0.1 * 0.9 + 0.12 * 0.88) / 0.02^2.
    assert (plan.control_size, plan.treated_size_per_arm) == (3835, 3835)
    textbook = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 * (0.09 + 0.1056) / 0.02**2
    assert plan.control_size == pytest.approx(textbook, rel=2e-3)
    plan = plan_control_group(0.05, 0.1, relative=True, treated_share=0.9, arms=3)
    effect = proportion_effectsize(0.055, 0.05)
    ratio = 0.1 / 0.3
    n_arm = NormalIndPower().solve_power(effect_size=abs(effect), alpha=0.05, power=0.8, ratio=ratio)
    assert plan.treated_size_per_arm == math.ceil(n_arm)
    assert plan.control_size == math.ceil(n_arm * ratio)
    assert plan.treated_size == 3 * plan.treated_size_per_arm
    assert NormalIndPower().power(abs(effect), nobs1=plan.treated_size_per_arm, alpha=0.05,
                                  ratio=plan.control_size / plan.treated_size_per_arm) >= 0.8  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"baseline_rate": 0.0, "min_lift": 0.01}, "baseline rate must be strictly between 0 and 1"),
        ({"baseline_rate": 0.95, "min_lift": 0.1}, "target rate 1.05 outside"),
        ({"baseline_rate": 0.1, "min_lift": 0.0}, "non-zero"),
        ({"baseline_rate": 0.1, "min_lift": 0.01, "treated_share": 1.0}, "treated share"),
    ],
)
def test_plan_rejects_bad_input(arguments, message):
    with pytest.raises(ValueError, match=message):
        plan_control_group(**arguments)


# --- bad input -------------------------------------------------------------------------------


def test_unknown_campaign_lists_the_known_ones(world):
    with pytest.raises(ValueError, match=r"unknown campaign id 'nope'; known campaigns: cmp01_\d+, cmp02"):
        select_campaign(world.tables["exposures"], "nope")
    with pytest.raises(ValueError, match="pick one with --campaign-id"):
        select_campaign(world.tables["exposures"], None)


def test_no_control_arm_names_the_arms_present():
    with pytest.raises(ValueError, match=r"no control arm 'control'.*\['a', 'b'\]"):
        analyze_campaign(_flat({"a": (1, 5), "b": (2, 5)}), outcomes=["conversion"], revenue_col=None)


def test_empty_arm_is_named():
    table = _flat({"offer": (3, 10), "control": (2, 10)})
    table["offer_id"] = pd.Categorical(table["offer_id"], categories=["control", "offer", "forgotten"])
    with pytest.raises(ValueError, match=r"arm\(s\) \['forgotten'\].*no customers"):
        analyze_campaign(table, outcomes=["conversion"], revenue_col=None)


def test_other_bad_input():
    table = _flat({"offer": (3, 10), "control": (2, 10)})
    with pytest.raises(ValueError, match=r"outcome column\(s\) \['spend'\] not in the table"):
        analyze_campaign(table, outcomes=["spend"], revenue_col=None)
    with pytest.raises(ValueError, match="only the control arm"):
        analyze_campaign(table.loc[table["offer_id"] == "control"], outcomes=["conversion"], revenue_col=None)
    single = pd.DataFrame({"offer_id": ["offer", "control", "control"], "spend": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="at least 2 customers per group"):
        analyze_campaign(single, outcomes=["spend"], revenue_col=None)
    repeated = pd.DataFrame({"customer_id": ["A", "A"], "campaign_id": "c", "offer_id": ["control", "x"],
                             "assigned_at": pd.Timestamp("2025-01-01")})  # fmt: skip
    with pytest.raises(ValueError, match="pairs repeat"):
        orders = pd.DataFrame({"customer_id": ["A"], "ts": [pd.Timestamp("2025-01-02")], "amount": [1.0]})
        campaign_outcomes(repeated, orders)


def test_relative_revenue_interval_covers_the_true_ratio():
    """The delta-method interval for mean_arm / mean_control - 1 has about 95% coverage."""
    rng = np.random.default_rng(11)
    covered = 0
    repeats = 300
    for _ in range(repeats):
        # Zero-inflated spend like revenue per customer: 30% buy, exponential order values.
        arm = rng.binomial(1, 0.3, 500) * rng.exponential(40.0, 500)
        control = rng.binomial(1, 0.3, 500) * rng.exponential(32.0, 500)
        item = compare_continuous(arm, control)
        covered += item.relative_ci_low <= 0.25 <= item.relative_ci_high  # true ratio 40 / 32
    assert 0.92 <= covered / repeats <= 0.98
