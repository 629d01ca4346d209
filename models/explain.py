"""Why the churn model says what it says: SHAP values and the diagnostic plots analysts open.

SHAP values come from the LightGBM booster (TreeExplainer, exact for trees) in log-odds. With
Platt calibration the calibrated log-odds are `a * margin + b`, so the values are rescaled by `a`
and stay additive on the scale the reported probability lives on. With isotonic calibration they
stay in the booster's log-odds: the map is monotone, so drivers keep their order and sign, but
they no longer sum to the calibrated log-odds. Every plotting helper returns a matplotlib Figure
(pyplot-managed for the SHAP plots) and writes nothing; the caller saves or logs and closes it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import shap
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.utils.validation import check_is_fitted

from models.churn import ChurnClassifier

__all__ = [
    "bar_figure",
    "beeswarm_figure",
    "calibration_figure",
    "churn_shap_values",
    "dependence_figure",
    "feature_importance_figure",
    "qini_band_figure",
    "roc_figure",
    "top_drivers",
    "waterfall_figure",
    "weighted_qini_curves",
]


def churn_shap_values(
    model: ChurnClassifier, X: pd.DataFrame, *, max_rows: int | None = 2000, random_state: int = 0
) -> shap.Explanation:
    """SHAP values of P(churn) in log-odds (calibrated when Platt) for up to `max_rows` rows of X.

    Rows are sampled without replacement when X is larger (the plots need a few thousand at
    most). Categorical columns are shown by their category code in `data`.
    """
    check_is_fitted(model, "booster_model_")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be a positive number of rows or None, got {max_rows}")
    frame = model.prepare_features(X)
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=random_state)
    explainer = shap.TreeExplainer(model.booster_model_.booster_)
    with warnings.catch_warnings():  # shap notes a change of its LightGBM output format
        warnings.filterwarnings("ignore", message="LightGBM binary classifier", category=UserWarning)
        values = np.asarray(explainer.shap_values(frame), dtype=float)
    if values.ndim == 3:  # some shap versions return one slice per class
        values = values[..., -1]
    base = float(np.ravel(explainer.expected_value)[-1])
    if isinstance(model.calibrator_, LogisticRegression):
        slope = float(model.calibrator_.coef_[0, 0])
        intercept = float(model.calibrator_.intercept_[0])
        values, base = values * slope, base * slope + intercept
    shown = frame.apply(lambda column: column.cat.codes.where(column.notna()) if column.dtype == "category" else column)
    return shap.Explanation(
        values=values,
        base_values=np.full(len(frame), base),
        data=shown.to_numpy(dtype=float),
        feature_names=list(frame.columns),
    )


def top_drivers(explanation: shap.Explanation, k: int = 3) -> pd.DataFrame:
    """The k features pushing each row's churn risk up the most: (row, rank, feature, shap_value)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    values = np.asarray(explanation.values)
    names = np.asarray(explanation.feature_names)
    order = np.argsort(-values, axis=1)[:, :k]
    rows = np.repeat(np.arange(len(values)), order.shape[1])
    return pd.DataFrame(
        {
            "row": rows,
            "rank": np.tile(np.arange(1, order.shape[1] + 1), len(values)),
            "feature": names[order.ravel()],
            "shap_value": values[rows, order.ravel()],
        }
    )


def beeswarm_figure(explanation: shap.Explanation, *, max_display: int = 15) -> Figure:
    """SHAP beeswarm: every customer as a dot per feature, coloured by the feature's value."""
    figure = plt.figure(figsize=(9, 0.4 * max_display + 1.5))
    axes = figure.add_subplot()
    shap.plots.beeswarm(explanation, max_display=max_display, ax=axes, show=False, plot_size=None)
    axes.set_title("What drives churn risk (SHAP, log-odds)")
    figure.tight_layout()
    return figure


def bar_figure(explanation: shap.Explanation, *, max_display: int = 15) -> Figure:
    """Mean |SHAP| per feature: overall importance on the model's own scale."""
    figure = plt.figure(figsize=(9, 0.4 * max_display + 1.5))
    axes = figure.add_subplot()
    shap.plots.bar(explanation, max_display=max_display, ax=axes, show=False)
    axes.set_title("Mean |SHAP| per feature (log-odds of churn)")
    figure.tight_layout()
    return figure


def feature_importance_figure(importance: pd.Series, *, top: int = 20, label: str = "total gain") -> Figure:
    """Horizontal bars of the booster's importance (e.g. `model.feature_importance_`)."""
    if len(importance) == 0:
        raise ValueError("importance is empty: nothing to plot")
    shown = importance.sort_values(ascending=False).head(top)[::-1]
    figure = Figure(figsize=(8, 0.35 * len(shown) + 1.5))
    axes = figure.add_subplot()
    axes.barh(shown.index.astype(str), shown.to_numpy(), color="#4c72b0")
    axes.set_xlabel(label)
    axes.set_title("LightGBM feature importance")
    figure.tight_layout()
    return figure


def calibration_figure(y_true: ArrayLike, probabilities: dict[str, ArrayLike], *, n_bins: int = 10) -> Figure:
    """Reliability diagram: observed churn rate against predicted probability, per model."""
    y_true = np.asarray(y_true).astype(int)
    figure = Figure(figsize=(6, 6))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, prob in probabilities.items():
        observed, predicted = calibration_curve(y_true, np.asarray(prob), n_bins=n_bins, strategy="uniform")
        axes.plot(predicted, observed, marker="o", label=name)
    axes.set_xlabel("predicted P(churn)")
    axes.set_ylabel("observed churn rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title("Calibration on the test snapshot")
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def roc_figure(y_true: ArrayLike, scores: dict[str, ArrayLike]) -> Figure:
    """ROC curves with their AUC in the legend, per model."""
    y_true = np.asarray(y_true).astype(int)
    figure = Figure(figsize=(6, 6))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    for name, score in scores.items():
        false_positive, true_positive, _ = roc_curve(y_true, np.asarray(score))
        auc = roc_auc_score(y_true, np.asarray(score))
        axes.plot(false_positive, true_positive, label=f"{name} (AUC {auc:.3f})")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate (churners found)")
    axes.set_title("ROC on the test snapshot")
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------------------------
# Report and per-customer figures (nbo report, nbo explain)
# ----------------------------------------------------------------------------------------------


def dependence_figure(explanation: shap.Explanation, feature: str) -> Figure:
    """SHAP dependence (scatter): one feature's value against its contribution to churn risk."""
    names = list(explanation.feature_names)
    if feature not in names:
        raise ValueError(f"feature {feature!r} is not in the explanation; known features include {names[:5]}")
    figure = plt.figure(figsize=(6, 4))
    axes = figure.add_subplot()
    shap.plots.scatter(explanation[:, names.index(feature)], ax=axes, show=False, hist=False)
    axes.set_title(f"SHAP dependence: {feature}")
    axes.set_ylabel("SHAP value (log-odds of churn)")
    figure.tight_layout()
    return figure


def waterfall_figure(explanation: shap.Explanation, *, max_display: int = 12, title: str | None = None) -> Figure:
    """SHAP waterfall of one row: from the average log-odds to this customer's, feature by feature."""
    if np.ndim(explanation.values) != 1:
        raise ValueError(f"a waterfall shows one row; got values of shape {np.shape(explanation.values)}")
    figure = plt.figure(figsize=(9, 0.45 * max_display + 1.8))
    shap.plots.waterfall(explanation, max_display=max_display, show=False)
    if title:
        figure.axes[0].set_title(title)
    figure.set_size_inches(9, 0.45 * max_display + 1.8)
    figure.tight_layout()
    return figure


def weighted_qini_curves(
    y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, weights: ArrayLike, fractions: ArrayLike
) -> np.ndarray:
    """Qini curve values at `fractions` of the population (targeted by descending uplift), for
    every row of case weights (shape resamples x rows), normalised per targeted customer.

    Value at fraction f: (treated responders - control responders x treated / control) among the
    top f, divided by the weighted population, so curves of different sizes compare. With unit
    weights it is `models.uplift_metrics.qini_curve` rescaled and interpolated.
    """
    y = np.asarray(y_true, dtype=float)
    score = np.asarray(uplift, dtype=float)
    treated = np.asarray(treatment).astype(float)
    matrix = np.atleast_2d(np.asarray(weights, dtype=float))
    if not (len(y) == len(score) == len(treated) == matrix.shape[1]):
        raise ValueError(
            f"y_true ({len(y)}), uplift ({len(score)}), treatment ({len(treated)}) and weights "
            f"({matrix.shape[1]} columns) must have one entry per row"
        )
    order = np.argsort(score, kind="mergesort")[::-1]
    y, treated, matrix = y[order], treated[order], matrix[:, order]
    n_all = np.cumsum(matrix, axis=1)
    n_treated = np.cumsum(matrix * treated, axis=1)
    y_treated = np.cumsum(matrix * y * treated, axis=1)
    y_control = np.cumsum(matrix * y * (1 - treated), axis=1)
    n_control = n_all - n_treated
    ratio = np.divide(n_treated, n_control, out=np.zeros_like(n_treated), where=n_control > 0)
    total = n_all[:, -1:]
    gain = (y_treated - y_control * ratio) / total
    share = n_all / total
    grid = np.asarray(fractions, dtype=float)
    return np.vstack([np.interp(grid, np.r_[0.0, share[row]], np.r_[0.0, gain[row]]) for row in range(len(matrix))])


def qini_band_figure(
    fractions: ArrayLike, curve: ArrayLike, low: ArrayLike, high: ArrayLike, *, title: str, confidence: float = 0.9
) -> Figure:
    """A Qini curve with its bootstrap band and the random-targeting line."""
    fractions, curve = np.asarray(fractions, dtype=float), np.asarray(curve, dtype=float)
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.fill_between(fractions, low, high, color="#4c72b0", alpha=0.25, label=f"{confidence:.0%} bootstrap band")
    axes.plot(fractions, curve, color="#4c72b0", label="model ranking")
    axes.plot([0, 1], [0, curve[-1]], linestyle="--", color="grey", label="random targeting")
    axes.axhline(0, color="black", linewidth=0.5)
    axes.set_xlabel("share of customers targeted (highest predicted uplift first)")
    axes.set_ylabel("incremental conversions per customer")
    axes.set_title(title)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    return figure
