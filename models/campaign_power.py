"""Power analysis for campaigns: what a control group can detect and how big it must be.

All effect sizes are standardised the statsmodels way (Cohen's h for proportions, Cohen's d for
means) and every power figure comes from `statsmodels.stats.power.NormalIndPower`, so the
numbers match what an analyst gets by calling statsmodels directly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import brentq
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

# Above this many control customers per treated customer, a bigger control no longer helps.
_MAX_CONTROL_RATIO = 1e6


def _check_probability(name: str, value: float, *, open_interval: bool = True) -> float:
    value = float(value)
    inside = 0 < value < 1 if open_interval else 0 <= value <= 1
    if not math.isfinite(value) or not inside:
        bounds = "strictly between 0 and 1" if open_interval else "between 0 and 1"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return value


def _check_sizes(n_arm: int, n_control: int) -> None:
    if n_arm < 1 or n_control < 1:
        raise ValueError(f"need at least one customer per group, got n_arm={n_arm}, n_control={n_control}")


def power_at_effect(effect_size: float, n_arm: int, n_control: int, *, alpha: float = 0.05) -> float:
    """Power of a two-sided test to detect a standardised effect with these group sizes."""
    _check_sizes(n_arm, n_control)
    if effect_size == 0 or not math.isfinite(effect_size):
        return float(alpha) if effect_size == 0 else float("nan")
    return float(
        NormalIndPower().power(abs(effect_size), nobs1=n_arm, alpha=alpha, ratio=n_control / n_arm)
    )


def minimum_detectable_effect_size(
    n_arm: int, n_control: int, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest standardised effect (h or d) a two-sided test detects with the given power."""
    _check_sizes(n_arm, n_control)
    return float(
        NormalIndPower().solve_power(
            effect_size=None, nobs1=n_arm, alpha=alpha, power=power, ratio=n_control / n_arm
        )
    )


def rate_for_effect_size(baseline_rate: float, effect_size: float) -> float:
    """The rate p1 with Cohen's h(p1, baseline) = effect_size (inverse of proportion_effectsize)."""
    angle = math.asin(math.sqrt(baseline_rate)) + effect_size / 2
    return math.sin(min(max(angle, 0.0), math.pi / 2)) ** 2


def binary_minimum_detectable_lift(
    control_rate: float, n_arm: int, n_control: int, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest absolute rise over the control's rate detectable with these group sizes."""
    effect = minimum_detectable_effect_size(n_arm, n_control, alpha=alpha, power=power)
    return rate_for_effect_size(control_rate, effect) - control_rate


def required_control_size(
    effect_size: float, n_arm: int, *, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """Control customers needed to detect `effect_size` against an arm of `n_arm` customers.

    None when no control size suffices (the arm itself is too small, or the effect is zero).
    Solved with a root finder over statsmodels' power function (its own ratio solver does not
    converge reliably).
    """
    if n_arm < 1:
        raise ValueError(f"n_arm must be at least 1, got {n_arm}")
    effect = abs(float(effect_size))
    if effect == 0 or not math.isfinite(effect):
        return None
    analysis = NormalIndPower()

    def shortfall(log_ratio: float) -> float:
        return analysis.power(effect, nobs1=n_arm, alpha=alpha, ratio=math.exp(log_ratio)) - power

    low, high = math.log(1.0 / n_arm), math.log(_MAX_CONTROL_RATIO)
    if shortfall(high) < 0:
        return None
    if shortfall(low) >= 0:
        return 1.0
    return n_arm * math.exp(brentq(shortfall, low, high, xtol=1e-12))


@dataclass(frozen=True)
class ControlGroupPlan:
    """Group sizes for a campaign that must detect a lift in a conversion rate."""

    baseline_rate: float
    target_rate: float
    absolute_lift: float
    relative_lift: float
    effect_size: float
    arms: int
    treated_share: float
    alpha: float
    power: float
    control_size: int
    treated_size_per_arm: int
    treated_size: int
    total_size: int

    def to_dict(self) -> dict:
        return asdict(self)


def plan_control_group(
    baseline_rate: float,
    min_lift: float,
    *,
    relative: bool = False,
    treated_share: float = 0.5,
    arms: int = 1,
    alpha: float = 0.05,
    power: float = 0.8,
) -> ControlGroupPlan:
    """Size the control group (and the arms) to detect `min_lift` over `baseline_rate`.

    `min_lift` is absolute (0.01 = one percentage point) unless `relative` (0.1 = +10%).
    `treated_share` of the customers are split evenly over `arms` offers, each compared to the
    control with a two-sided test at `alpha` (no multiplicity correction). Effect size is Cohen's
    h (`proportion_effectsize`), sizes from `NormalIndPower.solve_power`, rounded up.
    """
    baseline_rate = _check_probability("baseline rate", baseline_rate)
    treated_share = _check_probability("treated share", treated_share)
    alpha = _check_probability("alpha", alpha)
    power = _check_probability("power", power)
    if not isinstance(arms, int | np.integer) or arms < 1:
        raise ValueError(f"arms must be a whole number >= 1, got {arms!r}")
    if not math.isfinite(min_lift) or min_lift == 0:
        raise ValueError(f"min lift must be a non-zero number, got {min_lift!r}")
    target = baseline_rate * (1 + min_lift) if relative else baseline_rate + min_lift
    if not 0 < target < 1:
        kind = "relative" if relative else "absolute"
        raise ValueError(
            f"baseline rate {baseline_rate:g} with {kind} lift {min_lift:g} gives a target rate "
            f"{target:g} outside (0, 1); use a smaller lift (absolute lifts are fractions, 0.01 = 1 point)"
        )
    effect = float(proportion_effectsize(target, baseline_rate))
    per_arm_share = treated_share / arms
    ratio = (1 - treated_share) / per_arm_share
    n_per_arm = NormalIndPower().solve_power(
        effect_size=abs(effect), nobs1=None, alpha=alpha, power=power, ratio=ratio
    )
    treated_per_arm = math.ceil(n_per_arm)
    control = math.ceil(n_per_arm * ratio)
    return ControlGroupPlan(
        baseline_rate=baseline_rate,
        target_rate=float(target),
        absolute_lift=float(target - baseline_rate),
        relative_lift=float(target / baseline_rate - 1),
        effect_size=effect,
        arms=int(arms),
        treated_share=treated_share,
        alpha=alpha,
        power=power,
        control_size=control,
        treated_size_per_arm=treated_per_arm,
        treated_size=treated_per_arm * int(arms),
        total_size=control + treated_per_arm * int(arms),
    )
