"""Drift statistics on small exact fixtures, each value checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.drift import (
    DriftConfig,
    Threshold,
    categorical_psi,
    compare_mix,
    drift_report,
    missing_share,
    numeric_psi,
    numeric_shares,
    out_of_range_share,
    overall_status,
    quantile_edges,
)

EPSILON = 1e-4


def test_identical_samples_have_zero_psi() -> None:
    values = np.random.default_rng(0).gamma(2.0, size=500)
    with_missing = np.append(values, [np.nan] * 20)
    assert numeric_psi(values, values) == 0.0
    assert numeric_psi(with_missing, with_missing) == 0.0
    labels = ["a", "b", None, "b", "c"]
    assert categorical_psi(labels, labels) == 0.0


def test_two_bin_example_matches_the_hand_computation() -> None:
    # Reference median 0.5 splits (<0.5) and (>0.5): shares 1/2, 1/2 against 1/4, 3/4.
    psi = numeric_psi([0, 0, 1, 1], [0, 1, 1, 1], bins=2)
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi == pytest.approx(expected, abs=1e-12)
    assert psi == pytest.approx(0.274653, abs=1e-6)


def test_psi_is_not_symmetric_but_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=4000)
    small, large = numeric_psi(reference, reference + 0.2), numeric_psi(reference, reference + 1.0)
    assert 0.0 < small < 0.1 < 0.25 < large


def test_missing_values_are_their_own_bin() -> None:
    # Reference: 0, 1 and two NaN; current: 0, 1, 0, 1 (no NaN). Bins (<0.5), [0.5], (>0.5), NaN.
    reference, current = [0.0, 1.0, np.nan, np.nan], [0.0, 1.0, 0.0, 1.0]
    assert numeric_shares(reference, quantile_edges(reference, 2)).tolist() == [0.25, 0.0, 0.25, 0.5]
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + (EPSILON - 0.5) * math.log(EPSILON / 0.5)
    assert numeric_psi(reference, current, bins=2, epsilon=EPSILON) == pytest.approx(expected, rel=1e-12)
    assert missing_share(reference) == 0.5 and missing_share(current) == 0.0
    # Only values turning missing, nothing else moves: still drift.
    assert numeric_psi([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, np.nan], bins=2) > 0.25


def test_point_masses_are_compared_exactly_at_either_end() -> None:
    # 95% zeros: every inner quantile is 0, so the only edge is 0 and [0] is its own bin.
    reference = [0] * 95 + [1] * 5
    current = [0] * 70 + [1] * 30
    expected = (0.70 - 0.95) * math.log(0.70 / 0.95) + (0.30 - 0.05) * math.log(0.30 / 0.05)
    assert numeric_psi(reference, current) == pytest.approx(expected, rel=1e-12)
    # 95% ones: the mass sits at the top.
    flipped_reference = [1 - value for value in reference]
    flipped_current = [1 - value for value in current]
    assert numeric_psi(flipped_reference, flipped_current) == pytest.approx(expected, rel=1e-12)


def test_categorical_psi_by_category_share() -> None:
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert categorical_psi(["a", "a", "b", "b"], ["a", "a", "a", "b"]) == pytest.approx(expected, abs=1e-12)
    # A vanished and a new category each use epsilon for the empty side.
    new = 2 * (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert categorical_psi(["a", "b"], ["a", "c"], epsilon=EPSILON) == pytest.approx(new, rel=1e-12)
    # Missing is a category of its own.
    assert categorical_psi(["a", None], ["a", "a"], epsilon=EPSILON) == pytest.approx(
        (1.0 - 0.5) * math.log(1.0 / 0.5) + (EPSILON - 0.5) * math.log(EPSILON / 0.5), rel=1e-12
    )


def test_out_of_range_share() -> None:
    reference = np.arange(11.0)  # [0, 10]
    assert out_of_range_share(reference, [-1.0, 5.0, 11.0, 12.0]) == 0.75
    assert out_of_range_share(reference, [0.0, 10.0, np.nan]) == 0.0
    # Robust range: the [0.1, 0.9] quantiles are [1, 9].
    assert out_of_range_share(reference, [0.0, 5.0, 10.0, 9.0], quantile=0.1) == 0.5
    assert np.isnan(out_of_range_share([np.nan], [1.0]))


def test_decision_mix_psi_and_chi_square() -> None:
    reference = ["no_message"] * 60 + ["discount_10"] * 30 + ["free_shipping"] * 10
    current = ["no_message"] * 40 + ["discount_10"] * 50 + ["free_shipping"] * 10
    mix = compare_mix(reference, current)
    expected_psi = (0.5 - 0.3) * math.log(0.5 / 0.3) + (0.4 - 0.6) * math.log(0.4 / 0.6)
    assert mix.psi == pytest.approx(expected_psi, abs=1e-12)
    table = np.array([[30, 10, 60], [50, 10, 40]])
    chi_square, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert mix.chi_square == pytest.approx(chi_square) and mix.p_value == pytest.approx(p_value)
    assert mix.shares.loc["free_shipping"].tolist() == [0.1, 0.1]


def test_thresholds_and_status() -> None:
    threshold = Threshold(warn=0.1, alert=0.25)
    assert [threshold.status(value) for value in (0.0, 0.1, 0.2, 0.25, 3.0)] == ["ok", "warn", "warn", "alert", "alert"]
    assert threshold.status(float("nan")) == "ok"
    with pytest.raises(ValueError, match="below the warn threshold"):
        Threshold(warn=0.3, alert=0.2)
    with pytest.raises(ValueError, match="unknown statuses"):
        overall_status(["ok", "bad"])
    assert overall_status(["ok", "warn", "ok"]) == "warn" and overall_status([]) == "ok"


def _frames(rows: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(rows)],
            "stable": rng.normal(size=rows),
            "moved": rng.normal(size=rows),
            "segment": rng.choice(["A", "B", "C"], size=rows),
            "label_churned": rng.integers(0, 2, rows),
        }
    )
    current = reference.copy()
    current["moved"] = current["moved"] + 1.5
    return reference, current


def test_drift_report_flags_only_what_moved() -> None:
    reference, current = _frames()
    result = drift_report(reference, current)
    assert result.status == "alert"
    assert result.flagged("psi") == ["moved"]
    assert result.value("stable") == 0.0 and result.value("segment") == 0.0
    assert "label_churned" not in set(result.table["column"]) and "customer_id" not in set(result.table["column"])
    assert result.value("moved", "range") > 0.05  # values beyond the reference's maximum
    assert result.table["status"].iloc[0] == "alert"  # worst first
    quiet = drift_report(reference, current, DriftConfig(ignore=("moved",)))
    assert quiet.status == "ok" and "moved" not in set(quiet.table["column"])


def test_drift_report_scores_and_decisions() -> None:
    reference, _ = _frames()
    scores = pd.DataFrame({"churn_risk": np.linspace(0, 1, len(reference))})
    result = drift_report(
        reference, reference, reference_scores=scores, current_scores=scores ** 0.5,
        reference_decisions=["no_message"] * 400, current_decisions=["no_message"] * 200 + ["discount_10"] * 200,
    )  # fmt: skip
    rows = result.table.set_index(["group", "column", "check"])["status"]
    assert rows[("score", "churn_risk", "psi")] == "alert"
    assert rows[("decision", "offer_id", "decision_mix")] == "alert"
    assert rows[("feature", "moved", "psi")] == "ok"


def test_drift_report_input_errors() -> None:
    reference, current = _frames()
    with pytest.raises(ValueError, match=r"lacks 1 columns of the reference.*segment"):
        drift_report(reference, current.drop(columns="segment"))
    with pytest.raises(ValueError, match="has 5 rows"):
        drift_report(reference, current.head(5))
    with pytest.raises(ValueError, match="both populations"):
        drift_report(reference, current, reference_scores=reference[["stable"]])
    with pytest.raises(ValueError, match="bins"):
        DriftConfig(bins=1)
