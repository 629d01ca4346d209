"""Drift checks between a reference population and a current one (pure functions, no I/O).

Per column: the population stability index (PSI), the change in the missing share and the
share of current values outside the reference's range; for decisions, the mix of offers
(PSI plus a chi-square test). Every check has a warn and an alert threshold; `drift_report`
returns one tidy row per (column, check) and the worst status, so a scheduler can act on it.

PSI = sum over bins of (current_share - reference_share) * ln(current_share / reference_share).
Numeric bins lie between the reference's quantiles (ties merged; each edge value is a bin of
its own, so point masses such as "0 orders" are compared exactly); categorical bins are the
categories. Missing values (NaN/None) always form their own bin, so a column that starts
arriving empty drifts even when the rest keeps its shape. Empty bins get `epsilon` instead of
0 so the logarithm stays finite.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

logger = logging.getLogger(__name__)

STATUSES = ("ok", "warn", "alert")
CHECKS = ("psi", "missing", "range", "decision_mix")
MISSING_LABEL = "<missing>"
#: Columns of a snapshot that are keys or labels, never monitored as features.
KEY_COLUMNS = ("customer_id", "as_of")
LABEL_PREFIX = "label_"
RESULT_COLUMNS = (
    "group", "column", "check", "value", "warn_threshold", "alert_threshold", "status",
    "reference_rows", "current_rows", "detail",
)  # fmt: skip


class Threshold(BaseModel):
    """A warn and an alert level for one check; a value at or above a level reaches it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn: float = Field(ge=0.0)
    alert: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.alert < self.warn:
            raise ValueError(f"alert threshold {self.alert} is below the warn threshold {self.warn}; swap them")
        return self

    def status(self, value: float) -> str:
        """'ok', 'warn' or 'alert' for a check's value (NaN counts as ok: nothing to compare)."""
        if not np.isfinite(value):
            return "ok" if np.isnan(value) else "alert"
        if value >= self.alert:
            return "alert"
        return "warn" if value >= self.warn else "ok"


class DriftConfig(BaseModel):
    """Thresholds and binning of the drift checks (load from YAML with `training.monitor`).

    Defaults: PSI 0.1 warn / 0.25 alert (the usual rule of thumb: < 0.1 stable, 0.1-0.25
    moderate shift, > 0.25 major shift) for features, scores and the decision mix; a change of
    5 / 10 percentage points in the missing share; 1% / 5% of current values outside the
    reference's [min, max] (or the `range_quantile` robust range).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bins: int = Field(10, ge=2, le=100, description="quantile bins of numeric columns")
    epsilon: float = Field(1e-4, gt=0.0, lt=0.01, description="share used for empty bins")
    psi: Threshold = Threshold(warn=0.1, alert=0.25)
    score_psi: Threshold = Threshold(warn=0.1, alert=0.25)
    decision_psi: Threshold = Threshold(warn=0.1, alert=0.25)
    missing: Threshold = Threshold(warn=0.05, alert=0.10)
    range: Threshold = Threshold(warn=0.01, alert=0.05)
    range_quantile: float = Field(
        0.0, ge=0.0, lt=0.5, description="0 = reference [min, max]; q = its [q, 1 - q] quantiles"
    )
    ignore: tuple[str, ...] = Field((), description="columns never checked")
    min_rows: int = Field(20, ge=1, description="fewer rows than this in either population is an error")


@dataclass(frozen=True)
class DriftResult:
    """The tidy check table (`RESULT_COLUMNS`, worst first) and the overall status."""

    table: pd.DataFrame
    status: str

    def alerts(self) -> pd.DataFrame:
        """Rows whose status is 'alert'."""
        return self.table[self.table["status"] == "alert"]

    def flagged(self, check: str = "psi", level: str = "alert") -> list[str]:
        """Columns whose `check` reached `level` or worse."""
        worse = STATUSES[STATUSES.index(level) :]
        rows = self.table[(self.table["check"] == check) & self.table["status"].isin(worse)]
        return rows["column"].tolist()

    def value(self, column: str, check: str = "psi") -> float:
        """The value of one check of one column (KeyError naming it when absent)."""
        rows = self.table[(self.table["column"] == column) & (self.table["check"] == check)]
        if rows.empty:
            raise KeyError(f"no {check!r} check for column {column!r} in the drift result")
        return float(rows["value"].iloc[0])


# ----------------------------------------------------------------------------------------------
# The statistics
# ----------------------------------------------------------------------------------------------


def _as_float(values: Any, what: str) -> np.ndarray:
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    try:
        return series.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} is not numeric ({series.dtype}): {error}; compare it as a category") from None


def psi_from_shares(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> float:
    """PSI of two share vectors over the same bins; zero shares become `epsilon`."""
    reference = np.maximum(np.asarray(reference, dtype=float), epsilon)
    current = np.maximum(np.asarray(current, dtype=float), epsilon)
    if reference.shape != current.shape:
        raise ValueError(f"share vectors differ in length: {reference.shape} vs {current.shape}")
    return float(np.sum((current - reference) * np.log(current / reference)))


def quantile_edges(reference: Any, bins: int = 10) -> np.ndarray:
    """Bin edges: the reference's inner quantiles at 1/bins, 2/bins, ..., ties merged.

    NaN is left out (it has its own bin); a constant column gives one edge, its value.
    """
    values = _as_float(reference, "reference")
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.empty(0)
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def numeric_shares(values: Any, edges: np.ndarray) -> np.ndarray:
    """Shares per bin of `edges` plus a last entry for missing values (sums to 1).

    The bins are (-inf, e1), [e1, e1], (e1, e2), [e2, e2], ..., (ek, inf): every edge value is
    a bin of its own, so point masses (zero counts, flags) are compared exactly whichever side
    of the distribution they sit on; a bin empty on both sides adds nothing to the PSI.
    """
    array = _as_float(values, "values")
    if len(array) == 0:
        raise ValueError("cannot compute shares of an empty column")
    missing = np.isnan(array)
    present = array[~missing]
    position = np.searchsorted(edges, present, side="left")
    on_edge = np.zeros(len(present), dtype=bool)
    inside = position < len(edges)
    on_edge[inside] = present[inside] == edges[position[inside]]
    index = 2 * position + on_edge
    counts = np.bincount(index, minlength=2 * len(edges) + 1).astype(float)
    return np.append(counts, missing.sum()) / len(array)


def numeric_psi(reference: Any, current: Any, bins: int = 10, epsilon: float = 1e-4) -> float:
    """PSI of a numeric column over the reference's quantile bins plus a missing-value bin."""
    edges = quantile_edges(reference, bins)
    return psi_from_shares(numeric_shares(reference, edges), numeric_shares(current, edges), epsilon)


def category_shares(reference: Any, current: Any) -> pd.DataFrame:
    """Share of each category (missing as `MISSING_LABEL`) in both populations, one row each."""
    parts = {}
    for name, values in (("reference", reference), ("current", current)):
        series = pd.Series(values, dtype=object).reset_index(drop=True)
        if series.empty:
            raise ValueError(f"cannot compute category shares: the {name} column is empty")
        labels = series.map(lambda value: MISSING_LABEL if pd.isna(value) else str(value))
        parts[name] = labels.value_counts(normalize=True)
    table = pd.DataFrame(parts).fillna(0.0)
    table.index.name = "category"
    return table.sort_index()


def categorical_psi(reference: Any, current: Any, epsilon: float = 1e-4) -> float:
    """PSI over the categories of either population (a new or vanished category adds to it)."""
    table = category_shares(reference, current)
    return psi_from_shares(table["reference"].to_numpy(), table["current"].to_numpy(), epsilon)


def missing_share(values: Any) -> float:
    """Share of missing values (NaN/None/NA)."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    return float(series.isna().mean()) if len(series) else float("nan")


def out_of_range_share(reference: Any, current: Any, quantile: float = 0.0) -> float:
    """Share of non-missing current values outside the reference's [q, 1 - q] quantile range
    ([min, max] for q = 0); NaN when either side has no values."""
    ref = _as_float(reference, "reference")
    cur = _as_float(current, "current")
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    low, high = np.quantile(ref, [quantile, 1.0 - quantile])
    return float(np.mean((cur < low) | (cur > high)))


@dataclass(frozen=True)
class MixComparison:
    """Decision (or any categorical) mix: shares per category, PSI and a chi-square test."""

    shares: pd.DataFrame
    psi: float
    chi_square: float
    p_value: float


def compare_mix(reference: Any, current: Any, epsilon: float = 1e-4) -> MixComparison:
    """Compare two categorical mixes (e.g. offer_id incl. no_message): PSI and chi-square.

    The chi-square test of homogeneity is on the 2 x categories count table; with thousands of
    decisions it flags tiny shifts, so the status uses the PSI and the p-value is reported.
    """
    shares = category_shares(reference, current)
    counts = np.vstack(
        [shares["reference"].to_numpy() * len(reference), shares["current"].to_numpy() * len(current)]
    ).round()
    if counts.shape[1] < 2:
        chi_square, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(counts, correction=False)
        chi_square, p_value = float(result.statistic), float(result.pvalue)
    psi = psi_from_shares(shares["reference"].to_numpy(), shares["current"].to_numpy(), epsilon)
    return MixComparison(shares=shares, psi=psi, chi_square=chi_square, p_value=p_value)


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


def monitored_columns(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig) -> list[str]:
    """Feature columns of the reference (keys, labels and ignored columns left out).

    Raises ValueError naming reference columns the current frame lacks.
    """
    columns = [
        column
        for column in reference.columns
        if column not in KEY_COLUMNS and not str(column).startswith(LABEL_PREFIX) and column not in config.ignore
    ]
    missing = [column for column in columns if column not in current.columns]
    if missing:
        raise ValueError(
            f"the current data lacks {len(missing)} columns of the reference, e.g. {missing[:5]}; build both "
            "snapshots with the same feature set, or list the columns under `ignore` in the monitor config"
        )
    return columns


def _is_numeric(reference: pd.Series, current: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype
    both = numeric(reference.dtype) and numeric(current.dtype)
    return both and not pd.api.types.is_bool_dtype(reference.dtype)


def _row(group, column, check, value, threshold: Threshold, n_reference, n_current, detail="") -> dict[str, Any]:
    return {
        "group": group,
        "column": column,
        "check": check,
        "value": float(value),
        "warn_threshold": threshold.warn,
        "alert_threshold": threshold.alert,
        "status": threshold.status(float(value)),
        "reference_rows": int(n_reference),
        "current_rows": int(n_current),
        "detail": detail,
    }


def column_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig,
    columns: Sequence[str],
    group: str = "feature",
) -> list[dict[str, Any]]:
    """PSI, missing-share change and (numeric) range rows for `columns` of two frames."""
    psi_threshold = config.score_psi if group == "score" else config.psi
    rows = []
    for column in columns:
        ref, cur = reference[column], current[column]
        n_ref, n_cur = len(ref), len(cur)
        if _is_numeric(ref, cur):
            psi = numeric_psi(ref, cur, config.bins, config.epsilon)
            rows.append(
                _row(group, column, "psi", psi, psi_threshold, n_ref, n_cur, "numeric, quantile bins + missing")
            )
            outside = out_of_range_share(ref, cur, config.range_quantile)
            if not np.isnan(outside):
                detail = "share of current values outside the reference range"
                rows.append(_row(group, column, "range", outside, config.range, n_ref, n_cur, detail))
        else:
            psi = categorical_psi(ref, cur, config.epsilon)
            rows.append(_row(group, column, "psi", psi, psi_threshold, n_ref, n_cur, "categorical, shares + missing"))
        ref_missing, cur_missing = missing_share(ref), missing_share(cur)
        detail = f"missing share {ref_missing:.3f} -> {cur_missing:.3f}"
        rows.append(
            _row(group, column, "missing", abs(cur_missing - ref_missing), config.missing, n_ref, n_cur, detail)
        )
    return rows


def check_population(frame: pd.DataFrame, what: str, config: DriftConfig) -> None:
    """ValueError unless `frame` is a DataFrame with at least `config.min_rows` rows."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"the {what} must be a DataFrame, got {type(frame).__name__}")
    if len(frame) < config.min_rows:
        raise ValueError(
            f"the {what} has {len(frame)} rows; drift needs at least {config.min_rows} on each side "
            "(set min_rows in the monitor config to go lower)"
        )


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    reference_scores: pd.DataFrame | None = None,
    current_scores: pd.DataFrame | None = None,
    reference_decisions: Any | None = None,
    current_decisions: Any | None = None,
) -> DriftResult:
    """All checks between two snapshots, their model scores and their decision mixes.

    `*_scores`: frames of score columns (churn risk, uplift per offer), compared like numeric
    features with the `score_psi` threshold. `*_decisions`: the chosen offer per customer
    (no_message included). Returns the tidy table sorted worst first and the overall status.
    """
    config = config or DriftConfig()
    check_population(reference, "reference", config)
    check_population(current, "current data", config)
    rows = column_checks(reference, current, config, monitored_columns(reference, current, config))
    if (reference_scores is None) != (current_scores is None):
        raise ValueError("give scores for both populations or for neither")
    if reference_scores is not None:
        columns = [column for column in reference_scores.columns if column in current_scores.columns]
        rows += column_checks(reference_scores, current_scores, config, columns, group="score")
    if (reference_decisions is None) != (current_decisions is None):
        raise ValueError("give decisions for both populations or for neither")
    if reference_decisions is not None:
        mix = compare_mix(reference_decisions, current_decisions, config.epsilon)
        detail = f"chi-square {mix.chi_square:.1f}, p = {mix.p_value:.3g}; " + ", ".join(
            f"{category} {row.reference:.3f} -> {row.current:.3f}" for category, row in mix.shares.iterrows()
        )
        n_ref, n_cur = len(reference_decisions), len(current_decisions)
        rows.append(_row("decision", "offer_id", "decision_mix", mix.psi, config.decision_psi, n_ref, n_cur, detail))
    return _result(rows)


def _result(rows: list[Mapping[str, Any]]) -> DriftResult:
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    if table.empty:
        return DriftResult(table=table, status="ok")
    rank = table["status"].map({status: index for index, status in enumerate(STATUSES)})
    table = table.assign(_rank=rank).sort_values(["_rank", "value"], ascending=[False, False], kind="stable")
    table = table.drop(columns="_rank").reset_index(drop=True)
    status = STATUSES[int(rank.max())]
    logger.info("drift: %d checks, status %s", len(table), status)
    return DriftResult(table=table, status=status)


def overall_status(statuses: Sequence[str]) -> str:
    """The worst of several statuses ('ok' for none)."""
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown statuses {unknown}; expected {STATUSES}")
    return max(statuses, key=STATUSES.index, default="ok")
