"""Churn metrics: exact values on literal fixtures, agreement with scikit-learn, input errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from models.classification_metrics import (
    binary_classification_report,
    expected_calibration_error,
    top_fraction_lift,
)


def test_ece_one_row_per_bin_is_mean_absolute_gap():
    y = [0, 1, 1, 0]
    p = [0.1, 0.4, 0.8, 0.9]
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx((0.1 + 0.6 + 0.2 + 0.9) / 4)


def test_ece_averages_within_bins_before_taking_the_gap():
    y = [0, 1, 1, 0]
    p = [0.1, 0.4, 0.8, 0.9]
    # bin [0, .5): forecast .25, observed .5; bin [.5, 1]: forecast .85, observed .5
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx((2 * 0.25 + 2 * 0.35) / 4)


def test_ece_puts_probability_one_in_the_last_bin_and_is_zero_when_calibrated():
    assert expected_calibration_error([1, 1], [1.0, 1.0]) == 0.0
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    y = rng.uniform(size=p.size) < p
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.15


def test_top_decile_lift_literal():
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert top_fraction_lift(y, score, fraction=0.1) == pytest.approx(1.0 / 0.2)
    assert top_fraction_lift(y, score, fraction=0.5) == pytest.approx((2 / 5) / 0.2)
    assert top_fraction_lift(y, score[::-1], fraction=0.1) == 0.0
    assert top_fraction_lift(y, score, fraction=1.0) == pytest.approx(1.0)


def test_report_agrees_with_scikit_learn():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    report = binary_classification_report(y, p)
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert report["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert report["brier"] == pytest.approx(brier_score_loss(y, p))
    assert report["log_loss"] == pytest.approx(log_loss(y, p))
    assert report["positive_rate"] == pytest.approx(y.mean())
    assert report["n"] == 500


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.5], "y_true has 2 rows but y_prob has 1"),
        ([0, 2], [0.5, 0.5], "only 0 and 1"),
        ([0, 1], [0.5, 1.5], "probabilities in \\[0, 1\\]; 1 values are not"),
        ([0, 1], [np.nan, 0.5], "1 values are not"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_name_the_problem(y, p, message):
    with pytest.raises(ValueError, match=message):
        binary_classification_report(y, p)


def test_ranking_metrics_need_both_classes():
    with pytest.raises(ValueError, match="only the class 1"):
        top_fraction_lift([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="fraction must be in"):
        top_fraction_lift([0, 1], [0.2, 0.5], fraction=0)
