"""Reason codes and SHAP drivers in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import Catalog
from models.policy import decide
from models.policy_config import PolicyConfig
from models.reasons import Contributions, describe_drivers, describe_reason_code, join_codes, top_drivers


def test_top_drivers_by_magnitude_with_sign_and_padding():
    values = np.array([[0.1, -0.5, 0.3, 0.0], [0.0, 0.0, 0.2, 0.0], [np.nan, 1.0, -1.0, 0.5]])
    indices, signed = top_drivers(values, 3)
    assert indices[0].tolist() == [1, 2, 0]
    assert signed[0].tolist() == [-0.5, 0.3, 0.1]
    assert indices[1].tolist()[0] == 2 and indices[1].tolist()[1:] == [-1, -1]
    assert set(indices[2, :2].tolist()) == {1, 2} and indices[2, 2] == 3  # tie order is stable


def test_recency_driver_reads_like_an_analyst_would_say_it():
    features = pd.DataFrame(
        {
            "recency_days": [64.3, 12.0, np.nan],
            "overdue_ratio": [3.04, np.nan, np.nan],
            "email_open_rate_365d": [0.124, 0.5, 0.2],
            "email_unsubscribed": [1, 0, 0],
            "rfm_segment": pd.array(["D", "A", None], dtype="str"),
        }
    )
    contributions = Contributions(
        [[0.40, 0.0, -0.1, 0.0, 0.05], [0.3, 0.0, 0.0, 0.2, -0.1], [0.2, 0.1, 0.0, 0.0, 0.3]],
        list(features.columns),
    )
    drivers = describe_drivers(contributions, features, top_k=3)
    assert drivers[0] == (
        "no order for 64 days, 3.0x the usual gap (raises risk); email open rate 12% over 365 days "
        "(lowers risk); RFM segment D (raises risk)"
    )
    assert drivers[1] == (
        "no order for 12 days (raises risk); never unsubscribed on email (raises risk); RFM segment A (lowers risk)"
    )
    assert drivers[2] == (
        "no RFM segment (no orders) (raises risk); no order yet (raises risk); "
        "fewer than two orders, no usual gap yet (raises risk)"
    )


def test_unknown_features_fall_back_to_name_and_value():
    features = pd.DataFrame({"mystery_score": [1.23456], "colour": pd.array(["red"], dtype="str")})
    drivers = describe_drivers(Contributions([[0.2, -0.1]], ["mystery_score", "colour"]), features, top_k=2)
    assert drivers[0] == "mystery_score = 1.23 (raises risk); colour = red (lowers risk)"


def test_driver_phrases_are_formatted_per_distinct_value_not_per_row():
    n = 50_000
    rng = np.random.default_rng(0)
    features = pd.DataFrame({"recency_days": rng.integers(0, 365, n).astype(float), "tenure_days": rng.random(n) * 900})
    contributions = Contributions(np.column_stack([np.ones(n), np.full(n, 0.5)]), list(features.columns))
    drivers = describe_drivers(contributions, features, top_k=2)
    expected = [f"no order for {int(r)} days (raises risk)" for r in features["recency_days"][:3]]
    assert [text.split("; ")[0] for text in drivers[:3]] == expected
    assert all(text.count("; ") == 1 for text in drivers[:100])


def test_join_codes_keeps_column_order():
    flags = np.array([[True, False, True], [False, False, False], [True, False, True], [False, True, False]])
    assert join_codes(flags, ["holdout", "no_email_consent", "cooldown:discount_10"]).tolist() == [
        "holdout;cooldown:discount_10",
        "",
        "holdout;cooldown:discount_10",
        "no_email_consent",
    ]
    with pytest.raises(ValueError, match="shape"):
        join_codes(flags, ["a"])


def test_reason_codes_in_plain_words():
    assert describe_reason_code("no_email_consent") == "no consent for email"
    assert describe_reason_code("unsubscribed_sms") == "unsubscribed from sms"
    assert describe_reason_code("cooldown:discount_10") == "offer sent within its cooldown (discount_10)"
    assert describe_reason_code("frequency_cap") == "frequency cap reached for the rolling window"


def test_decisions_carry_churn_and_chosen_offer_drivers():
    catalog = Catalog.model_validate(
        {
            "version": "t",
            "offers": [
                {
                    "offer_id": offer_id,
                    "kind": "content",
                    "channels": ["email"],
                    "cost_per_send": {"email": 0.01},
                    "margin": 0.4,
                    "eligible_stages": ["at_risk"],
                }
                for offer_id in ("first", "second")
            ],
        }
    )
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "email_consent": [True, True, False],
            "lifecycle_stage": ["at_risk"] * 3,
            "avg_order_value": [100.0] * 3,
            "subscriber_value": [10.0] * 3,
            "recency_days": [64.0, 20.0, 5.0],
            "overdue_ratio": [3.0, 1.0, 0.5],
            "tenure_days": [400.0, 30.0, 10.0],
            "uplift_convert__first": [0.05, 0.01, 0.05],
            "uplift_convert__second": [0.01, 0.05, 0.01],
        }
    )
    names = ["recency_days", "tenure_days"]
    config = PolicyConfig(holdout_share=0.0, exploration_share=0.0, top_k_drivers=1)
    decisions = decide(
        frame,
        catalog,
        "2025-01-15 12:00",
        config,
        churn_contributions=Contributions([[0.3, 0.1], [0.0, -0.2], [0.1, 0.0]], names),
        uplift_contributions={
            "first": Contributions([[0.0, 0.02], [0.01, 0.0], [0.0, 0.0]], names),
            "second": Contributions([[0.0, 0.0], [0.0, -0.03], [0.0, 0.0]], names),
        },
    ).table
    assert decisions["offer_id"].tolist() == ["first", "second", "no_message"]
    assert decisions["churn_drivers"].tolist() == [
        "no order for 64 days, 3.0x the usual gap (raises risk)",
        "customer for 30 days (lowers risk)",
        "no order for 5 days, 0.5x the usual gap (raises risk)",
    ]
    assert decisions["uplift_drivers"].tolist() == [
        "customer for 400 days (raises uplift)",
        "customer for 30 days (lowers uplift)",
        "",
    ]
    assert decisions.loc[2, "reason_codes"] == "no_email_consent;no_eligible_option"
    assert decisions.loc[0, "reason_codes"] == "best_value"
