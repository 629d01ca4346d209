"""Qini scores under many case-weight vectors at once (bootstrap resamples), vectorised.

Sorting dominates the cost of a Qini score; under resampling the order of the rows never
changes, only their weights. So the rows are sorted once and every resample is a row of a weight
matrix: cumulative sums along that row give its curve. With unit weights the result equals
`models.uplift_metrics.qini_auc_score` (and `qini_gain`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.uplift_metrics import check_uplift_inputs

__all__ = ["bootstrap_weights", "qini_scores_weighted"]


def bootstrap_weights(
    treatment: ArrayLike, n_resamples: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Bootstrap counts (n_resamples, n_rows), resampling treated and control rows separately."""
    treated = np.asarray(treatment).astype(bool)
    weights = np.zeros((n_resamples, len(treated)))
    for group in (np.flatnonzero(~treated), np.flatnonzero(treated)):
        draws = rng.integers(0, len(group), size=(n_resamples, len(group)))
        for index in range(n_resamples):
            weights[index] += np.bincount(group[draws[index]], minlength=len(treated))
    return weights


def _weighted_area(
    y: NDArray, score: NDArray, treated: NDArray, weights: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per weight row: trapezoidal area under the Qini curve, the last x and the last value."""
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, treated, weights = y[order], score[order], treated[order], weights[:, order]
    thresholds = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    n_all = np.cumsum(weights, axis=1)[:, thresholds]
    n_treated = np.cumsum(weights * treated, axis=1)[:, thresholds]
    y_treated = np.cumsum(weights * (y * treated), axis=1)[:, thresholds]
    y_control = np.cumsum(weights * (y * (1 - treated)), axis=1)[:, thresholds]
    n_control = n_all - n_treated
    ratio = np.divide(n_treated, n_control, out=np.zeros_like(n_treated), where=n_control != 0)
    values = y_treated - y_control * ratio
    zeros = np.zeros((len(weights), 1))
    x = np.hstack([zeros, n_all])
    curve = np.hstack([zeros, values])
    return np.trapezoid(curve, x, axis=1), x[:, -1], curve[:, -1]


def qini_scores_weighted(
    y_true: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    weights: ArrayLike,
    *,
    normalise: bool = True,
) -> NDArray[np.float64]:
    """Qini coefficient (binary outcome, `normalise=True`) or Qini gain for every weight row.

    The coefficient uses the perfect curve with negative effects, as scikit-uplift's default.
    """
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=normalise)
    weight_matrix = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weight_matrix.shape[1] != len(y) or (weight_matrix < 0).any():
        raise ValueError(
            f"weights must be non-negative with one column per row ({len(y)}), got shape "
            f"{weight_matrix.shape}"
        )
    treated = t.astype(np.float64)
    area, last_x, last_value = _weighted_area(y, u, treated, weight_matrix)
    baseline = 0.5 * last_x * last_value
    if not normalise:
        return (area - baseline) / last_x**2
    perfect_area, _, _ = _weighted_area(y, y * treated - y * (1 - treated), treated, weight_matrix)
    return (area - baseline) / (perfect_area - baseline)
