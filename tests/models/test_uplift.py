"""Uplift learners on synthetic campaigns with a known effect: shapes and labels, recovery of the
average and per-customer effect, known propensities, categorical features, clear input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from models.uplift import LEARNERS, AveragingLearner, SLearner, make_learner
from models.uplift_select import AutoUpliftLearner

FAST = {"n_estimators": 60, "learning_rate": 0.1}


def make_campaign(n_rows: int = 6000, seed: int = 0, outcome: str = "binary"):
    """Three labels; e-mail helps only when x1 > 0.5, SMS helps a little everywhere."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.random(n_rows),
            "x2": rng.normal(size=n_rows),
            "segment": rng.choice(["gold", "silver", "bronze"], n_rows),
        }
    )
    arm = rng.choice(["control", "email", "sms"], n_rows)
    base = -1.2 + 0.6 * frame["x2"].to_numpy() + 0.4 * (frame["segment"] == "gold").to_numpy()
    lift = {"control": 0.0, "email": 1.2 * (frame["x1"].to_numpy() > 0.5), "sms": 0.4}
    if outcome == "binary":
        truth = {label: expit(base + effect) - expit(base) for label, effect in lift.items()}
        logit = base + np.select([arm == "email", arm == "sms"], [lift["email"], np.full(n_rows, lift["sms"])], 0.0)
        y = (rng.random(n_rows) < expit(logit)).astype(float)
    else:
        truth = {label: 10 * np.broadcast_to(effect, (n_rows,)).astype(float) for label, effect in lift.items()}
        mean = 20 + 5 * base + np.select([arm == "email", arm == "sms"], [truth["email"], truth["sms"]], 0.0)
        y = mean + rng.normal(scale=5, size=n_rows)
    return frame, y, arm, np.column_stack([truth["email"], truth["sms"]])


@pytest.fixture(scope="module")
def binary_campaign():
    return make_campaign()


@pytest.fixture(scope="module")
def fitted_binary(binary_campaign):
    frame, y, arm, _ = binary_campaign
    return {name: make_learner(name, params=FAST).fit(frame, y, treatment=arm) for name in LEARNERS}


@pytest.mark.parametrize("name", LEARNERS)
def test_one_uplift_column_per_arm_with_labels(binary_campaign, fitted_binary, name):
    frame, _, _, _ = binary_campaign
    learner = fitted_binary[name]
    assert learner.arms_ == ["email", "sms"]
    assert learner.predict(frame.head(7)).shape == (7, 2)
    assert list(learner.predict_frame(frame.head(3)).columns) == ["email", "sms"]


@pytest.mark.parametrize("name", LEARNERS)
def test_average_effect_per_arm_is_recovered(binary_campaign, fitted_binary, name):
    frame, _, _, truth = binary_campaign
    estimate = fitted_binary[name].predict(frame).mean(axis=0)
    # the randomised difference in means has a standard error of about 0.015 here
    np.testing.assert_allclose(estimate, truth.mean(axis=0), atol=0.035)


@pytest.mark.parametrize("name", ["s", "s-additive", "t", "x", "dr"])
def test_heterogeneous_effect_is_ranked(binary_campaign, fitted_binary, name):
    frame, _, _, truth = binary_campaign
    email = fitted_binary[name].predict(frame)[:, 0]
    assert np.corrcoef(email, truth[:, 0])[0, 1] > 0.6


def test_shift_model_ranks_by_baseline_rate(binary_campaign, fitted_binary):
    """A constant log-odds shift: the effect grows with the baseline rate while rates are below 0.5."""
    frame, _, _, _ = binary_campaign
    learner = fitted_binary["s-shift"]
    outcomes = learner.predict_outcomes(frame)
    low = outcomes.max(axis=1) < 0.5
    uplift = learner.predict(frame)[low, 1]
    assert np.all(np.diff(uplift[np.argsort(outcomes[low, 0])]) >= -1e-9)


@pytest.mark.parametrize("name", ["s", "t", "x", "dr"])
def test_continuous_outcome(name):
    frame, y, arm, truth = make_campaign(outcome="continuous", seed=1)
    learner = make_learner(name, params=FAST).fit(frame, y, treatment=arm)
    assert learner.outcome_type_ == "continuous"
    np.testing.assert_allclose(learner.predict(frame).mean(axis=0), truth.mean(axis=0), atol=1.0)


def test_known_propensities_remove_confounding():
    """Assignment depends on x2 (which drives the outcome); the naive difference in means is
    biased, the doubly robust learner with the known propensities is not."""
    rng = np.random.default_rng(5)
    n_rows = 8000
    frame = pd.DataFrame({"x2": rng.normal(size=n_rows), "x3": rng.normal(size=n_rows)})
    propensity = expit(1.5 * frame["x2"].to_numpy())
    treated = rng.random(n_rows) < propensity
    arm = np.where(treated, "email", "control")
    y = 3 * frame["x2"].to_numpy() + 1.0 * treated + rng.normal(size=n_rows)
    naive = y[treated].mean() - y[~treated].mean()
    assigned = np.where(treated, propensity, 1 - propensity)
    learner = make_learner("dr", params=FAST).fit(frame, y, treatment=arm, propensity=assigned)
    assert abs(naive - 1.0) > 1.0
    assert abs(learner.predict(frame).mean() - 1.0) < 0.15
    as_matrix = pd.DataFrame({"control": 1 - propensity, "email": propensity})
    same = make_learner("dr", params=FAST).fit(frame, y, treatment=arm, propensity=as_matrix)
    np.testing.assert_allclose(same.predict(frame), learner.predict(frame))


def test_constant_propensity_mapping_is_used_as_given(binary_campaign):
    frame, y, arm, _ = binary_campaign
    shares = {"control": 1 / 3, "email": 1 / 3, "sms": 1 / 3}
    learner = make_learner("x", params=FAST).fit(frame, y, treatment=arm, propensity=shares)
    assert learner.propensity_model_ is None
    np.testing.assert_allclose(learner.constant_propensity_, [1 / 3] * 3)


def test_categorical_features_and_unseen_levels(binary_campaign, fitted_binary):
    frame, _, _, _ = binary_campaign
    learner = fitted_binary["t"]
    assert learner.encoder_.categories["segment"] == ["bronze", "gold", "silver"]
    unseen = frame.head(3).assign(segment=["platinum", "gold", None])
    assert np.isfinite(learner.predict(unseen)).all()
    with pytest.raises(ValueError, match=r"lacks the feature columns \['x2'\]"):
        learner.predict(frame.drop(columns="x2"))


def test_control_label_is_configurable(binary_campaign):
    frame, y, arm, _ = binary_campaign
    learner = make_learner("t", control="sms", params=FAST).fit(frame, y, treatment=arm)
    assert learner.arms_ == ["control", "email"]


def test_clear_errors_for_bad_input(binary_campaign):
    frame, y, arm, _ = binary_campaign
    learner = make_learner("s", params=FAST)
    with pytest.raises(ValueError, match="control label 'control' is not among"):
        learner.fit(frame, y, treatment=np.where(arm == "control", "none", arm))
    with pytest.raises(ValueError, match="only the control label"):
        learner.fit(frame, y, treatment=np.full(len(y), "control"))
    with pytest.raises(ValueError, match="different lengths"):
        learner.fit(frame, y[:-1], treatment=arm)
    with pytest.raises(ValueError, match="NaN or infinite"):
        learner.fit(frame, np.where(np.arange(len(y)) == 3, np.nan, y), treatment=arm)
    with pytest.raises(ValueError, match=r"propensity must be in \(0, 1\]"):
        learner.fit(frame, y, treatment=arm, propensity=np.zeros(len(y)))
    with pytest.raises(ValueError, match="propensity mapping lacks"):
        learner.fit(frame, y, treatment=arm, propensity={"control": 0.5, "email": 0.5})
    with pytest.raises(ValueError, match="outcome='binary'"):
        make_learner("t", outcome="binary").fit(frame, y * 2.5, treatment=arm)
    with pytest.raises(ValueError, match="treatment_interactions"):
        SLearner(treatment_interactions="some").fit(frame, y, treatment=arm)
    with pytest.raises(ValueError, match="unknown learner 'z'"):
        make_learner("z")


def test_scikit_learn_contract(binary_campaign):
    frame, _, _, _ = binary_campaign
    learner = make_learner("dr", params=FAST, n_folds=4)
    assert clone(learner).get_params()["n_folds"] == 4
    with pytest.raises(NotFittedError):
        learner.predict(frame)


def test_averaging_learner_is_the_mean_of_its_members(binary_campaign):
    frame, y, arm, _ = binary_campaign
    members = [make_learner("s", params=FAST), make_learner("t", params=FAST)]
    average = AveragingLearner(members).fit(frame, y, treatment=arm)
    expected = np.mean([clone(m).fit(frame, y, treatment=arm).predict(frame) for m in members], axis=0)
    np.testing.assert_allclose(average.predict(frame), expected)


def test_auto_learner_chooses_per_arm_on_training_data(binary_campaign):
    frame, y, arm, truth = binary_campaign
    auto = AutoUpliftLearner(("s-shift", "t"), n_bootstrap=20).fit(frame, y, treatment=arm)
    assert set(auto.chosen_) == {"email", "sms"}
    assert set(auto.chosen_.values()) <= {"s-shift", "t"}
    assert auto.cv_scores_.shape == (2, 2)
    # e-mail's effect is confined to x1 > 0.5, which a constant shift cannot express
    assert auto.chosen_["email"] == "t"
    assert np.corrcoef(auto.predict(frame)[:, 0], truth[:, 0])[0, 1] > 0.6
    with pytest.raises(ValueError, match="unknown or no candidates"):
        AutoUpliftLearner(("s", "nope")).fit(frame, y, treatment=arm)
