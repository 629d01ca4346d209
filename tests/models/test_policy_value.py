"""Off-policy value (IPS and doubly robust) and the gated next-best-action policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.policy_value import doubly_robust_policy_value, dr_rewards, ips_policy_value
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
