"""The report's parts on small exact inputs: Qini bands, segment table, stored decisions, HTML."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.explain import weighted_qini_curves
from models.policy import Decisions
from models.uplift_metrics import qini_curve
from models.uplift_resampling import bootstrap_weights
from training.report import Report, render_report, write_report
from training.report_decisions import align_decisions, decisions_section, segment_table
from training.report_figures import embed_figure
from training.report_models import Section


def _uplift_data(rows: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    treated = rng.integers(0, 2, rows)
    score = rng.normal(size=rows)
    converted = (rng.random(rows) < 0.2 + 0.2 * treated * (score > 0)).astype(float)
    return converted, score, treated


def test_unit_weight_qini_curve_is_the_metric_curve_rescaled() -> None:
    y, score, treated = _uplift_data()
    x, gain = qini_curve(y, score, treated)
    fractions = x / len(y)
    ours = weighted_qini_curves(y, score, treated, np.ones((1, len(y))), fractions)[0]
    np.testing.assert_allclose(ours, gain / len(y), atol=1e-12)


def test_bootstrap_band_contains_the_curve_and_narrows_with_more_rows() -> None:
    grid = np.linspace(0, 1, 21)
    widths = []
    for rows in (300, 6000):
        y, score, treated = _uplift_data(rows, seed=1)
        weights = bootstrap_weights(treated, 200, np.random.default_rng(0))
        curves = weighted_qini_curves(y, score, treated, weights, grid)
        low, high = np.quantile(curves, [0.05, 0.95], axis=0)
        curve = weighted_qini_curves(y, score, treated, np.ones((1, rows)), grid)[0]
        assert (low[1:] <= curve[1:] + 1e-12).all() and (curve[1:] <= high[1:] + 1e-12).all()
        widths.append(float(np.mean(high - low)))
    assert widths[1] < widths[0] / 2


def test_weighted_qini_curves_rejects_mismatched_weights() -> None:
    y, score, treated = _uplift_data(50)
    with pytest.raises(ValueError, match="one entry per row"):
        weighted_qini_curves(y, score, treated, np.ones((2, 49)), [0.5])


def _decisions() -> tuple[pd.DataFrame, Decisions]:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "rfm_segment": ["A", "A", "B", None],
            "lifecycle_stage": ["active", "active", "lapsed", "lapsed"],
        }
    )
    table = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "offer_id": ["discount_10", "no_message", "discount_10", "free_shipping"],
            "channel": ["email", None, "sms", "email"],
            "churn_risk": [0.2, 0.4, 0.9, 0.5],
            "holdout": [False, True, False, False],
            "explored": [False, False, True, False],
            "expected_value": [1.0, 0.0, 2.0, 0.5],
            "expected_incremental_revenue": [3.0, 0.0, 4.0, 1.0],
            "expected_cost": [0.5, 0.0, 0.7, 0.1],
        }
    )
    suppression = np.array([[0, 2], [1, 1], [0, 0], [0, 2]], dtype=np.uint8)
    values = np.ones((4, 2), dtype=np.float32)
    return frame, Decisions(table, ("discount_10/email", "free_shipping/email"), suppression, values)


def test_segment_table_counts_risk_and_decision_mix() -> None:
    frame, decisions = _decisions()
    table = segment_table(frame, decisions).set_index(["rfm_segment", "lifecycle_stage"])
    assert table.loc[("A", "active"), "customers"] == 2
    assert table.loc[("A", "active"), "mean_churn_risk"] == pytest.approx(0.3)
    assert table.loc[("A", "active"), "messaged"] == pytest.approx(0.5)
    assert table.loc[("A", "active"), "share discount_10"] == pytest.approx(0.5)
    assert table.loc[("none", "lapsed"), "share free_shipping"] == pytest.approx(1.0)
    assert table["customers"].sum() == 4


def test_segment_table_names_missing_columns() -> None:
    frame, decisions = _decisions()
    with pytest.raises(ValueError, match="rfm_segment"):
        segment_table(frame.drop(columns=["rfm_segment"]), decisions)


def test_stored_decisions_are_aligned_by_customer_and_checked() -> None:
    _, decisions = _decisions()
    stored = decisions.table.iloc[::-1].reset_index(drop=True)
    stored.loc[stored["customer_id"] == "a", "expected_value"] = 10.0
    aligned = align_decisions(decisions, stored)
    assert list(aligned.table["customer_id"]) == ["a", "b", "c", "d"]
    assert aligned.table["expected_value"].iloc[0] == 10.0
    with pytest.raises(ValueError, match="same --data and --as-of"):
        align_decisions(decisions, stored.iloc[:3])


def test_decision_section_totals_and_suppressions() -> None:
    _, decisions = _decisions()
    section = decisions_section(decisions, stored=False)
    assert section.metrics["decisions_messages"] == 3
    assert section.metrics["decisions_holdout"] == 1
    assert section.metrics["decisions_expected_cost"] == pytest.approx(1.3)
    suppressions = next(html for caption, html in section.tables if caption.startswith("Suppressed"))
    holdout_row = re.search(r"<td>holdout</td>\s*<td>([\d,]+)</td>\s*<td>([\d,]+)</td>", suppressions)
    assert holdout_row and holdout_row.groups() == ("1", "2")


def test_rendered_html_is_self_contained_and_escaped(tmp_path) -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    section = Section("churn", "Churn <model>", notes=["a & b"], images=[embed_figure(figure, "img-1", "x")])
    report = Report(pd.Timestamp("2025-09-01"), "models:/nbo@champion", {"model": "m"}, [section], {"snapshot": 1.0})
    html = render_report(report)
    assert "Churn &lt;model&gt;" in html and "a &amp; b" in html
    assert 'src="data:image/png;base64,' in html
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"(https?:)?//[a-z]", without_images)  # no external or protocol-relative URL
    path = write_report(html, tmp_path / "sub" / "r.html")
    assert path.read_text(encoding="utf-8") == html
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]
