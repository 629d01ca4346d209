"""The value of an option, term by term, on literal examples computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import Catalog, load_catalog
from models.decision_value import discount_cost_per_conversion, option_value, value_terms
from models.policy import decide
from models.policy_config import NO_MESSAGE, OfferEffectPrior, PolicyConfig
from models.policy_options import OptionGrid
from models.policy_summary import summarise_decisions

NOW = "2025-06-02T12:00:00"  # a Monday, 12:00 UTC: outside default quiet hours in UTC


def catalog() -> Catalog:
    return Catalog.model_validate(
        {
            "version": "test",
            "offers": [
                {
                    "offer_id": "discount_10",
                    "kind": "discount",
                    "channels": ["email", "push"],
                    "cost_per_send": {"email": 0.01, "push": 0.002},
                    "discount_pct": 10,
                    "margin": 0.4,
                    "eligible_stages": ["active", "at_risk"],
                },
                {
                    "offer_id": "content_reminder",
                    "kind": "content",
                    "channels": ["email"],
                    "cost_per_send": {"email": 0.01},
                    "margin": 0.4,
                    "eligible_stages": ["active", "at_risk"],
                },
                {
                    "offer_id": "free_shipping",
                    "kind": "free_shipping",
                    "channels": ["email"],
                    "cost_per_send": {"email": 0.01},
                    "fixed_cost": 5.0,
                    "margin": 0.4,
                    "eligible_stages": ["active", "at_risk"],
                },
            ],
        }
    )


def customers(**columns) -> pd.DataFrame:
    """One or more consenting, eligible customers in UTC with the given model outputs."""
    n_rows = len(next(iter(columns.values()))) if columns else 1
    base = {
        "customer_id": [f"C{i}" for i in range(n_rows)],
        "timezone": ["UTC"] * n_rows,
        "email_consent": [True] * n_rows,
        "push_consent": [True] * n_rows,
        "lifecycle_stage": ["at_risk"] * n_rows,
        "avg_order_value": [100.0] * n_rows,
        "subscriber_value": [50.0] * n_rows,
        "p_convert__control": [0.30] * n_rows,
    }
    base.update(columns)
    return pd.DataFrame(base)


def config(**overrides) -> PolicyConfig:
    settings = {"holdout_share": 0.0, "exploration_share": 0.0, "channels": ("email", "push")}
    settings.update(overrides)
    return PolicyConfig(**settings)


def test_formula_on_a_literal_example():
    # 0.05 x 40 - 0.01 - 10 x 0.35 - 0.001 x 50 = 2 - 0.01 - 3.5 - 0.05
    value = option_value(0.05, 40.0, 0.01, 10.0, 0.35, 0.001, 50.0)
    assert value == pytest.approx(-1.56, abs=1e-12)
    # The same offer without a discount earns its margin.
    assert option_value(0.05, 40.0, 0.01, 0.0, 0.35, 0.001, 50.0) == pytest.approx(1.94, abs=1e-12)


def test_discount_cost_is_percent_of_order_plus_fixed_cost():
    offers = catalog().offers
    np.testing.assert_allclose(discount_cost_per_conversion(offers[0], [100.0, 30.0]), [10.0, 3.0])
    np.testing.assert_allclose(discount_cost_per_conversion(offers[1], [100.0]), [0.0])
    np.testing.assert_allclose(discount_cost_per_conversion(offers[2], [100.0]), [5.0])


def test_sure_thing_discount_loses_money_and_no_message_wins():
    # Buys anyway (30%); the discount adds 2 points: 0.02 x 0.4 x 100 = 0.8 earned,
    # 10 x 0.32 = 3.2 given away to every converter, 0.01 to send.
    frame = customers(uplift_convert__discount_10=[0.02], uplift_unsubscribe__discount_10=[0.0])
    terms = value_terms(frame, OptionGrid.from_catalog(catalog(), ("email", "push")), config())
    email = 0  # discount_10/email
    assert terms.p_convert[0, email] == pytest.approx(0.32)
    assert terms.incremental_margin[0, email] == pytest.approx(0.8)
    assert terms.discount_cost[0, email] == pytest.approx(3.2)
    assert terms.value[0, email] == pytest.approx(0.8 - 0.01 - 3.2)
    assert terms.value[0, 1] == pytest.approx(0.8 - 0.002 - 3.2)  # push: cheaper send
    decision = decide(frame, catalog(), NOW, config()).table.iloc[0]
    assert decision["offer_id"] == NO_MESSAGE
    assert "no_positive_value" in decision["reason_codes"]


def test_sleeping_dog_unsubscribe_harm_makes_no_message_win():
    # Content reminder: +1 point of conversion (0.01 x 40 = 0.4) but +2 points of unsubscribe
    # priced at a subscriber value of 50 (1.0): 0.4 - 0.01 - 0 - 1.0 = -0.61.
    frame = customers(uplift_convert__content_reminder=[0.01], uplift_unsubscribe__content_reminder=[0.02])
    grid = OptionGrid.from_catalog(catalog(), ("email",))
    terms = value_terms(frame, grid, config(channels=("email",)))
    content = grid.labels.index("content_reminder/email")
    assert terms.harm[0, content] == pytest.approx(1.0)
    assert terms.value[0, content] == pytest.approx(-0.61)
    decision = decide(frame, catalog(), NOW, config(channels=("email",))).table.iloc[0]
    assert decision["offer_id"] == NO_MESSAGE
    # Same customer without the harm: the reminder is worth sending.
    safe = customers(uplift_convert__content_reminder=[0.01], uplift_unsubscribe__content_reminder=[0.0])
    decision = decide(safe, catalog(), NOW, config(channels=("email",))).table.iloc[0]
    assert (decision["offer_id"], decision["channel"]) == ("content_reminder", "email")
    assert decision["expected_value"] == pytest.approx(0.39)
    assert decision["expected_cost"] == pytest.approx(0.01)


def test_persuadable_gets_the_discount_on_the_cheapest_channel():
    # Baseline 2%, discount adds 10 points: 0.1 x 40 = 4 earned, 10 x 0.12 = 1.2 given away.
    frame = customers(
        p_convert__control=[0.02], uplift_convert__discount_10=[0.10], uplift_unsubscribe__discount_10=[0.0]
    )
    decision = decide(frame, catalog(), NOW, config()).table.iloc[0]
    assert (decision["offer_id"], decision["channel"]) == ("discount_10", "push")
    assert decision["expected_value"] == pytest.approx(4.0 - 0.002 - 1.2)
    assert decision["expected_cost"] == pytest.approx(0.002 + 1.2)
    assert decision["expected_incremental_revenue"] == pytest.approx(0.10 * 100.0)


def test_channel_specific_columns_override_the_offer_column():
    frame = customers(
        uplift_convert__discount_10=[0.10],
        uplift_convert__discount_10__email=[0.20],
        uplift_unsubscribe__discount_10=[0.0],
        p_convert__control=[0.0],
    )
    terms = value_terms(frame, OptionGrid.from_catalog(catalog(), ("email", "push")), config())
    assert terms.uplift_convert[0, 0] == pytest.approx(0.20)  # email
    assert terms.uplift_convert[0, 1] == pytest.approx(0.10)  # push
    decision = decide(frame, catalog(), NOW, config()).table.iloc[0]
    assert decision["channel"] == "email"


def test_explicit_p_convert_is_used_else_baseline_plus_uplift_clipped():
    frame = customers(
        p_convert__control=[0.95, 0.5],
        uplift_convert__discount_10=[0.10, 0.10],
        p_convert__discount_10=[np.nan, 0.7],
    )
    terms = value_terms(frame, OptionGrid.from_catalog(catalog(), ("email",)), config(channels=("email",)))
    # Row 0: no explicit value -> baseline + uplift, clipped at 1. Row 1: the explicit 0.7.
    assert terms.p_convert[0, 0] == pytest.approx(1.0)
    assert terms.p_convert[1, 0] == pytest.approx(0.7)
    assert terms.discount_cost[:, 0] == pytest.approx([10.0, 7.0])


def test_offers_without_model_columns_are_unpriced_unless_a_prior_is_given():
    frame = customers(uplift_convert__discount_10=[0.01])
    grid = OptionGrid.from_catalog(catalog(), ("email",))
    terms = value_terms(frame, grid, config(channels=("email",)))
    content = grid.labels.index("content_reminder/email")
    assert terms.offers_without_source.tolist() == [False, True, True]
    assert np.isnan(terms.value[0, content])
    prior = {"content_reminder": OfferEffectPrior(convert=0.02, unsubscribe=0.001)}
    terms = value_terms(frame, grid, config(channels=("email",), uplift_priors=prior))
    assert terms.value[0, content] == pytest.approx(0.02 * 40 - 0.01 - 0.001 * 50)
    decision = decide(frame, catalog(), NOW, config(channels=("email",), uplift_priors=prior))
    assert decision.table.loc[0, "offer_id"] == "content_reminder"


def test_missing_order_value_needs_a_fallback():
    frame = customers(avg_order_value=[np.nan], uplift_convert__discount_10=[0.01])
    grid = OptionGrid.from_catalog(catalog(), ("email",))
    with pytest.raises(ValueError, match=r"avg_order_value.*missing for 1 of 1.*fallback"):
        value_terms(frame, grid, config(channels=("email",)))
    terms = value_terms(frame, grid, config(channels=("email",), fallback_order_value=20.0))
    assert terms.incremental_margin[0, 0] == pytest.approx(0.01 * 0.4 * 20.0)


def test_discount_without_any_conversion_probability_is_an_error():
    frame = customers(uplift_convert__discount_10=[0.01]).drop(columns="p_convert__control")
    with pytest.raises(ValueError, match=r"p_convert__discount_10.*p_convert__control"):
        value_terms(frame, OptionGrid.from_catalog(catalog(), ("email",)), config(channels=("email",)))


def test_default_catalog_loads_and_covers_the_lifecycle():
    from pathlib import Path

    import features

    default = load_catalog(Path(features.__file__).parent / "default_catalog.yaml")
    kinds = {offer.kind for offer in default.offers}
    assert {
        "onboarding",
        "reminder",
        "new_product",
        "loyalty",
        "renewal",
        "billing_alert",
        "upsell",
        "win_back",
    } <= kinds
    assert {"discount_10", "free_shipping", "content_reminder"} <= set(default.offer_ids)
    assert default.offer("billing_alert").channels[0] == "sms"


def test_summary_adds_up_messages_money_and_suppressions():
    frame = customers(
        customer_id=["a", "b", "c", "d"],
        email_consent=[True, True, False, True],
        push_consent=[False, False, False, True],
        p_convert__control=[0.02, 0.02, 0.02, 0.30],
        uplift_convert__discount_10=[0.10, 0.10, 0.10, 0.02],
    )
    decisions = decide(frame, catalog(), NOW, config())
    summary = summarise_decisions(decisions)
    assert (summary.customers, summary.messages, summary.holdout) == (4, 2, 0)
    row = summary.by_offer_channel.iloc[0]
    assert (row["offer_id"], row["channel"], row["messages"]) == ("discount_10", "email", 2)
    assert row["expected_value"] == pytest.approx(2 * (4.0 - 0.01 - 1.2))
    assert summary.expected_cost == pytest.approx(2 * (0.01 + 1.2))
    rules = summary.suppressed_by_rule.set_index("rule")
    # No push consent: a and b lose discount_10/push; c consents to nothing and loses all four
    # options. The unpriced e-mail offers (content, free shipping) count for a, b and d only,
    # because an option is counted under the first rule that removed it.
    assert rules.loc["no_consent", "customers"] == 3 and rules.loc["no_consent", "options"] == 1 + 1 + 4
    assert rules.loc["no_estimate", "customers"] == 3 and rules.loc["no_estimate", "options"] == 2 * 3
    assert summary.as_dict()["messages"] == 2


def test_minimum_gap_counts_from_the_snapshot_last_send_aged_to_now():
    # Snapshot at 10:00 says the last send was half a day earlier (22:00 the day before); the
    # decision runs at 12:00, so with a 24 h gap nothing before 22:00, which is quiet until 08:00.
    frame = customers(uplift_convert__content_reminder=[0.05], days_since_last_send=[0.5])
    decision = decide(
        frame, catalog(), "2025-01-15 12:00", config(channels=("email",)), as_of="2025-01-15 10:00"
    ).table.iloc[0]
    assert decision["offer_id"] == "content_reminder"
    assert decision["send_at"] == pd.Timestamp("2025-01-16 08:00")
    assert decision["reason_codes"].split(";")[-3:] == ["best_value", "quiet_hours_delay", "min_gap_delay"]
