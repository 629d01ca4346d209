"""Uplift metrics: agreement with scikit-uplift 0.5.1 to 1e-9, exact values on a literal example,
bootstrap intervals, weighted (resampled) Qini, and clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from models import uplift_metrics as metrics
from models.uplift_resampling import bootstrap_weights, qini_scores_weighted

sklift_metrics = pytest.importorskip("sklift.metrics")


def random_case(n_rows: int, seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    treatment = rng.integers(0, 2, n_rows)
    y = (rng.random(n_rows) < 0.15 + 0.1 * treatment).astype(int)
    uplift = rng.normal(size=n_rows) + 0.5 * treatment * y
    if ties:
        uplift = np.round(uplift, 1)
    return y, uplift, treatment


CASES = [(n, seed, ties) for n, seed in ((60, 0), (1000, 1), (20000, 2)) for ties in (False, True)]


@pytest.fixture(autouse=True)
def _quiet_sklift():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklift calls a deprecated sklearn helper
        yield


@pytest.mark.parametrize(("n_rows", "seed", "ties"), CASES)
def test_agrees_with_scikit_uplift(n_rows, seed, ties):
    y, uplift, treatment = random_case(n_rows, seed, ties)
    pairs = [
        (metrics.qini_auc_score(y, uplift, treatment), sklift_metrics.qini_auc_score(y, uplift, treatment)),
        (
            metrics.qini_auc_score(y, uplift, treatment, negative_effect=False),
            sklift_metrics.qini_auc_score(y, uplift, treatment, negative_effect=False),
        ),
        (metrics.uplift_auc_score(y, uplift, treatment), sklift_metrics.uplift_auc_score(y, uplift, treatment)),
    ]
    for k in (0.3, 0.5, 10):
        for strategy in ("overall", "by_group"):
            ours = metrics.uplift_at_k(y, uplift, treatment, k=k, strategy=strategy)
            theirs = sklift_metrics.uplift_at_k(y, uplift, treatment, strategy=strategy, k=k)
            pairs.append((ours, theirs))
    for ours, theirs in pairs:
        assert ours == pytest.approx(theirs, abs=1e-9, rel=0)
    for ours, theirs in (
        (metrics.qini_curve(y, uplift, treatment), sklift_metrics.qini_curve(y, uplift, treatment)),
        (metrics.uplift_curve(y, uplift, treatment), sklift_metrics.uplift_curve(y, uplift, treatment)),
        (metrics.perfect_qini_curve(y, treatment), sklift_metrics.perfect_qini_curve(y, treatment)),
        (metrics.perfect_uplift_curve(y, treatment), sklift_metrics.perfect_uplift_curve(y, treatment)),
    ):
        np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ours[1], theirs[1], rtol=0, atol=1e-9)


def test_literal_example():
    """Six customers ranked by score; treated 1,0,1,0,1,0; responders: the first treated and the
    last control. Qini at n: treated responders - control responders x treated/control."""
    y = np.array([1, 0, 0, 0, 0, 1])
    treatment = np.array([1, 0, 1, 0, 1, 0])
    uplift = np.array([6.0, 5, 4, 3, 2, 1])
    x, values = metrics.qini_curve(y, uplift, treatment)
    np.testing.assert_array_equal(x, [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(values, [0, 1, 1, 1, 1, 1, 0])
    # uplift@50% overall: top 3 hold treated [1, 0] and control [0] -> 0.5 - 0
    assert metrics.uplift_at_k(y, uplift, treatment, k=0.5) == pytest.approx(0.5)
    # area above random 5.0 (the random line ends at 0); perfect curve 0,1,1,1,1,1,0 -> same area
    assert metrics.qini_auc_score(y, uplift, treatment) == pytest.approx(1.0)
    assert metrics.qini_auc_score(y, uplift[::-1], treatment) < 0


def test_continuous_outcomes_have_curves_and_gain_but_no_normalised_score():
    rng = np.random.default_rng(4)
    treatment = rng.integers(0, 2, 500)
    revenue = rng.gamma(2.0, 10.0, 500) * (rng.random(500) < 0.2 + 0.1 * treatment)
    good = metrics.qini_gain(revenue, treatment * revenue, treatment)
    random = metrics.qini_gain(revenue, rng.normal(size=500), treatment)
    assert good > abs(random)
    assert np.isfinite(metrics.uplift_at_k(revenue, treatment * revenue, treatment, k=0.3))
    with pytest.raises(ValueError, match="y_true must be binary"):
        metrics.qini_auc_score(revenue, treatment * revenue, treatment)


def test_bootstrap_intervals_bracket_the_estimate_and_repeat():
    y, uplift, treatment = random_case(2000, 7, ties=False)
    first = metrics.qini_auc_score_interval(y, uplift, treatment, n_bootstrap=60, random_state=1)
    again = metrics.qini_auc_score_interval(y, uplift, treatment, n_bootstrap=60, random_state=1)
    assert first == again
    assert first.estimate == pytest.approx(metrics.qini_auc_score(y, uplift, treatment))
    assert first.low < first.estimate < first.high and first.std > 0
    for interval in (
        metrics.uplift_auc_score_interval(y, uplift, treatment, n_bootstrap=40),
        metrics.uplift_at_k_interval(y, uplift, treatment, k=0.3, strategy="by_group", n_bootstrap=40),
    ):
        assert interval.low <= interval.estimate <= interval.high
        assert set(interval.as_dict()) >= {"estimate", "low", "high", "std"}


def test_weighted_qini_equals_the_resampled_data():
    y, uplift, treatment = random_case(3000, 9, ties=True)
    weights = np.vstack([np.ones(3000), bootstrap_weights(treatment, 5, np.random.default_rng(0))])
    scores = qini_scores_weighted(y, uplift, treatment, weights)
    assert scores[0] == pytest.approx(metrics.qini_auc_score(y, uplift, treatment), abs=1e-12)
    for row in range(1, 6):
        rows = np.repeat(np.arange(3000), weights[row].astype(int))
        assert scores[row] == pytest.approx(metrics.qini_auc_score(y[rows], uplift[rows], treatment[rows]), abs=1e-12)
        # resampling keeps the group sizes
        assert weights[row][treatment == 1].sum() == (treatment == 1).sum()
    gains = qini_scores_weighted(y, uplift, treatment, weights[:1], normalise=False)
    assert gains[0] == pytest.approx(metrics.qini_gain(y, uplift, treatment), abs=1e-12)


def test_clear_errors():
    y, uplift, treatment = random_case(100, 3, ties=False)
    with pytest.raises(ValueError, match="different lengths"):
        metrics.qini_auc_score(y, uplift[:-1], treatment)
    with pytest.raises(ValueError, match="treatment must be 0"):
        metrics.qini_auc_score(y, uplift, treatment * 2)
    with pytest.raises(ValueError, match="both a treated and a control"):
        metrics.qini_auc_score(y, uplift, np.ones(100, dtype=int))
    with pytest.raises(ValueError, match="uplift has 1 NaN"):
        metrics.uplift_auc_score(y, np.where(np.arange(100) == 5, np.nan, uplift), treatment)
    with pytest.raises(ValueError, match=r"k=1\.5"):
        metrics.uplift_at_k(y, uplift, treatment, k=1.5)
    with pytest.raises(ValueError, match="strategy"):
        metrics.uplift_at_k(y, uplift, treatment, strategy="top")
    with pytest.raises(ValueError, match="hold 0 treated"):
        metrics.uplift_at_k(y, -treatment.astype(float), treatment, k=0.2)
