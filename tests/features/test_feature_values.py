"""Exact feature values on a tiny literal world, every number worked out by hand below.

As of T = 2024-04-01 00:00 (2024 is a leap year): T-7d = 03-25, T-30d = 03-02, T-90d = 01-02,
T-180d = 2023-10-04, T-365d = 2023-04-02.
"""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from features.dataset import Dataset
from features.families import rfm
from features.families.products import purchase_recency
from features.snapshot import build_snapshot

AS_OF = "2024-04-01"


def _ts(values: list[str | None]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, format="ISO8601"), dtype="datetime64[us]")


def tiny_world() -> dict[str, pd.DataFrame]:
    """Nine customers known at T (A B C D E G H K L) and F, who signs up after T."""
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "E", "F", "G", "H", "K", "L"],
            "signup_at": _ts(
                [
                    "2023-12-01",
                    "2024-02-10",
                    "2024-03-20",
                    "2024-03-25",
                    "2023-01-01",
                    "2024-06-01",
                    "2023-05-01",
                    "2023-11-15",
                    "2023-09-01",
                    "2023-09-01",
                ]
            ),
            "acquisition_channel": [
                "organic",
                "paid",
                "social",
                "email",
                "organic",
                "paid",
                "referral",
                "organic",
                "paid",
                "social",
            ],
            "timezone": ["Europe/London", None, "Asia/Tokyo", None, None, None, None, "America/New_York", None, None],
            "unsubscribed_at": _ts([None, None, None, None, None, None, "2024-01-01", None, None, None]),
        }
    )
    lines = [
        # customer, ts, amount, order, category, discount
        ("A", "2024-01-01 10:00", 10.0, "o1", "x", 0.0),
        ("A", "2024-01-01 10:00", 5.0, "o1", "y", 1.0),
        ("A", "2024-03-02 18:00", 30.0, "o2", "x", 0.0),
        ("B", "2024-02-15 09:00", 3.0, "o3", "x", 0.0),
        ("B", "2024-02-15 09:00", 2.0, "o3", "w", 0.0),
        ("C", "2024-03-25 20:00", 50.0, "o4", "z", 0.0),
        ("C", "2024-03-27 20:00", 50.0, "o5", "z", 0.0),
        ("C", "2024-03-29 20:00", 50.0, "o6", "z", 0.0),
        ("C", "2024-03-31 20:00", 50.0, "o7", "z", 0.0),
        ("G", "2023-06-01 12:00", 40.0, "o8", "y", 0.0),
        ("H", "2023-12-01 08:00", 10.0, "o9", "y", 0.0),
        ("H", "2024-01-01 08:00", 10.0, "o10", "y", 0.0),
        ("H", "2024-03-20 08:00", 30.0, "o11", "y", 0.0),
        # after T: labels only
        ("A", "2024-04-01 00:00", 20.0, "o12", "x", 0.0),
        ("B", "2024-05-01 00:00", 5.0, "o13", "x", 0.0),
        ("G", "2024-07-15 00:00", 40.0, "o14", "y", 0.0),
    ]
    transactions = pd.DataFrame(
        lines, columns=["customer_id", "ts", "amount", "order_id", "category", "discount_amount"]
    )
    transactions["ts"] = _ts(transactions["ts"].tolist())
    events = [
        ("A", "2024-02-20 08:00", "email", "send"),
        ("A", "2024-03-10 08:00", "email", "send"),
        ("A", "2024-03-10 09:00", "email", "open"),
        ("A", "2024-03-10 09:05", "email", "click"),
        ("A", "2024-03-28 12:00", "sms", "send"),
        ("A", "2024-04-01 00:00", "email", "open"),  # at T: not history
        ("B", "2024-03-05 10:00", "email", "send"),
        ("B", "2024-03-05 10:00", "email", "bounce"),
        ("E", "2024-03-14 10:00", "email", "send"),
        ("E", "2024-03-15 19:00", "email", "open"),
        ("E", "2024-03-16 19:00", "email", "unsubscribe"),
        ("H", "2024-03-18 07:00", "push", "send"),
        ("H", "2024-03-18 07:30", "push", "open"),
        ("H", "2024-03-30 12:00", "web", "visit"),
        ("H", "2024-03-31 12:00", "app", "login"),
        ("L", "2024-03-28 10:00", "app", "payment_failed"),
    ]
    events_frame = pd.DataFrame(events, columns=["customer_id", "ts", "channel", "event_type"])
    events_frame["ts"] = _ts(events_frame["ts"].tolist())
    subscriptions = pd.DataFrame(
        {
            "customer_id": ["H", "K", "K"],
            "plan": ["pro", "basic", "basic"],
            "started_at": _ts(["2024-01-15", "2023-09-05", "2024-06-05"]),
            "renews_at": _ts(["2024-05-15", "2024-04-05", "2024-07-05"]),
            "status": ["active", "active", "active"],
            "usage": [90.0, 10.0, 0.0],
            "usage_limit": [100.0, 100.0, 100.0],
        }
    )
    return {
        "customers": customers,
        "transactions": transactions,
        "events": events_frame,
        "subscriptions": subscriptions,
    }


@pytest.fixture(scope="module")
def snapshot() -> pd.DataFrame:
    frame = build_snapshot(Dataset.from_frames(tiny_world()), AS_OF, horizon_days=30)
    return frame.set_index("customer_id")


def test_population_is_customers_known_before_as_of(snapshot: pd.DataFrame) -> None:
    assert list(snapshot.index) == ["A", "B", "C", "D", "E", "G", "H", "K", "L"]
    assert (snapshot["as_of"] == pd.Timestamp(AS_OF)).all()


def test_rfm_values(snapshot: pd.DataFrame) -> None:
    # A: orders o1 (two lines, 15.0) and o2 (30.0 on 03-02 18:00, i.e. 29 days 6 hours ago).
    a = snapshot.loc["A"]
    assert a["frequency"] == 2
    assert a["monetary"] == 45.0
    assert a["recency_days"] == pytest.approx(29.25)
    assert a["avg_order_value"] == pytest.approx(22.5)
    assert (a["frequency_7d"], a["frequency_30d"], a["frequency_90d"], a["frequency_365d"]) == (0, 1, 1, 2)
    assert (a["monetary_30d"], a["monetary_90d"], a["monetary_365d"]) == (30.0, 30.0, 45.0)
    # C: four orders 03-25..03-31 at 20:00; T-7d is 03-25 00:00 so all four are in the 7d window.
    assert snapshot.loc["C", "frequency_7d"] == 4
    assert snapshot.loc["C", "recency_days"] == pytest.approx(4 / 24)
    # G's single order (2023-06-01) is inside 365 days but no shorter window.
    assert snapshot.loc["G", "frequency_365d"] == 1
    assert snapshot.loc["G", "frequency_90d"] == 0
    # Non-buyers: zero counts, null recency.
    assert snapshot.loc["D", "frequency"] == 0
    assert snapshot.loc["D", "monetary"] == 0.0
    assert pd.isna(snapshot.loc["D", "recency_days"])


def test_quintile_scores_and_segment(snapshot: pd.DataFrame) -> None:
    # Five buyers. Last order, oldest first: G B A H C -> r 1..5.
    # Frequency: B=1, G=1 (tie: both 0 strictly worse -> 1), A=2 -> 1+floor(5*2/5)=3, H=3 -> 4, C=4 -> 5.
    # Monetary: B 5, G 40, A 45, H 50, C 200 -> 1..5.
    scores = snapshot.loc[["A", "B", "C", "G", "H"], ["r_score", "f_score", "m_score"]]
    expected = pd.DataFrame(
        {
            "r_score": [3.0, 2.0, 5.0, 1.0, 4.0],
            "f_score": [3.0, 1.0, 5.0, 1.0, 4.0],
            "m_score": [3.0, 1.0, 5.0, 2.0, 4.0],
        },
        index=pd.Index(["A", "B", "C", "G", "H"], name="customer_id"),
    )
    pd.testing.assert_frame_equal(scores, expected)
    # Sums 9, 4, 15, 4, 12 -> C, E, A, E, B.
    assert snapshot.loc[["A", "B", "C", "G", "H"], "rfm_segment"].tolist() == ["C", "E", "A", "E", "B"]
    assert snapshot.loc[["D", "E"], "r_score"].isna().all()
    assert snapshot.loc[["D", "E"], "rfm_segment"].isna().all()


def test_segment_thresholds_are_the_rounded_mean_score() -> None:
    sums = ibis.memtable(pd.DataFrame({"total": list(range(3, 16))}))
    letters = sums.select(segment=rfm.segment(sums.total)).to_pandas()["segment"].tolist()
    expected = ["E", "E", "D", "D", "D", "C", "C", "C", "B", "B", "B", "A", "A"]
    assert letters == expected
    assert letters == ["EDCBA"[round(total / 3) - 1] for total in range(3, 16)]


def test_rhythm_and_overdue_ratio(snapshot: pd.DataFrame) -> None:
    # A: one gap, 01-01 10:00 -> 03-02 18:00 = 61 days 8 hours.
    assert snapshot.loc["A", "gap_mean_days"] == pytest.approx(61 + 8 / 24)
    assert pd.isna(snapshot.loc["A", "gap_std_days"])
    assert snapshot.loc["A", "overdue_ratio"] == pytest.approx(29.25 / (61 + 8 / 24))
    # H: gaps 31 and 79 days -> mean 55, sample std 48 / sqrt(2); 11 days 16 hours since last.
    assert snapshot.loc["H", "gap_mean_days"] == pytest.approx(55.0)
    assert snapshot.loc["H", "gap_std_days"] == pytest.approx(48 / 2**0.5)
    assert snapshot.loc["H", "overdue_ratio"] == pytest.approx((11 + 16 / 24) / 55)
    # C: gaps 2, 2, 2.
    assert snapshot.loc["C", "gap_std_days"] == pytest.approx(0.0)
    assert pd.isna(snapshot.loc["B", "overdue_ratio"])
    # Spend trend, last 90d vs the 90 before: A 30 vs 15, H 30 vs 20, B 5 vs 0, G none.
    trends = snapshot.loc[["A", "H", "B"], "spend_trend_90d"].tolist()
    assert trends == pytest.approx([1 / 3, 0.2, 1.0])
    assert pd.isna(snapshot.loc["G", "spend_trend_90d"])


def test_tenure_and_cohort(snapshot: pd.DataFrame) -> None:
    assert snapshot.loc["A", "tenure_days"] == 122.0
    assert snapshot.loc["B", "tenure_days"] == 51.0
    assert snapshot.loc["A", "days_since_first_order"] == pytest.approx(90 + 14 / 24)
    assert (snapshot.loc["A", "signup_month"], snapshot.loc["A", "cohort_month"]) == (12, 202312)
    assert snapshot.loc["K", "acquisition_channel"] == "paid"


def test_engagement_windows_rates_and_flags(snapshot: pd.DataFrame) -> None:
    a = snapshot.loc["A"]
    assert (a["email_sends_7d"], a["email_sends_30d"], a["email_sends_90d"]) == (0, 1, 2)
    assert (a["email_opens_30d"], a["email_clicks_30d"], a["sms_sends_7d"]) == (1, 1, 1)
    # The open at exactly T is not history.
    assert a["email_opens_365d"] == 1
    # Pooled e-mail: 4 sends, 2 opens, 1 click -> prior means 0.5 and 0.25, 10 pseudo-sends.
    assert a["email_open_rate_365d"] == pytest.approx((1 + 5) / (2 + 10))
    assert a["email_click_rate_365d"] == pytest.approx((1 + 2.5) / (2 + 10))
    assert snapshot.loc["E", "email_open_rate_365d"] == pytest.approx(6 / 11)
    assert snapshot.loc["D", "email_open_rate_365d"] == pytest.approx(0.5)
    # Opens+clicks: 2 in the last 30 days, 0 in the 30 before.
    assert a["email_engagement_trend_30d"] == 1.0
    assert a["days_since_last_open"] == pytest.approx(21 + 15 / 24)
    assert snapshot.loc["H", "days_since_last_login"] == pytest.approx(0.5)
    assert snapshot.loc["B", "email_bounced"] == 1
    assert snapshot.loc["E", "email_unsubscribed"] == 1  # event
    assert snapshot.loc["G", "email_unsubscribed"] == 1  # customers.unsubscribed_at
    assert snapshot.loc["A", "email_unsubscribed"] == 0
    assert snapshot.loc[["A", "B", "H", "D"], "best_channel"].tolist()[:3] == ["email", "email", "push"]
    assert pd.isna(snapshot.loc["D", "best_channel"])
    assert snapshot.loc["L", "failed_payments_30d"] == 1


def test_products(snapshot: pd.DataFrame) -> None:
    assert snapshot.loc["A", "top_category"] == "x"
    assert snapshot.loc["A", "top_category_share"] == pytest.approx(2 / 3)
    assert snapshot.loc["A", "distinct_categories"] == 2
    assert snapshot.loc["A", "days_since_top_category_purchase"] == pytest.approx(29.25)
    assert snapshot.loc["A", "discount_order_share"] == 0.5
    # B bought one line each of x and w: the tie goes to the alphabetically first.
    assert snapshot.loc["B", "top_category"] == "w"
    assert snapshot.loc["B", "top_category_share"] == 0.5


def test_purchase_recency_per_category_and_product() -> None:
    dataset = Dataset.from_frames(tiny_world())
    recency = purchase_recency(dataset, AS_OF).set_index(["customer_id", "category"])
    assert recency.loc[("A", "x"), "days_since_last_purchase"] == pytest.approx(29.25)
    assert recency.loc[("A", "y"), "days_since_last_purchase"] == pytest.approx(90 + 14 / 24)
    assert recency.loc[("A", "x"), "lines"] == 2
    assert len(recency) == 7  # A:x,y B:w,x C:z G:y H:y; nothing after T
    with pytest.raises(ValueError, match="no column 'product_id'"):
        purchase_recency(dataset, AS_OF, level="product")


def test_send_hour_profile_in_local_time(snapshot: pd.DataFrame) -> None:
    # C (Asia/Tokyo, UTC+9): four orders at 20:00 UTC Mon/Wed/Fri/Sun = 05:00 Tue/Thu/Sat/Mon.
    c = snapshot.loc["C"]
    assert c["responses_365d"] == 4
    assert c["hour_profile_05"] == pytest.approx((0.5 * 4 + 1 / 24) / 5)
    assert c["hour_profile_04"] == pytest.approx((0.25 * 4 + 1 / 24) / 5)
    assert c["hour_profile_12"] == pytest.approx((1 / 24) / 5)
    assert c["preferred_hour"] == 5
    assert c["weekday_profile_1"] == pytest.approx((1 + 1 / 7) / 5)
    assert c["weekday_profile_2"] == pytest.approx((1 / 7) / 5)
    assert c["preferred_weekday"] == 0  # Mon, Tue, Thu, Sat tie: the earliest
    assert c["weekend_share"] == pytest.approx((1 + 2 / 7) / 5)
    assert c["daypart_share_night"] == pytest.approx((3 + 6 / 24) / 5)
    # H (America/New_York): orders 08:00 UTC in Dec and Jan (03:00 EST) and on 03-20 (04:00
    # EDT, after the switch on 03-10); push open 03-18 07:30 UTC (03:30 EDT): hours 3,3,3,4.
    h = snapshot.loc["H"]
    assert h["hour_profile_03"] == pytest.approx((1.5 + 0.25 + 1 / 24) / 5)
    assert h["hour_profile_04"] == pytest.approx((0.5 + 0.75 + 1 / 24) / 5)
    assert h["preferred_hour"] == 3
    # No responses: uniform profile, no preference.
    d = snapshot.loc["D"]
    assert d["hour_profile_07"] == pytest.approx(1 / 24)
    assert pd.isna(d["preferred_hour"])
    hours = [f"hour_profile_{hour:02d}" for hour in range(24)]
    assert snapshot[hours].sum(axis=1).to_numpy() == pytest.approx([1.0] * len(snapshot))


def test_subscription_features(snapshot: pd.DataFrame) -> None:
    assert snapshot.loc["H", "usage_ratio"] == 0.9
    assert snapshot.loc["H", "days_to_renewal"] == 44.0
    # K's second subscription starts after T and is ignored.
    assert snapshot.loc["K", "days_to_renewal"] == 4.0
    assert snapshot.loc["K", "subscription_plan"] == "basic"
    assert snapshot.loc["A", "has_subscription"] == 0


def test_lifecycle_stages(snapshot: pd.DataFrame) -> None:
    expected = {
        "A": "active",  # 29.25 days since last order, within 1.5 x 61.3-day gap
        "B": "at_risk",  # one order 45.6 days ago > 1.5 x 30-day default gap
        "C": "onboarding",  # signed up 12 days ago (even though its RFM segment is A)
        "D": "onboarding",
        "E": "win_back",  # no order in 456 days of tenure, but opened e-mail 16 days ago
        "G": "lapsed",  # last order 304.5 days ago, no engagement
        "H": "upsell_ready",  # active and using 90% of the plan
        "K": "renewal_due",  # renews in 4 days
        "L": "billing_issue",  # payment failed 4 days ago
    }
    assert snapshot["lifecycle_stage"].to_dict() == expected


def test_labels(snapshot: pd.DataFrame) -> None:
    # Window [04-01, 05-01): A's order at exactly T counts; B's at exactly 05-01 does not.
    assert snapshot.loc["A", ["label_churned", "label_purchases", "label_revenue"]].tolist() == [0, 1, 20.0]
    assert snapshot.loc["B", "label_churned"] == 1
    assert snapshot["label_churned"].sum() == 8
