"""Uplift metrics: Qini and uplift curves, their normalised areas, uplift@k, bootstrap intervals.

Plain functions `f(y_true, uplift, treatment, ...)` sharing one validation preamble. The
definitions follow scikit-uplift 0.5.1 exactly (same tie handling, same normalisation), so the
numbers agree with it, but the code is our own vectorised numpy. `treatment` is 1 for the
treated arm and 0 for control; `*_score` means higher is better.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "ConfidenceInterval",
    "bootstrap_interval",
    "check_uplift_inputs",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_auc_score_interval",
    "qini_curve",
    "qini_gain",
    "uplift_at_k",
    "uplift_at_k_interval",
    "uplift_auc_score",
    "uplift_auc_score_interval",
    "uplift_curve",
]


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a bootstrap percentile interval and the bootstrap standard deviation."""

    estimate: float
    low: float
    high: float
    std: float
    confidence: float
    n_bootstrap: int

    def as_dict(self) -> dict[str, float]:
        """Plain-dict form, for JSON output and MLflow metrics."""
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "std": self.std,
            "confidence": self.confidence,
            "n_bootstrap": self.n_bootstrap,
        }


def check_uplift_inputs(
    y_true: ArrayLike,
    uplift: ArrayLike | None,
    treatment: ArrayLike,
    *,
    binary_outcome: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """The shared preamble: 1-d, equal lengths, finite, binary treatment with both groups present.

    With `binary_outcome` the outcome must be 0/1 as well (the normalised Qini and uplift areas
    are defined against a perfect curve that only exists for binary outcomes).
    """
    y = np.asarray(y_true, dtype=np.float64)
    t_raw = np.asarray(treatment)
    u = np.zeros(len(y)) if uplift is None else np.asarray(uplift, dtype=np.float64)
    for name, array in (("y_true", y), ("uplift", u), ("treatment", t_raw)):
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    lengths = {"y_true": len(y), "uplift": len(u), "treatment": len(t_raw)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs have different lengths: {lengths}")
    if len(y) == 0:
        raise ValueError("inputs are empty")
    for name, array in (("y_true", y), ("uplift", u)):
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(
                f"{name} has {int(bad.sum())} NaN or infinite values (first at rows "
                f"{np.flatnonzero(bad)[:5].tolist()}); drop or impute them first"
            )
    t_values = np.unique(t_raw)
    if not np.isin(t_values, [0, 1]).all() or t_values.dtype.kind not in "biuf":
        raise ValueError(
            f"treatment must be 0 (control) or 1 (treated), got values {t_values[:10].tolist()}"
        )
    if len(t_values) < 2:
        raise ValueError(
            f"treatment has only the value {t_values.tolist()}: both a treated and a control "
            "group are needed"
        )
    if binary_outcome:
        y_values = np.unique(y)
        if not np.isin(y_values, [0.0, 1.0]).all() or len(y_values) < 2:
            raise ValueError(
                f"y_true must be binary with both 0 and 1 present, got values {y_values[:10].tolist()}"
            )
    return y, u, t_raw.astype(np.int64)


def _curve_points(
    y: NDArray[np.float64], score: NDArray[np.float64], treated: NDArray[np.int64]
) -> tuple[NDArray[np.float64], ...]:
    """Cumulative counts at every distinct score threshold, best score first.

    Ties share one threshold (the last row of the tied block), as in scikit-learn's ROC code.
    Returns (n_all, n_treated, n_control, y_treated, y_control), each cumulative.
    """
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, treated = y[order], score[order], treated[order]
    thresholds = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    treated_float = treated.astype(np.float64)
    n_treated = np.cumsum(treated_float)[thresholds]
    y_treated = np.cumsum(y * treated_float)[thresholds]
    y_control = np.cumsum(y * (1.0 - treated_float))[thresholds]
    n_all = (thresholds + 1).astype(np.float64)
    return n_all, n_treated, n_all - n_treated, y_treated, y_control


def _start_at_origin(
    x: NDArray[np.float64], values: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Prepend (0, 0) so every curve starts at the origin."""
    return np.r_[0.0, x], np.r_[0.0, values]


def _safe_divide(numerator: NDArray[np.float64], denominator: NDArray[np.float64]) -> NDArray:
    """numerator / denominator, 0 where the denominator is 0."""
    return np.divide(
        numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0
    )


def _qini_points(y, score, treated):
    n_all, n_treated, n_control, y_treated, y_control = _curve_points(y, score, treated)
    values = y_treated - y_control * _safe_divide(n_treated, n_control)
    return _start_at_origin(n_all, values)


def _uplift_points(y, score, treated):
    n_all, n_treated, n_control, y_treated, y_control = _curve_points(y, score, treated)
    values = (_safe_divide(y_treated, n_treated) - _safe_divide(y_control, n_control)) * n_all
    return _start_at_origin(n_all, values)


def qini_curve(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Qini curve: incremental responders among the top n by predicted uplift, for every n.

    Value at n: treated responders - control responders x (treated / control) in the top n.
    Returns (n, value) at every distinct-score threshold, starting at (0, 0). Works for
    continuous outcomes too (incremental revenue).
    """
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=False)
    return _qini_points(y, u, t)


def perfect_qini_curve(
    y_true: ArrayLike, treatment: ArrayLike, *, negative_effect: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The best achievable Qini curve for a binary outcome (the normaliser of the Qini score).

    With `negative_effect` the oracle ranks treated responders first and control responders
    last; without it the curve rises straight to the overall gain and stays there.
    """
    y, _, t = check_uplift_inputs(y_true, None, treatment, binary_outcome=True)
    if not isinstance(negative_effect, bool):
        raise ValueError(f"negative_effect must be True or False, got {negative_effect!r}")
    if negative_effect:
        return _qini_points(y, y * t - y * (1 - t), t)
    treated_mask = t == 1
    gain = y[treated_mask].sum() - treated_mask.sum() * y[~treated_mask].sum() / (~treated_mask).sum()
    return np.array([0.0, gain, float(len(y))]), np.array([0.0, gain, gain])


def _normalised_area(
    x_actual: NDArray, y_actual: NDArray, x_perfect: NDArray, y_perfect: NDArray
) -> float:
    """(area(actual) - area(random)) / (area(perfect) - area(random)), trapezoidal."""
    baseline = np.trapezoid([0.0, y_perfect[-1]], [0.0, x_perfect[-1]])
    perfect = np.trapezoid(y_perfect, x_perfect) - baseline
    actual = np.trapezoid(y_actual, x_actual) - baseline
    if perfect == 0:
        raise ValueError("the perfect curve has zero area above random: the score is undefined")
    return float(actual / perfect)


def qini_auc_score(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, *, negative_effect: bool = True
) -> float:
    """Qini coefficient: area between the Qini curve and random, over the perfect curve's.

    Binary outcome. 0 is random ranking, 1 is the oracle; agrees with scikit-uplift 0.5.1.
    """
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=True)
    x_actual, y_actual = _qini_points(y, u, t)
    x_perfect, y_perfect = perfect_qini_curve(y, t, negative_effect=negative_effect)
    return _normalised_area(x_actual, y_actual, x_perfect, y_perfect)


def qini_gain(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Area between the Qini curve and the random line, over n squared: for any outcome.

    In outcome units per row (e.g. incremental revenue per customer, averaged over targeting
    depths); 0 is random ranking. The normalised Qini needs a binary outcome; this does not.
    """
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=False)
    x_actual, y_actual = _qini_points(y, u, t)
    baseline = np.trapezoid([0.0, y_actual[-1]], [0.0, x_actual[-1]])
    return float((np.trapezoid(y_actual, x_actual) - baseline) / len(y) ** 2)


def uplift_curve(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Uplift curve: (treated rate - control rate) in the top n by predicted uplift, times n.

    Returns (n, value) at every distinct-score threshold, starting at (0, 0).
    """
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=False)
    return _uplift_points(y, u, t)


def perfect_uplift_curve(
    y_true: ArrayLike, treatment: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The best achievable uplift curve for a binary outcome (the normaliser of AUUC)."""
    y, _, t = check_uplift_inputs(y_true, None, treatment, binary_outcome=True)
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    summand = y if control_responders > treated_non_responders else t
    return _uplift_points(y, 2.0 * (y == t) + summand, t)


def uplift_auc_score(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Normalised area under the uplift curve (AUUC); agrees with scikit-uplift 0.5.1."""
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=True)
    x_actual, y_actual = _uplift_points(y, u, t)
    x_perfect, y_perfect = perfect_uplift_curve(y, t)
    return _normalised_area(x_actual, y_actual, x_perfect, y_perfect)


def uplift_at_k(
    y_true: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    *,
    k: float | int = 0.3,
    strategy: str = "overall",
) -> float:
    """Treated minus control mean outcome among the top k by predicted uplift.

    `k` is a share in (0, 1) or a row count. `strategy="overall"` takes the top k of all rows
    and compares the groups inside it; `"by_group"` takes the top k of each group separately.
    Works for continuous outcomes too.
    """
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=False)
    if strategy not in ("overall", "by_group"):
        raise ValueError(f"strategy must be 'overall' or 'by_group', got {strategy!r}")
    n_rows = len(y)
    k_kind = np.asarray(k).dtype.kind
    if k_kind not in "if" or isinstance(k, bool):
        raise ValueError(f"k must be a share in (0, 1) or a positive row count, got {k!r}")
    if (k_kind == "i" and not 0 < k < n_rows) or (k_kind == "f" and not 0 < k < 1):
        raise ValueError(
            f"k={k} must be a share in (0, 1) or a row count between 1 and {n_rows - 1}"
        )
    order = np.argsort(u, kind="mergesort")[::-1]
    y_sorted, t_sorted = y[order], t[order]
    if strategy == "overall":
        n_top = int(n_rows * k) if k_kind == "f" else int(k)
        top_y, top_t = y_sorted[:n_top], t_sorted[:n_top]
        treated_top, control_top = top_y[top_t == 1], top_y[top_t == 0]
    else:
        treated_all, control_all = y_sorted[t_sorted == 1], y_sorted[t_sorted == 0]
        n_treated = int(len(treated_all) * k) if k_kind == "f" else int(k)
        n_control = int(len(control_all) * k) if k_kind == "f" else int(k)
        if n_treated > len(treated_all) or n_control > len(control_all):
            raise ValueError(
                f"k={k} is larger than a group: {len(treated_all)} treated, "
                f"{len(control_all)} control rows"
            )
        treated_top, control_top = treated_all[:n_treated], control_all[:n_control]
    if len(treated_top) == 0 or len(control_top) == 0:
        raise ValueError(
            f"the top k={k} rows ({strategy}) hold {len(treated_top)} treated and "
            f"{len(control_top)} control rows; both are needed (use a larger k)"
        )
    return float(treated_top.mean() - control_top.mean())


def bootstrap_interval(
    metric: Callable[..., float],
    y_true: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    *,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: int | None = 0,
    **metric_kwargs: Any,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of any metric `metric(y_true, uplift, treatment, **kwargs)`.

    Rows are resampled with replacement within the treated and the control group separately, so
    every resample keeps the original group sizes (and both groups).
    """
    y, u, t = check_uplift_inputs(y_true, uplift, treatment, binary_outcome=False)
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be at least 2, got {n_bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    estimate = float(metric(y, u, t, **metric_kwargs))
    rng = np.random.default_rng(random_state)
    groups = [np.flatnonzero(t == value) for value in (0, 1)]
    samples = np.empty(n_bootstrap)
    for index in range(n_bootstrap):
        rows = np.concatenate([rng.choice(group, size=len(group)) for group in groups])
        samples[index] = metric(y[rows], u[rows], t[rows], **metric_kwargs)
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return ConfidenceInterval(
        estimate=estimate,
        low=float(low),
        high=float(high),
        std=float(samples.std(ddof=1)),
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


def qini_auc_score_interval(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, **kwargs: Any
) -> ConfidenceInterval:
    """Qini coefficient with a bootstrap interval (keyword arguments of `bootstrap_interval`)."""
    negative_effect = kwargs.pop("negative_effect", True)
    return bootstrap_interval(
        qini_auc_score, y_true, uplift, treatment, negative_effect=negative_effect, **kwargs
    )


def uplift_auc_score_interval(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, **kwargs: Any
) -> ConfidenceInterval:
    """AUUC with a bootstrap interval (keyword arguments of `bootstrap_interval`)."""
    return bootstrap_interval(uplift_auc_score, y_true, uplift, treatment, **kwargs)


def uplift_at_k_interval(
    y_true: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    *,
    k: float | int = 0.3,
    strategy: str = "overall",
    **kwargs: Any,
) -> ConfidenceInterval:
    """uplift@k with a bootstrap interval (keyword arguments of `bootstrap_interval`)."""
    return bootstrap_interval(
        uplift_at_k, y_true, uplift, treatment, k=k, strategy=strategy, **kwargs
    )
