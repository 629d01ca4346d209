"""Campaign analysis against a control group: lift, confidence intervals, p-values, net value.

Per offer arm against control, for every outcome:
* binary (conversion, visit): the two-proportion z-test with pooled variance
  (statsmodels `proportions_ztest`), Newcombe's hybrid Wilson-score interval for the difference
  of rates and the log (Katz) interval for their ratio (`confint_proportions_2indep`, method
  "newcomb" / "log"). Newcombe rather than Wald: Wald collapses when a group has no conversions
  (zero width on that side) and undercovers on small counts; on large groups they agree to 1e-5;
* continuous (revenue per customer): Welch's t-test and its interval (scipy `ttest_ind`,
  `equal_var=False`); the relative lift's interval is the delta method on the log of the
  ratio of means (normal quantile from scipy).
Power: the minimum detectable lift at the observed group sizes (statsmodels `NormalIndPower`),
and a warning when the observed lift is below it. Money: incremental revenue of each arm
(difference in revenue per customer x arm size, Welch interval) net of the offer's costs.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from features.contract import CONTROL_OFFER_ID
from models.campaign_power import (
    binary_minimum_detectable_lift,
    minimum_detectable_effect_size,
    power_at_effect,
    required_control_size,
)

logger = logging.getLogger(__name__)


def _number(value: float) -> float | None:
    """A float for JSON: None for NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class OutcomeComparison:
    """One arm against control on one outcome (lifts are arm minus control)."""

    arm: str
    outcome: str
    kind: str  # "binary" (rates) or "continuous" (means per customer)
    n_arm: int
    n_control: int
    value_arm: float
    value_control: float
    absolute_lift: float
    absolute_ci_low: float | None
    absolute_ci_high: float | None
    relative_lift: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None
    statistic: float | None
    p_value: float | None
    minimum_detectable_lift: float | None
    power_at_observed: float | None
    underpowered: bool
    required_control: int | None


@dataclass(frozen=True)
class ArmEconomics:
    """Incremental revenue of an arm over what its customers would have spent untreated."""

    arm: str
    n_arm: int
    revenue_per_customer_arm: float
    revenue_per_customer_control: float
    incremental_revenue: float
    incremental_revenue_ci_low: float | None
    incremental_revenue_ci_high: float | None
    send_cost: float | None
    redemption_cost: float | None
    net_incremental_revenue: float | None
    net_ci_low: float | None
    net_ci_high: float | None
    net_per_customer: float | None
    margin: float | None
    net_incremental_margin: float | None


@dataclass(frozen=True)
class CampaignAnalysis:
    """Every arm-versus-control comparison of one campaign, its economics and its warnings."""

    control: str
    alpha: float
    power: float
    comparisons: list[OutcomeComparison]
    economics: list[ArmEconomics] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def comparisons_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(item) for item in self.comparisons])

    def to_dict(self) -> dict:
        return {
            "control": self.control,
            "alpha": self.alpha,
            "power": self.power,
            "comparisons": [asdict(item) for item in self.comparisons],
            "economics": [asdict(item) for item in self.economics],
            "warnings": list(self.warnings),
        }


def _values(series: pd.Series, arm: str, outcome: str) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"outcome {outcome!r} of arm {arm!r} has {int(bad.sum())} missing or non-numeric values; "
            "fill or drop them first"
        )
    return values


def compare_binary(
    arm_values: np.ndarray, control_values: np.ndarray, *, alpha: float = 0.05, power: float = 0.8,
    arm: str = "arm", outcome: str = "outcome",
) -> OutcomeComparison:
    """Rates of a 0/1 outcome: pooled two-proportion z-test, Newcombe and log-ratio intervals, power."""
    arm_values, control_values = np.asarray(arm_values, float), np.asarray(control_values, float)
    for name, values in (("arm", arm_values), ("control", control_values)):
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"outcome {outcome!r} is not 0/1 in the {name} group of arm {arm!r}")
    n1, n0 = len(arm_values), len(control_values)
    c1, c0 = int(arm_values.sum()), int(control_values.sum())
    p1, p0 = c1 / n1, c0 / n0
    statistic = p_value = low = high = rel_low = rel_high = None
    if 0 < c1 + c0 < n1 + n0:
        z, p = proportions_ztest([c1, c0], [n1, n0])
        statistic, p_value = _number(z), _number(p)
        interval = confint_proportions_2indep(c1, n1, c0, n0, compare="diff", method="newcomb", alpha=alpha)
        low, high = map(_number, interval)
    relative = p1 / p0 - 1 if p0 > 0 else None
    if c1 > 0 and c0 > 0:
        ratio_low, ratio_high = confint_proportions_2indep(
            c1, n1, c0, n0, compare="ratio", method="log", alpha=alpha
        )
        rel_low, rel_high = _number(ratio_low - 1), _number(ratio_high - 1)
    mde = binary_minimum_detectable_lift(p0, n1, n0, alpha=alpha, power=power)
    effect = float(proportion_effectsize(p1, p0))
    return _with_power(
        arm, outcome, "binary", n1, n0, p1, p0, p1 - p0, (low, high), relative, (rel_low, rel_high),
        statistic, p_value, mde, effect, alpha, power,
    )


def compare_continuous(
    arm_values: np.ndarray, control_values: np.ndarray, *, alpha: float = 0.05, power: float = 0.8,
    arm: str = "arm", outcome: str = "outcome",
) -> OutcomeComparison:
    """Means of a continuous outcome: Welch's t-test and interval; delta-method relative lift.

    The minimum detectable lift uses Cohen's d on the pooled standard deviation with the normal
    power of `NormalIndPower` (statsmodels has no Welch power), close to Welch's for large groups.
    """
    arm_values, control_values = np.asarray(arm_values, float), np.asarray(control_values, float)
    n1, n0 = len(arm_values), len(control_values)
    if n1 < 2 or n0 < 2:
        raise ValueError(
            f"Welch's t-test needs at least 2 customers per group; arm {arm!r} has {n1}, control {n0}"
        )
    m1, m0 = float(arm_values.mean()), float(control_values.mean())
    v1, v0 = float(arm_values.var(ddof=1)), float(control_values.var(ddof=1))
    statistic = p_value = low = high = rel_low = rel_high = None
    if v1 + v0 > 0:
        result = stats.ttest_ind(arm_values, control_values, equal_var=False)
        interval = result.confidence_interval(confidence_level=1 - alpha)
        statistic, p_value = _number(result.statistic), _number(result.pvalue)
        low, high = _number(interval.low), _number(interval.high)
    relative = m1 / m0 - 1 if m0 > 0 else None
    if m1 > 0 and m0 > 0:
        # Delta method: Var(log(m1 / m0)) ~ v1 / (n1 m1^2) + v0 / (n0 m0^2).
        spread = math.sqrt(v1 / (n1 * m1**2) + v0 / (n0 * m0**2))
        quantile = float(stats.norm.ppf(1 - alpha / 2))
        center = math.log(m1 / m0)
        rel_low, rel_high = math.exp(center - quantile * spread) - 1, math.exp(center + quantile * spread) - 1
    pooled_sd = math.sqrt(((n1 - 1) * v1 + (n0 - 1) * v0) / (n1 + n0 - 2))
    mde = effect = None
    if pooled_sd > 0:
        mde = minimum_detectable_effect_size(n1, n0, alpha=alpha, power=power) * pooled_sd
        effect = (m1 - m0) / pooled_sd  # Cohen's d
    return _with_power(
        arm, outcome, "continuous", n1, n0, m1, m0, m1 - m0, (low, high), relative, (rel_low, rel_high),
        statistic, p_value, mde, effect, alpha, power,
    )


def _with_power(
    arm, outcome, kind, n1, n0, value_arm, value_control, lift, interval, relative, relative_interval,
    statistic, p_value, mde, effect, alpha, power,
) -> OutcomeComparison:
    """Assemble a comparison with the power figures for the observed standardised effect."""
    observed_power = required = None
    underpowered = False
    if effect is not None and mde is not None:
        observed_power = power_at_effect(effect, n1, n0, alpha=alpha)
        underpowered = effect != 0 and observed_power < power  # no lift at all is not "undetected"
        if underpowered:
            needed = required_control_size(effect, n1, alpha=alpha, power=power)
            required = None if needed is None else math.ceil(needed)
    return OutcomeComparison(
        arm=arm, outcome=outcome, kind=kind, n_arm=n1, n_control=n0,
        value_arm=float(value_arm), value_control=float(value_control), absolute_lift=float(lift),
        absolute_ci_low=interval[0], absolute_ci_high=interval[1],
        relative_lift=None if relative is None else _number(relative),
        relative_ci_low=relative_interval[0], relative_ci_high=relative_interval[1],
        statistic=statistic, p_value=p_value, minimum_detectable_lift=None if mde is None else _number(mde),
        power_at_observed=None if observed_power is None else _number(observed_power),
        underpowered=bool(underpowered), required_control=required,
    )  # fmt: skip


def is_binary(values: pd.Series) -> bool:
    """True when a column holds only 0 and 1 (or booleans)."""
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(numbers.notna().all() and numbers.isin([0, 1]).all())


def _check_arms(table: pd.DataFrame, arm_col: str, control: str) -> list[str]:
    if arm_col not in table.columns:
        raise ValueError(f"no arm column {arm_col!r}; columns are {list(table.columns)}")
    counts = table[arm_col].value_counts(dropna=True)  # keeps unused categories, with count 0
    counts.index = counts.index.astype("str")
    if str(control) not in counts.index:
        raise ValueError(
            f"no control arm {control!r} in column {arm_col!r}; arms present: {sorted(counts.index)}. "
            "Name the control with --control"
        )
    empty = sorted(str(label) for label, count in counts.items() if count == 0)
    if empty:
        raise ValueError(
            f"arm(s) {empty} in column {arm_col!r} have no customers; drop them (e.g. unused categories) "
            "or check the campaign's assignment"
        )
    arms = sorted(label for label in counts.index if label != str(control))
    if not arms:
        raise ValueError(f"only the control arm {control!r} is present in {arm_col!r}; nothing to compare")
    return arms


def _underpowered_warning(item: OutcomeComparison, alpha: float, power: float) -> str:
    if item.required_control is None:
        need = "no control size suffices with this arm's size"
    else:
        need = f"a control of ~{item.required_control:,} would be needed"
    return (
        f"{item.arm} / {item.outcome}: control (n={item.n_control:,}) too small to detect the observed "
        f"lift {item.absolute_lift:+.3g} reliably (MDE {item.minimum_detectable_lift:.3g} at {power:.0%} power, "
        f"alpha {alpha:g}; power at the observed lift {item.power_at_observed:.0%}); {need}"
    )


def _economics(
    arm: str, comparison: OutcomeComparison, rows: pd.DataFrame, margin: float | None
) -> ArmEconomics:
    n = comparison.n_arm
    incremental = comparison.absolute_lift * n
    low = None if comparison.absolute_ci_low is None else comparison.absolute_ci_low * n
    high = None if comparison.absolute_ci_high is None else comparison.absolute_ci_high * n
    send = redemption = net = net_low = net_high = per_customer = margin_net = None
    if {"send_cost", "redemption_cost"} <= set(rows.columns):
        send_total, redemption_total = rows["send_cost"].sum(skipna=False), rows["redemption_cost"].sum(skipna=False)
        if np.isfinite(send_total) and np.isfinite(redemption_total):
            send, redemption = float(send_total), float(redemption_total)
            cost = send + redemption
            net = incremental - cost
            net_low = None if low is None else low - cost
            net_high = None if high is None else high - cost
            per_customer = net / n
            if margin is not None:
                margin_net = margin * incremental - cost
    return ArmEconomics(
        arm=arm, n_arm=n, revenue_per_customer_arm=comparison.value_arm,
        revenue_per_customer_control=comparison.value_control, incremental_revenue=float(incremental),
        incremental_revenue_ci_low=low, incremental_revenue_ci_high=high, send_cost=send,
        redemption_cost=redemption, net_incremental_revenue=net, net_ci_low=net_low, net_ci_high=net_high,
        net_per_customer=per_customer, margin=margin, net_incremental_margin=margin_net,
    )  # fmt: skip


def analyze_campaign(
    table: pd.DataFrame,
    *,
    arm_col: str = "offer_id",
    control: str = CONTROL_OFFER_ID,
    outcomes: Sequence[str] = ("conversion", "revenue"),
    revenue_col: str | None = "revenue",
    margins: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> CampaignAnalysis:
    """Compare every arm of a campaign table (one row per customer) with its control.

    Outcomes holding only 0/1 are compared as rates, others as means. With `revenue_col`, each
    arm's incremental revenue is reported, net of `send_cost` + `redemption_cost` columns when
    present (see `models.campaign_outcomes.attach_costs`) and of margin when `margins` has it.
    """
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    arms = _check_arms(table, arm_col, control)
    outcomes = list(dict.fromkeys(outcomes))
    missing = [name for name in [*outcomes, *([revenue_col] if revenue_col else [])] if name not in table.columns]
    if missing:
        raise ValueError(f"outcome column(s) {missing} not in the table; columns are {list(table.columns)}")
    if revenue_col and revenue_col not in outcomes:
        outcomes.append(revenue_col)
    labels = table[arm_col].astype("str")
    control_rows = table.loc[labels == str(control)]
    kinds = {name: "binary" if is_binary(table[name]) else "continuous" for name in outcomes}
    if revenue_col:
        kinds[revenue_col] = "continuous"  # money is a mean per customer even when it is all 0/1
    comparisons, economics, notes = [], [], []
    for arm in arms:
        rows = table.loc[labels == arm]
        for outcome in outcomes:
            compare = compare_binary if kinds[outcome] == "binary" else compare_continuous
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                item = compare(
                    _values(rows[outcome], arm, outcome), _values(control_rows[outcome], str(control), outcome),
                    alpha=alpha, power=power, arm=arm, outcome=outcome,
                )  # fmt: skip
            comparisons.append(item)
            if item.underpowered:
                notes.append(_underpowered_warning(item, alpha, power))
            if item.p_value is None:
                notes.append(f"{arm} vs control on {outcome}: no variation in either group; no test possible")
            if outcome == revenue_col:
                margin = None if margins is None else margins.get(arm)
                economics.append(_economics(arm, item, rows, margin))
    notes += _design_warnings(table, labels, arms, economics, control)
    for note in notes:
        logger.info("%s", note)
    return CampaignAnalysis(
        control=str(control), alpha=alpha, power=power, comparisons=comparisons,
        economics=economics, warnings=notes,
    )  # fmt: skip


def _design_warnings(
    table: pd.DataFrame, labels: pd.Series, arms: list[str], economics: list[ArmEconomics], control: str
) -> list[str]:
    """Warnings about the design rather than one comparison: costs, windows, propensities."""
    notes = []
    no_cost = [item.arm for item in economics if item.net_incremental_revenue is None]
    if no_cost and {"send_cost", "redemption_cost"} <= set(table.columns):
        notes.append(
            f"no cost known for arm(s) {no_cost}: net incremental revenue is not reported; "
            "add them (with a cost for every channel they were sent on) to the offers catalog, "
            "or give --cost-per-send"
        )
    if "window_complete" in table.columns and not table["window_complete"].all():
        count = int((~table["window_complete"].astype(bool)).sum())
        notes.append(
            f"{count:,} customers' outcome windows end after the data does; their outcomes are "
            "undercounted (choose a shorter --window-days or wait for more data)"
        )
    if "propensity" in table.columns:
        varying = [
            arm for arm in [str(control), *arms]
            if table.loc[labels == arm, "propensity"].nunique(dropna=True) > 1
        ]
        if varying:
            notes.append(
                f"assignment probabilities differ between customers within arm(s) {varying} "
                "(a stratified or targeted assignment): the plain arm-vs-control comparison can be "
                "confounded by the strata"
            )
    return notes
