"""benchmarks/study_uplift_calibration.py: the best linear predictor recovers a known average effect
and a known shrinkage of the predicted effects on randomised rows."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import benchmark_module


@pytest.fixture(scope="module")
def study():
    return benchmark_module("study_uplift_calibration")


def _experiment(seed: int, n: int = 200_000):
    rng = np.random.default_rng(seed)
    true_effect = rng.uniform(0.0, 0.08, n)  # average 0.04
    predicted = 0.01 + 0.4 * (true_effect - 0.04)  # shrunk 2.5x and biased down, as a regularised S-learner
    treated = rng.random(n) < 0.3
    outcome = (rng.random(n) < 0.10 + treated * true_effect).astype(float)
    return predicted, outcome, treated


def test_recovers_the_average_effect_and_the_shrinkage(study):
    predicted, outcome, treated = _experiment(0)
    calibration = study.best_linear_predictor(predicted, outcome, treated)
    assert abs(calibration.average - 0.04) < 3 * calibration.average_se
    assert abs(calibration.slope - 2.5) < 3 * calibration.slope_se and calibration.slope_se < 0.5
    restored = calibration.apply(predicted)  # close to the true effects
    assert np.corrcoef(restored, 0.04 + 2.5 * (predicted - 0.01))[0, 1] > 0.999
    assert abs(restored.mean() - 0.04) < 3 * calibration.average_se


def test_constant_predictions_get_the_average_only(study):
    _, outcome, treated = _experiment(1, 50_000)
    calibration = study.best_linear_predictor(np.zeros(len(outcome)), outcome, treated)
    assert calibration.slope is None and abs(calibration.average - 0.04) < 3 * calibration.average_se
    assert np.all(calibration.apply(np.zeros(3)) == calibration.average)


def test_needs_both_groups(study):
    with pytest.raises(ValueError, match="both the arm and control"):
        study.best_linear_predictor(np.zeros(4), np.ones(4), np.ones(4, dtype=bool))
