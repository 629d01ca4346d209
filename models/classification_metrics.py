"""Metrics for probability forecasts of a binary outcome (churn): ranking, calibration, lift.

Plain functions `f(y_true, y_prob)` with one shared validation preamble. Ranking and proper
scoring rules come from scikit-learn; expected calibration error and top-decile lift, which
scikit-learn does not have, are computed here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = [
    "binary_classification_report",
    "expected_calibration_error",
    "top_fraction_lift",
]


def _check_binary(y_true: ArrayLike, y_prob: ArrayLike, *, need_both_classes: bool = True) -> tuple:
    """Validate labels (0/1) and probabilities ([0, 1], finite, same length); return numpy arrays."""
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=float)
    if y_true.ndim != 1 or y_prob.ndim != 1:
        raise ValueError(f"y_true and y_prob must be 1-d, got shapes {y_true.shape} and {y_prob.shape}")
    if len(y_true) != len(y_prob):
        raise ValueError(f"y_true has {len(y_true)} rows but y_prob has {len(y_prob)}")
    if len(y_true) == 0:
        raise ValueError("y_true is empty: there is nothing to score")
    labels = set(np.unique(y_true).tolist())
    if not labels <= {0, 1}:
        raise ValueError(f"y_true must hold only 0 and 1, found {sorted(labels)[:5]}")
    y_true = y_true.astype(int)
    if need_both_classes and len(np.unique(y_true)) < 2:
        raise ValueError(f"y_true holds only the class {int(y_true[0])}; the metric needs both 0 and 1")
    bad = ~np.isfinite(y_prob) | (y_prob < 0) | (y_prob > 1)
    if bad.any():
        raise ValueError(
            f"y_prob must be probabilities in [0, 1]; {int(bad.sum())} values are not, e.g. {y_prob[bad][:3].tolist()}"
        )
    return y_true, y_prob


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10) -> float:
    """Mean |observed rate - mean forecast| over equal-width probability bins, weighted by bin size.

    0 is perfect calibration. Bins are [0, 0.1), ..., [0.9, 1.0] for `n_bins=10`.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    y_true, y_prob = _check_binary(y_true, y_prob, need_both_classes=False)
    bins = np.minimum((y_prob * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    forecast_sum = np.bincount(bins, weights=y_prob, minlength=n_bins)
    outcome_sum = np.bincount(bins, weights=y_true, minlength=n_bins)
    filled = counts > 0
    gaps = np.abs(outcome_sum[filled] - forecast_sum[filled]) / counts[filled]
    return float(np.sum(gaps * counts[filled]) / len(y_true))


def top_fraction_lift(y_true: ArrayLike, y_score: ArrayLike, *, fraction: float = 0.1) -> float:
    """Positive rate among the `fraction` highest scores divided by the overall positive rate.

    Ties at the cut are broken by order of appearance after a stable sort; 1.0 means no better
    than random, 1 / base_rate is the ceiling.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y_true, y_score = _check_binary(y_true, y_score)
    n_top = max(1, int(np.ceil(fraction * len(y_true))))
    order = np.argsort(-y_score, kind="stable")
    return float(y_true[order[:n_top]].mean() / y_true.mean())


def binary_classification_report(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = 10) -> dict[str, float]:
    """Every churn metric at once: ROC-AUC, PR-AUC, Brier, log loss, ECE, top-decile lift, counts."""
    y_true, y_prob = _check_binary(y_true, y_prob)
    return {
        "roc_auc": float(roc_auc_score(y_true, y_prob)),
        "pr_auc": float(average_precision_score(y_true, y_prob)),
        "brier": float(brier_score_loss(y_true, y_prob)),
        "log_loss": float(log_loss(y_true, np.clip(y_prob, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "ece": expected_calibration_error(y_true, y_prob, n_bins=n_bins),
        "top_decile_lift": top_fraction_lift(y_true, y_prob, fraction=0.1),
        "positive_rate": float(y_true.mean()),
        "mean_prediction": float(y_prob.mean()),
        "n": float(len(y_true)),
    }
