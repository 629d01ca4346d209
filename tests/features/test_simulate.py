"""The simulated world: contract-valid, deterministic, and its ground truth agrees with the rows.

Statistical checks use one 40,000-customer world (a few seconds) and tolerances of four
standard errors, so they fail when truth and realisation disagree, not by chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import CONTROL_OFFER_ID, validate_tables
from features.simulate import World, read_world_meta, simulate_world, write_world

OFFERS = ("discount_10", "free_shipping", "content_reminder")
WINDOW = pd.Timedelta(days=14)


@pytest.fixture(scope="module")
def world() -> World:
    return simulate_world(40_000, months=12, seed=11)


@pytest.fixture(scope="module")
def outcomes(world: World) -> pd.DataFrame:
    """Each exposure with its realised 14-day conversion, revenue and unsubscribe."""
    exposures = world.tables["exposures"].reset_index(names="row")
    keys = exposures[["row", "customer_id", "assigned_at"]]

    def in_window(frame: pd.DataFrame) -> pd.DataFrame:
        joined = keys.merge(frame, on="customer_id")
        inside = (joined["ts"] >= joined["assigned_at"]) & (joined["ts"] < joined["assigned_at"] + WINDOW)
        return joined[inside]

    orders = in_window(world.tables["transactions"][["customer_id", "ts", "amount"]])
    events = world.tables["events"]
    quits = in_window(events.loc[events["event_type"] == "unsubscribe", ["customer_id", "ts"]])
    revenue = orders.groupby("row")["amount"].sum()
    return exposures.assign(
        converted=exposures["row"].isin(orders["row"]).astype(float),
        revenue=exposures["row"].map(revenue).fillna(0.0),
        unsubscribed=exposures["row"].isin(quits["row"]).astype(float),
    )


def _arm_mean(frame: pd.DataFrame, outcome: str, arm: str) -> tuple[float, float]:
    """Inverse-propensity (Hajek) mean of an outcome in one arm, and its standard error."""
    rows = frame[frame["offer_id"] == arm]
    weights = 1.0 / rows["propensity"]
    mean = float((weights * rows[outcome]).sum() / weights.sum())
    residual = weights * (rows[outcome] - mean)
    return mean, float(np.sqrt((residual**2).sum()) / weights.sum())


# ----------------------------------------------------------------------------------------------
# Shape, contract, determinism, inputs
# ----------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_another_seed_differs():
    first = simulate_world(800, months=4, seed=3)
    second = simulate_world(800, months=4, seed=3)
    other = simulate_world(800, months=4, seed=4)
    assert first.tables.keys() == second.tables.keys()
    for name, frame in first.tables.items():
        pd.testing.assert_frame_equal(frame, second.tables[name], check_exact=True)
    assert first.meta == second.meta
    assert not first.tables["transactions"].equals(other.tables["transactions"])
    assert not first.tables["ground_truth"].equals(other.tables["ground_truth"])


def test_contract_tables_validate_and_already_have_contract_types(world: World):
    tables = world.contract_tables()
    assert set(tables) == {"customers", "transactions", "events", "exposures", "subscriptions"}
    validated = validate_tables(tables, as_of=pd.Timestamp(world.meta["end"]))
    for name, frame in tables.items():
        # Coercion changes nothing: the simulator emits the contract's types directly.
        pd.testing.assert_frame_equal(validated[name], frame.reset_index(drop=True))
    customers = tables["customers"]
    assert customers["customer_id"].iloc[0] == "C0000001"
    assert str(customers["customer_id"].dtype) == "str"
    for name, column in [("transactions", "ts"), ("events", "ts"), ("exposures", "assigned_at")]:
        assert tables[name][column].dtype == "datetime64[us]"
    assert set(tables["exposures"]["offer_id"]) == {CONTROL_OFFER_ID, *OFFERS}


def test_world_looks_like_a_shop(world: World):
    customers, truth = world.tables["customers"], world.tables["ground_truth"]
    start, n = pd.Timestamp(world.meta["start"]), len(customers)
    onboarding = (customers["signup_at"] >= start).mean()
    assert 0.15 < onboarding < 0.5
    consent = customers[["email_consent", "sms_consent", "push_consent"]].mean()
    assert consent["email_consent"] > max(consent["sms_consent"], consent["push_consent"]) > 0.1
    assert customers["unsubscribed_at"].notna().mean() > 0.01
    assert customers["timezone"].nunique() >= 5
    transactions = world.tables["transactions"]
    assert 150 <= transactions["product_id"].nunique() <= 200
    assert transactions["category"].nunique() == 12
    assert 0.05 < (transactions["discount_amount"] > 0).mean() < 0.4
    events = world.tables["events"]
    assert set(events["event_type"]) == {
        "send", "open", "click", "unsubscribe", "bounce", "complaint", "visit", "login",
        "feature_use", "support_ticket", "payment_failed",
    }  # fmt: skip
    rows_per_customer = (len(transactions) + len(events)) / n
    assert 25 < rows_per_customer < 50
    subscriptions = world.tables["subscriptions"]
    assert 0.12 < len(subscriptions) / n < 0.3
    assert set(subscriptions["status"]) == {"active", "cancelled", "past_due"}
    assert len(truth) == n and truth["customer_id"].equals(customers["customer_id"])
    assert 0.3 < truth["alive_at_end"].mean() < 0.8
    assert (truth["churned_at"].isna() == truth["alive_at_end"]).all()


def test_campaigns_are_spread_over_the_window_with_control_and_three_offers(world: World):
    campaigns = world.meta["campaigns"]
    assert len(campaigns) >= 4
    dates = pd.to_datetime([campaign["date"] for campaign in campaigns])
    start, end = pd.Timestamp(world.meta["start"]), pd.Timestamp(world.meta["end"])
    assert dates.min() < start + (end - start) / 4 and dates.max() > start + (end - start) * 3 / 4
    assert all(dates + WINDOW <= end)
    exposures = world.tables["exposures"]
    assert not exposures.duplicated(["customer_id", "campaign_id"]).any()
    for campaign in campaigns:
        arms = exposures.loc[exposures["campaign_id"] == campaign["campaign_id"], "offer_id"]
        assert set(arms) == {CONTROL_OFFER_ID, *OFFERS}


def test_treated_customers_get_a_campaign_send_and_control_none(world: World):
    exposures, events = world.tables["exposures"], world.tables["events"]
    sends = events[(events["event_type"] == "send") & events["campaign_id"].notna()]
    joined = exposures.merge(
        sends[["customer_id", "campaign_id", "offer_id", "ts", "channel"]],
        on=["customer_id", "campaign_id"], how="left", suffixes=("", "_send"),
    )  # fmt: skip
    treated = joined["offer_id"] != CONTROL_OFFER_ID
    assert (joined.loc[treated, "offer_id_send"] == joined.loc[treated, "offer_id"]).all()
    assert (joined.loc[treated, "ts"] == joined.loc[treated, "assigned_at"]).all()
    assert (joined.loc[treated, "channel_send"] == joined.loc[treated, "channel"]).all()
    assert joined.loc[~treated, "ts"].isna().all()


def test_write_world_and_read_meta_round_trip(tmp_path):
    world = simulate_world(300, months=2, seed=1)
    out = write_world(world, tmp_path / "world")
    assert read_world_meta(out) == world.meta
    for name, frame in world.tables.items():
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"), frame)
    with pytest.raises(FileNotFoundError, match=r"world\.json"):
        read_world_meta(tmp_path)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n_customers": 0}, "n_customers must be >= 1, got 0"),
        ({"n_customers": 10.5}, "n_customers must be a whole number"),
        ({"n_customers": 10, "months": 0}, "months must be between 1 and"),
        ({"n_customers": 10, "seed": -1}, "seed must be >= 0"),
        ({"n_customers": 10, "start": "not a date"}, "start must be a date"),
        ({"n_customers": 10, "start": "2025-01-01 13:00"}, "midnight"),
        ({"n_customers": 10, "progress": 3}, "progress must be a callable"),
    ],
)
def test_bad_inputs_raise_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        simulate_world(**arguments)


def test_progress_is_reported_in_order_up_to_done():
    calls = []
    simulate_world(200, months=2, seed=0, progress=lambda stage, done: calls.append((stage, done)))
    fractions = [done for _, done in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and calls[-1] == ("done", 1.0)
    assert {"customers", "campaigns", "orders", "ground truth"} <= {stage for stage, _ in calls}


def test_a_one_month_world_still_has_four_campaigns_inside_it():
    world = simulate_world(500, months=1, seed=2)
    end = pd.Timestamp(world.meta["end"])
    assert len(world.meta["campaigns"]) == 4
    assert (world.tables["exposures"]["assigned_at"] + WINDOW <= end).all()
    validate_tables(world.contract_tables())


# ----------------------------------------------------------------------------------------------
# Ground truth and its agreement with the rows
# ----------------------------------------------------------------------------------------------


def test_true_effects_are_heterogeneous_with_both_signs(world: World):
    truth = world.tables["ground_truth"]
    alive = truth[truth["alive_at_end"]]
    for offer in OFFERS:
        tau = alive[f"tau_convert_{offer}"]
        assert tau.std() > 0.01, offer
        assert (tau > 0.01).mean() > 0.05 and (tau < -0.01).mean() > 0.02, offer
        assert (alive[f"tau_unsubscribe_{offer}"] > 0).all()
        # An effect is a difference of probabilities, so it stays inside [-p0, 1 - p0].
        p0 = alive["p_convert_control"]
        assert ((tau >= -p0 - 1e-12) & (tau <= 1 - p0 + 1e-12)).all()


def test_sure_things_and_sleeping_dogs_exist(world: World):
    alive = world.tables["ground_truth"].query("alive_at_end")
    baseline = pd.qcut(alive["p_convert_control"], 10, labels=False)
    top, middle = alive[baseline == 9], alive[baseline.between(3, 6)]
    # Sure things: buy anyway, so the discount barely lifts conversion yet costs revenue.
    assert top["tau_convert_discount_10"].mean() < 0.5 * middle["tau_convert_discount_10"].mean()
    assert top["tau_revenue_discount_10"].mean() < 0 < middle["tau_revenue_discount_10"].mean()
    # Sleeping dogs: disengaged customers buy less after a content reminder and unsubscribe more.
    engagement = pd.qcut(alive["engagement_at_end"], 5, labels=False)
    cold, warm = alive[engagement == 0], alive[engagement == 4]
    assert cold["tau_convert_content_reminder"].mean() < 0 < warm["tau_convert_content_reminder"].mean()
    assert cold["tau_unsubscribe_content_reminder"].mean() > warm["tau_unsubscribe_content_reminder"].mean()


def test_realised_campaign_outcomes_agree_with_the_truth(world: World, outcomes: pd.DataFrame):
    truth = world.tables["exposure_truth"]
    assert truth[["customer_id", "campaign_id", "offer_id"]].equals(
        outcomes[["customer_id", "campaign_id", "offer_id"]]
    )
    for outcome, control_truth, effect in [
        ("converted", "p_convert_control", "tau_convert_"),
        ("revenue", "expected_revenue_control", "tau_revenue_"),
        ("unsubscribed", "p_unsubscribe_control", "tau_unsubscribe_"),
    ]:
        control, control_se = _arm_mean(outcomes, outcome, CONTROL_OFFER_ID)
        expected = truth[control_truth].mean()
        assert abs(control - expected) < 4 * control_se + 1e-3 * expected, (outcome, control)
        for offer in OFFERS:
            treated, treated_se = _arm_mean(outcomes, outcome, offer)
            standard_error = np.hypot(control_se, treated_se)
            realised, true_effect = treated - control, truth[effect + offer].mean()
            assert abs(realised - true_effect) < 4 * standard_error, (outcome, offer, realised, true_effect)
    # The design has power: the discount's conversion lift is clearly positive.
    lift = _arm_mean(outcomes, "converted", "discount_10")[0] - _arm_mean(outcomes, "converted", CONTROL_OFFER_ID)[0]
    assert lift > 0.01


def test_each_arm_realises_its_true_outcome_probabilities(world: World, outcomes: pd.DataFrame):
    """Row by row: an exposure's outcome has mean p_control + tau_<its arm>, in every arm."""
    truth = world.tables["exposure_truth"]
    for outcome, control_truth, effect in [
        ("converted", "p_convert_control", "tau_convert_"),
        ("revenue", "expected_revenue_control", "tau_revenue_"),
        ("unsubscribed", "p_unsubscribe_control", "tau_unsubscribe_"),
    ]:
        expected = truth[control_truth].copy()
        for offer in OFFERS:
            treated = truth["offer_id"] == offer
            expected[treated] += truth.loc[treated, effect + offer]
        for arm, rows in outcomes.groupby("offer_id"):
            residual = rows[outcome] - expected[rows.index]
            if outcome == "revenue":
                standard_error = residual.std() / np.sqrt(len(rows))
            else:  # binary: the variance follows from the true probabilities
                p = expected[rows.index]
                standard_error = np.sqrt((p * (1 - p)).sum()) / len(rows)
            assert abs(residual.mean()) < 4 * standard_error, (outcome, arm, residual.mean())


def test_discount_arm_orders_carry_the_coupon(world: World, outcomes: pd.DataFrame):
    converted = outcomes[(outcomes["offer_id"] == "discount_10") & (outcomes["converted"] > 0)]
    transactions = world.tables["transactions"]
    joined = converted[["customer_id", "assigned_at"]].merge(transactions, on="customer_id")
    joined = joined[(joined["ts"] >= joined["assigned_at"]) & (joined["ts"] < joined["assigned_at"] + WINDOW)]
    first = joined[joined["ts"] == joined.groupby("customer_id")["ts"].transform("min")]
    gross = first["amount"] + first["discount_amount"]
    assert np.allclose(first["discount_amount"], (0.10 * gross).round(2), atol=0.011)


def test_assignment_shares_match_the_propensities(world: World):
    exposures = world.tables["exposures"]
    customers = world.tables["customers"].set_index("customer_id")
    exposures = exposures.assign(stratum=exposures["customer_id"].map(customers["acquisition_channel"]))
    for campaign in world.meta["campaigns"]:
        rows = exposures[exposures["campaign_id"] == campaign["campaign_id"]]
        probabilities = campaign["arm_probabilities"]
        stratum = rows["stratum"].where(rows["stratum"].isin(probabilities), "default")
        for name, group in rows.groupby(stratum):
            for arm, share in probabilities[name].items():
                assigned = group["offer_id"] == arm
                assert np.allclose(group.loc[assigned, "propensity"], share)
                standard_error = np.sqrt(share * (1 - share) / len(group))
                assert abs(assigned.mean() - share) < 4.5 * standard_error, (name, arm)


def test_effects_leave_traces_in_observable_behaviour(world: World):
    truth = world.tables["ground_truth"].set_index("customer_id")
    transactions, events = world.tables["transactions"], world.tables["events"]
    orders = transactions.groupby(["customer_id", "order_id"])["discount_amount"].sum()
    per_customer = pd.DataFrame(
        {
            "orders": orders.groupby("customer_id").size(),
            "discount_share": (orders > 0).groupby("customer_id").mean(),
        }
    )
    email = events[events["channel"] == "email"]
    counts = email.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
    per_customer = per_customer.join((counts["open"] / counts["send"]).rename("open_rate"), how="outer")
    data = truth.join(per_customer)
    frequent = data[data["orders"] >= 3]
    assert frequent["discount_share"].corr(frequent["price_sensitivity"], method="spearman") > 0.3
    mailed = data[counts["send"].reindex(data.index).fillna(0) >= 10]
    assert mailed["open_rate"].corr(mailed["engagement_at_end"], method="spearman") > 0.4
    alive = data[data["alive_at_end"]]
    assert alive["orders"].fillna(0).corr(alive["purchase_rate"], method="spearman") > 0.4


def test_churned_customers_buy_far_less_after_churning(world: World):
    truth = world.tables["ground_truth"]
    start, end = pd.Timestamp(world.meta["start"]), pd.Timestamp(world.meta["end"])
    customers = world.tables["customers"].set_index("customer_id")
    churned = truth[truth["churned_at"].between(start + pd.Timedelta(days=60), end - pd.Timedelta(days=60))]
    churned = churned.set_index("customer_id")
    orders = world.tables["transactions"].drop_duplicates("order_id")
    orders = orders[orders["customer_id"].isin(churned.index)]
    churn_at = orders["customer_id"].map(churned["churned_at"])
    observed_from = customers.loc[churned.index, "signup_at"].clip(lower=start)
    days_before = (churned["churned_at"] - observed_from).dt.days.sum()
    days_after = (end - churned["churned_at"]).dt.days.sum()
    rate_before = (orders["ts"] < churn_at).sum() / days_before
    rate_after = (orders["ts"] >= churn_at).sum() / days_after
    assert rate_after < 0.15 * rate_before


def test_opens_concentrate_near_the_preferred_hour(world: World):
    truth = world.tables["ground_truth"].set_index("customer_id")
    events = world.tables["events"]
    opens = events[events["event_type"] == "open"].sample(20_000, random_state=0)
    local_hour = np.empty(len(opens))
    zones = opens["customer_id"].map(truth["timezone"])
    for zone, index in opens.groupby(zones).groups.items():
        stamps = opens.loc[index, "ts"].dt.tz_localize("UTC").dt.tz_convert(zone)
        local_hour[opens.index.get_indexer(index)] = stamps.dt.hour + stamps.dt.minute / 60
    preferred = opens["customer_id"].map(truth["preferred_hour"]).to_numpy() + 0.5
    distance = np.abs((local_hour - preferred + 12) % 24 - 12)
    assert (distance <= 3).mean() > 0.6  # a uniform hour would give 0.25
