"""Off-policy value (IPS and doubly robust) and the gated next-best-action policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.policy_value import (
    doubly_robust_policy_value,
    dr_rewards,
    ips_policy_value,
    weighted_count_interval,
)
from models.uplift_policy import GatedArmPolicy


def test_ips_literal_example():
    outcome = np.array([10.0, 0.0, 4.0, 6.0])
    treatment = np.array(["a", "b", "a", "none"])
    chosen = np.array(["a", "a", "b", "none"])
    # matches on rows 0 and 3: (10 / 0.5 + 6 / 0.25) / 4 = 11; cost 1 per "a" or "b" sent: 3 / 4
    value = ips_policy_value(
        outcome, treatment, chosen, {"a": 0.5, "b": 0.25, "none": 0.25}, action_cost={"a": 1.0, "b": 1.0}
    )
    assert value.value == pytest.approx(11 - 0.75)
    per_row = np.array([20 - 1, -1, -1, 24])
    assert value.std_error == pytest.approx(per_row.std(ddof=1) / 2)
    assert value.low < value.value < value.high
    same = ips_policy_value(outcome, treatment, chosen, [0.5, 0.25, 0.5, 0.25], action_cost={"a": 1.0, "b": 1.0})
    assert same.value == pytest.approx(value.value)


def _logged(n_rows=40000, seed=0):
    """Two actions, confounded logging: 'a' is logged more often for low x, where it pays less."""
    rng = np.random.default_rng(seed)
    x = rng.random(n_rows)
    propensity_a = 0.8 - 0.6 * x
    taken = np.where(rng.random(n_rows) < propensity_a, "a", "b")
    mean = {"a": 2.0 * x, "b": 0.5 + 1.5 * x}
    outcome = np.where(taken == "a", mean["a"], mean["b"]) + rng.normal(scale=1.0, size=n_rows)
    logged = np.where(taken == "a", propensity_a, 1 - propensity_a)
    return x, taken, outcome, logged, mean


def test_ips_and_dr_recover_a_policy_value_under_confounded_logging():
    x, taken, outcome, logged, mean = _logged()
    # the naive mean of the logged 'a' rows misjudges "always a" (true value 1.0) by about 0.2
    assert abs(outcome[taken == "a"].mean() - mean["a"].mean()) > 0.15
    policy = np.where(x > 0.5, "a", "b")
    truth = np.where(policy == "a", mean["a"], mean["b"]).mean()
    ips = ips_policy_value(outcome, taken, policy, logged)
    wrong_model = pd.DataFrame({"a": np.full(len(x), 1.0), "b": np.full(len(x), 1.0)})
    dr = doubly_robust_policy_value(outcome, taken, policy, logged, wrong_model)
    dr_good = doubly_robust_policy_value(outcome, taken, policy, logged, pd.DataFrame(mean))
    for estimate in (ips, dr, dr_good):
        assert estimate.low <= truth <= estimate.high
    assert dr_good.std_error < ips.std_error


def test_dr_rewards_net_of_cost():
    rewards = dr_rewards(
        [2.0, 0.0], ["a", "b"], [0.5, 0.5], pd.DataFrame({"a": [1.0, 1.0], "b": [0.0, 0.5]}), action_cost={"b": 0.1}
    )
    np.testing.assert_allclose(rewards["a"], [1 + (2 - 1) / 0.5, 1.0])
    np.testing.assert_allclose(rewards["b"], [0.0 - 0.1, 0.5 + (0 - 0.5) / 0.5 - 0.1])


def test_policy_value_errors():
    with pytest.raises(ValueError, match="different lengths"):
        ips_policy_value([1.0, 2.0], ["a"], ["a", "a"], 0.5)
    with pytest.raises(ValueError, match=r"propensity must be in \(0, 1\]"):
        ips_policy_value([1.0], ["a"], ["a"], 0.0)
    with pytest.raises(ValueError, match="lacks the logged actions"):
        ips_policy_value([1.0], ["a"], ["a"], {"b": 0.5})
    with pytest.raises(ValueError, match="lacks columns for the chosen actions"):
        doubly_robust_policy_value([1.0], ["a"], ["c"], 0.5, pd.DataFrame({"a": [0.0]}))


def test_weighted_count_interval_is_garwood_with_equal_weights():
    # equal weights w: the exact Poisson interval for the count, times w
    low, high = weighted_count_interval(np.full(5, 10.0), max_weight=10.0)
    assert low == pytest.approx(10 * stats.chi2.ppf(0.025, 10) / 2)
    assert high == pytest.approx(10 * stats.chi2.ppf(0.975, 12) / 2)
    none_low, none_high = weighted_count_interval([], max_weight=2.0)
    assert none_low == 0.0 and none_high == pytest.approx(2 * -np.log(0.025))
    with pytest.raises(ValueError, match="non-negative"):
        weighted_count_interval([-1.0], max_weight=1.0)


def _sparse_bandit_log(rng, n_rows, replications):
    """Epsilon-greedy logs (epsilon 0.4, 4 actions, greedy 'a') of binary outcomes with rates
    around 6%, for a target policy that mostly disagrees with the greedy action: its value rests
    on a handful of explored conversions of weight 10, as in a challenger's evaluation."""
    actions = np.array(["control", "a", "b", "c"])
    x = rng.random(n_rows)
    rate = np.column_stack([0.04 + 0.02 * x, 0.05 + 0.02 * x, 0.03 + 0.08 * x, 0.05 - 0.02 * x])
    probability = np.full(4, 0.1) + 0.6 * (actions == "a")
    target = np.where(x > 0.3, 2, 1)  # 'b' for 70% of the rows, else 'a'
    truth = rate[np.arange(n_rows), target].mean()
    taken = rng.choice(4, size=(replications, n_rows), p=probability)
    converted = rng.random((replications, n_rows)) < rate[np.arange(n_rows), taken]
    return actions, x, rate, probability, target, truth, taken, converted


def test_gamma_interval_covers_a_known_policy_value_at_its_nominal_rate():
    """Known truth, 600 replications of 900 logged rows: the gamma intervals of IPS and DR
    cover the target policy's value about 95% of the time; the normal ones fall short."""
    rng = np.random.default_rng(20261123)
    actions, _, rate, probability, target, truth, taken, converted = _sparse_bandit_log(rng, 900, 600)
    model = pd.DataFrame(0.8 * rate + 0.01, columns=actions)  # a biased outcome model
    chosen = actions[target]
    covered = {(estimator, interval): [] for estimator in ("ips", "dr") for interval in ("normal", "gamma")}
    for replication in range(len(taken)):
        logged, y = actions[taken[replication]], converted[replication].astype(float)
        propensity = probability[taken[replication]]
        for interval in ("normal", "gamma"):
            for estimator, value in (
                ("ips", ips_policy_value(y, logged, chosen, propensity, interval=interval)),
                ("dr", doubly_robust_policy_value(y, logged, chosen, propensity, model, interval=interval)),
            ):
                covered[estimator, interval].append(value.low <= truth <= value.high)
    coverage = {key: float(np.mean(hits)) for key, hits in covered.items()}
    for estimator in ("ips", "dr"):
        assert 0.93 <= coverage[estimator, "gamma"] <= 0.99, coverage  # at least nominal, not grossly more
        assert coverage[estimator, "normal"] < coverage[estimator, "gamma"], coverage


def test_gamma_interval_keeps_the_estimate_and_falls_back_for_negative_outcomes():
    outcome = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
    taken = np.array(["a", "b", "a", "a", "b"])
    chosen = np.array(["a", "a", "a", "b", "b"])
    normal = ips_policy_value(outcome, taken, chosen, 0.5, action_cost={"a": 0.1})
    gamma = ips_policy_value(outcome, taken, chosen, 0.5, action_cost={"a": 0.1}, interval="gamma")
    assert gamma.value == normal.value and gamma.interval == "gamma"
    assert gamma.low < gamma.value < gamma.high
    shifted = ips_policy_value(outcome - 1.0, taken, chosen, 0.5, interval="gamma")
    assert shifted.interval == "normal"
    with pytest.raises(ValueError, match="interval must be one of"):
        ips_policy_value(outcome, taken, chosen, 0.5, interval="wald")


def _spend_campaign(n_rows, seed, heterogeneous):
    """Spend = purchase x amount; 'mens' lifts purchases everywhere and is the best single arm,
    'womens' (when heterogeneous) lifts them far more for the 30% in segment 'w'."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"segment": rng.choice(["m", "w"], n_rows, p=[0.7, 0.3]), "age": rng.random(n_rows)})
    arm = rng.choice(["none", "mens", "womens"], n_rows)
    rate = 0.05 + 0.06 * (arm == "mens") + 0.02 * (arm == "womens")
    if heterogeneous:
        rate = rate + 0.10 * (arm == "womens") * (frame["segment"] == "w").to_numpy()
    bought = rng.random(n_rows) < rate
    spend = np.where(bought, rng.gamma(2.0, 50.0, n_rows), 0.0)
    return frame, spend, arm


def test_gated_policy_keeps_the_best_arm_when_differences_are_noise():
    frame, spend, arm = _spend_campaign(12000, 1, heterogeneous=False)
    policy = GatedArmPolicy(control="none", cost_per_send=0.1, learner="s-shift", n_folds=2).fit(
        frame, spend, treatment=arm, propensity={"none": 1 / 3, "mens": 1 / 3, "womens": 1 / 3}
    )
    assert policy.base_action_ == "mens"
    assert np.isinf(policy.margin_)
    assert set(policy.predict(frame)) == {"mens"}


def test_gated_policy_deviates_where_the_gain_is_real():
    frame, spend, arm = _spend_campaign(12000, 2, heterogeneous=True)
    policy = GatedArmPolicy(control="none", cost_per_send=0.1, learner="t", n_folds=2).fit(
        frame, spend, treatment=arm, propensity={"none": 1 / 3, "mens": 1 / 3, "womens": 1 / 3}
    )
    chosen = policy.predict(frame)
    women = frame["segment"].to_numpy() == "w"
    assert (chosen[women] == "womens").mean() > 0.75
    assert (chosen[~women] == "mens").mean() > 0.9

    def true_value(actions):  # expected spend (amount mean 100) minus sends
        rate = 0.05 + 0.06 * (actions == "mens") + (0.02 + 0.10 * women) * (actions == "womens")
        return float(np.mean(rate * 100 - 0.1 * (actions != "none")))

    assert true_value(chosen) > true_value(np.full(len(chosen), "mens")) + 1.0
    assert policy.selection_["gain"].max() > 2 * policy.selection_["std_error"].min()
    values = policy.predict_values(frame.head(3))
    assert list(values.columns) == ["none", "mens", "womens"]
    with pytest.raises(ValueError, match="cost_per_send"):
        GatedArmPolicy(control="none", cost_per_send=-1).fit(frame, spend, treatment=arm)
