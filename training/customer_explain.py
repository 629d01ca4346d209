"""`nbo explain CUSTOMER_ID`: one customer's features, churn risk and drivers, and every offer's value.

The churn and uplift contributions are the ones the service's `/explain` returns (LightGBM
TreeSHAP via `models.contributions`, top-k by |contribution|); the option table is the policy's
own (`models.policy.decide` with `keep_terms=True`): for every (offer, channel) its value and
terms, or the hard rule that removed it. `explanation_figure` draws it all as one picture with a
SHAP waterfall of the churn risk.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.contributions import churn_contributions, uplift_contributions
from models.policy import decide
from models.policy_config import NO_MESSAGE
from models.reasons import Contributions
from training.nbo_model import NboModel

logger = logging.getLogger(__name__)

__all__ = [
    "CustomerExplanation",
    "explain_customer",
    "explanation_figure",
    "format_value",
    "select_customer",
    "top_contributions",
]

#: Option table columns, in the order they are shown.
OPTION_COLUMNS = (
    "offer_id", "channel", "value", "uplift_convert", "p_convert", "incremental_margin", "send_cost",
    "discount_cost", "harm", "suppressed_by",
)  # fmt: skip
DECISION_FIELDS = ("offer_id", "channel", "send_at", "expected_value", "holdout", "explored", "reason_codes")


@dataclass
class CustomerExplanation:
    """What `nbo explain` shows for one customer.

    `churn` and `uplift` are the /explain contributions: (feature, the customer's value, SHAP),
    strongest first; `waterfall` is the full single-row SHAP explanation of churn risk (log-odds);
    `options` one row per (offer, channel) with its value terms or the rule that removed it.
    """

    customer_id: str
    features: pd.DataFrame
    churn_risk: float | None
    churn: list[tuple[str, Any, float]]
    offer_id: str | None
    uplift: list[tuple[str, Any, float]]
    decision: dict[str, Any]
    options: pd.DataFrame
    waterfall: Any | None


def top_contributions(
    contributions: Contributions, frame: pd.DataFrame, top_k: int
) -> list[list[tuple[str, Any, float]]]:
    """Per row, the top-k (feature, the row's value, contribution) by |contribution| (as /explain)."""
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    values, names = contributions.values, contributions.feature_names
    order = np.argsort(-np.abs(np.nan_to_num(values)), axis=1, kind="stable")[:, :top_k]
    return [
        [
            (names[k], frame[names[k]].iloc[row] if names[k] in frame.columns else None, float(values[row, k]))
            for k in order[row]
        ]
        for row in range(len(values))
    ]


def select_customer(frame: pd.DataFrame, customer_id: str) -> pd.DataFrame:
    """The one-row decision input of `customer_id`; ValueError with example ids when unknown."""
    ids = frame["customer_id"].astype(str)
    rows = frame[ids == str(customer_id)]
    if rows.empty:
        examples = ", ".join(ids.head(3))
        raise ValueError(
            f"customer {customer_id!r} is not in the snapshot ({len(frame):,} customers, e.g. {examples}); "
            "check the id, or the --as-of time (customers appear after their first order or sign-up)"
        )
    return rows.head(1).reset_index(drop=True)


def _feature_table(model: NboModel, row: pd.DataFrame) -> pd.DataFrame:
    """The customer's values of every feature the models read (plus segment and lifecycle stage)."""
    wanted = ["rfm_segment", model.config.lifecycle_column, *model.required_columns()]
    names = [name for name in dict.fromkeys(wanted) if name in row.columns]
    return pd.DataFrame({"feature": names, "value": [row[name].iloc[0] for name in names]})


def explain_customer(
    model: NboModel, row: pd.DataFrame, *, now: object, as_of: object | None = None, top_k: int = 8
) -> CustomerExplanation:
    """Explain the decision for the single customer in `row` (decision input: snapshot + context)."""
    from models import explain

    if len(row) != 1:
        raise ValueError(f"explain_customer takes exactly one customer row, got {len(row)}")
    row = row.reset_index(drop=True)
    # Score uplift for every option (no `now`): a blocked customer's table then still shows what each option
    # would be worth; the rules decide exactly as in a batch.
    scored, _ = model.decision_inputs(row)
    decisions = decide(
        scored, model.catalog, now, model.config, as_of=as_of, send_time_model=model.send_time_model, keep_terms=True
    )
    chosen = decisions.table.iloc[0]
    options = decisions.options_for(0)
    options = options[[column for column in OPTION_COLUMNS if column in options.columns]]
    churn_risk, churn, waterfall = None, [], None
    if model.churn_model is not None:
        features = row[[str(name) for name in model.churn_model.feature_names_in_]]
        churn_risk = float(model.churn_model.predict_proba(features)[:, 1][0])
        churn = top_contributions(churn_contributions(model.churn_model, features), row, top_k)[0]
        waterfall = explain.churn_shap_values(model.churn_model, features, max_rows=None)[0]
    offer_id = None if chosen["offer_id"] == NO_MESSAGE else str(chosen["offer_id"])
    uplift: list[tuple[str, Any, float]] = []
    learner = None if model.uplift_models is None else model.uplift_models.learners.get("convert")
    if offer_id is not None and learner is not None and offer_id in model.uplift_models.arms:
        contributions = uplift_contributions(learner, row[list(model.uplift_models.feature_columns)], offer_id)
        if contributions is not None:
            uplift = top_contributions(contributions, row, top_k)[0]
    decision = {name: chosen[name] for name in DECISION_FIELDS if name in chosen.index}
    return CustomerExplanation(
        customer_id=str(row["customer_id"].iloc[0]), features=_feature_table(model, row), churn_risk=churn_risk,
        churn=churn, offer_id=offer_id, uplift=uplift, decision=decision, options=options, waterfall=waterfall,
    )  # fmt: skip


def format_value(value: Any) -> str:
    """A cell's text: blank for missing, 4 decimals for small floats, 2 for large."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def explanation_figure(explanation: CustomerExplanation, max_display: int = 12) -> Any:
    """One picture: header (risk, decision), the churn SHAP waterfall, the customer's top features
    and the table of every offer's value or the rule that removed it."""
    from matplotlib import image as mpimg
    from matplotlib.figure import Figure

    from models import explain
    from training.report_figures import figure_png

    options = explanation.options
    figure = Figure(figsize=(14, 8.5 + 0.28 * len(options)))
    grid = figure.add_gridspec(2, 2, height_ratios=[3, 1.2 + 0.12 * len(options)], width_ratios=[3, 2])
    risk = "n/a" if explanation.churn_risk is None else f"{explanation.churn_risk:.1%}"
    decision = explanation.decision
    chosen = "no message" if explanation.offer_id is None else f"{explanation.offer_id} by {decision.get('channel')}"
    figure.suptitle(
        f"Customer {explanation.customer_id}: churn risk {risk}; decision: {chosen} "
        f"(expected value {format_value(decision.get('expected_value'))})",
        fontsize=13,
    )
    shap_axes = figure.add_subplot(grid[0, 0])
    shap_axes.axis("off")
    if explanation.waterfall is not None:
        waterfall = explain.waterfall_figure(
            explanation.waterfall, max_display=max_display, title="Churn risk (SHAP, log-odds)"
        )
        shap_axes.imshow(mpimg.imread(io.BytesIO(figure_png(waterfall, dpi=100)), format="png"))
    else:
        shap_axes.text(0.5, 0.5, "no churn model", ha="center")
    feature_axes = figure.add_subplot(grid[0, 1])
    feature_axes.axis("off")
    top = explanation.churn[:max_display]
    feature_axes.set_title("Strongest churn drivers (as /explain)", fontsize=10)
    if top:
        table = feature_axes.table(
            cellText=[[name, format_value(value), f"{shap:+.3f}"] for name, value, shap in top],
            colLabels=["feature", "value", "SHAP"], loc="upper center", cellLoc="left",
        )  # fmt: skip
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width(col=[0, 1, 2])
        table.scale(1, 1.3)
    option_axes = figure.add_subplot(grid[1, :])
    option_axes.axis("off")
    option_axes.set_title("Every option: value terms, or the rule that removed it", fontsize=10)
    cells = [[format_value(row[column]) for column in options.columns] for _, row in options.iterrows()]
    table = option_axes.table(cellText=cells, colLabels=list(options.columns), loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(col=list(range(len(options.columns))))
    table.scale(1, 1.25)
    return figure
