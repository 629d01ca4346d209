"""Decision log -> training rows on a tiny exact log: which decisions are kept, the outcome
window's edges, point in time (no outcome before the decision, no feature after the day's first
decision), and the capped inverse-propensity weights."""

from __future__ import annotations

import pandas as pd
import pytest

from features.dataset import Dataset
from serving.decision_log import DecisionLog
from training.log_exposures import log_exposures, read_decision_log


def _ts(values):
    return pd.to_datetime(values).as_unit("us")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("log")
    customers = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6", "C9"],
            "email_consent": [True] * 7,
        }
    )
    rows = [
        ("C1", "2025-01-05 09:00", 10.0),  # history
        ("C1", "2025-03-01 10:00", 30.0),  # exactly at the decision: outcome, not feature
        ("C1", "2025-03-10 08:00", 20.0),  # inside the window
        ("C2", "2025-01-10 09:00", 15.0),  # history
        ("C2", "2025-03-01 11:00", 99.0),  # after the day's first decision, before C2's own: neither
        ("C2", "2025-03-15 12:00", 50.0),  # exactly decided_at + 14 days: outside (end exclusive)
        ("C3", "2025-02-01 09:00", 12.0),
        ("C4", "2025-02-02 09:00", 12.0),
        ("C5", "2025-02-03 09:00", 12.0),
        ("C6", "2025-02-04 09:00", 12.0),
        ("C6", "2025-03-05 09:00", 7.0),
        ("C9", "2025-01-02 09:00", 5.0),
        ("C9", "2025-03-31 09:00", 5.0),  # the last transaction: outcomes known until here
    ]
    transactions = pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "ts": _ts([r[1] for r in rows]),
            "amount": [r[2] for r in rows],
            "order_id": [f"O{i}" for i in range(len(rows))],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["C2", "C3"],
            "ts": _ts(["2025-03-02 09:00", "2025-02-27 09:00"]),  # C3's is before its decision
            "channel": ["email", "email"],
            "event_type": ["unsubscribe", "unsubscribe"],
        }
    )
    dataset = Dataset.from_frames({"customers": customers, "transactions": transactions, "events": events})

    def decision(customer, at, offer, propensity, holdout=False, explored=False):
        return {
            "decision_id": f"{customer}-{at}",
            "customer_id": customer,
            "decided_at": pd.Timestamp(at).isoformat() + "+00:00",
            "offer_id": offer,
            "channel": None if offer in ("no_message", "holdout") else "email",
            "propensity": propensity,
            "holdout": holdout,
            "explored": explored,
        }

    path = tmp_path / "log.sqlite"
    log = DecisionLog(path)
    log.append(
        [
            decision("C1", "2025-03-01 10:00", "discount_10", 0.1, explored=True),
            decision("C2", "2025-03-01 12:00", "content_reminder", 0.7),  # greedy under epsilon
            decision("C3", "2025-03-01 13:00", "no_message", 1.0, holdout=True),
            decision("C4", "2025-03-01 14:00", "no_message", 1.0),  # no randomisation: dropped
            decision("C1", "2025-03-01 15:00", "free_shipping", 0.1, explored=True),  # repeat that day: dropped
            decision("C6", "2025-03-02 09:00", "free_shipping", 0.001, explored=True),  # weight capped
            decision("C5", "2025-03-20 09:00", "discount_10", 0.1, explored=True),  # window still open
        ]
    )
    log.close()
    return path, dataset


def test_read_decision_log_maps_no_message_and_holdout_to_control(tiny):
    path, _ = tiny
    frame = read_decision_log(path)
    assert len(frame) == 7
    assert set(frame.loc[frame["customer_id"].isin(["C3", "C4"]), "offer_id"]) == {"control"}
    assert frame["decided_at"].dt.tz is None
    assert frame["campaign_id"].iloc[0] == "nbo-2025-03-01"


@pytest.fixture(scope="module")
def logged(tiny):
    path, dataset = tiny
    return log_exposures(path, dataset, window_days=14, max_weight=100.0)


def test_kept_rows_outcomes_and_weights(logged):
    frame = logged.frame.set_index("customer_id")
    assert sorted(frame.index) == ["C1", "C2", "C3", "C6"]
    report = logged.report
    assert report["logged"] == 7
    assert report["repeat_same_day"] == 1
    assert report["deterministic_dropped"] == 1
    assert report["incomplete_window_dropped"] == 1
    assert report["observed_until"] == "2025-03-31 09:00:00"
    # outcomes: C1's order at the decision instant and the one inside the window count
    assert frame.loc["C1", "outcome_convert"] == 1.0
    assert frame.loc["C1", "outcome_revenue"] == pytest.approx(50.0)
    # C2: the order between the day's first decision and its own, and the one at the window's end, do not
    assert frame.loc["C2", "outcome_convert"] == 0.0
    assert frame.loc["C2", "outcome_revenue"] == 0.0
    assert frame.loc["C2", "outcome_unsubscribe"] == 1.0
    assert frame.loc["C3", "outcome_unsubscribe"] == 0.0  # unsubscribed before its decision
    assert frame.loc["C6", "outcome_revenue"] == pytest.approx(7.0)
    # arms and probabilities
    assert frame.loc["C3", "offer_id"] == "control" and bool(frame.loc["C3", "holdout"])
    assert frame.loc["C1", "offer_id"] == "discount_10"
    assert frame.loc["C2", "propensity"] == pytest.approx(0.7)
    assert frame.loc["C2", "weight"] == pytest.approx(1 / 0.7)
    assert frame.loc["C3", "weight"] == pytest.approx(1.0)
    assert frame.loc["C6", "propensity"] == pytest.approx(0.01)  # floored at 1 / max_weight
    assert frame.loc["C6", "weight"] == pytest.approx(100.0)
    assert report["clipped"] == 1 and report["max_weight"] == 100.0


def test_features_are_as_of_the_first_decision_of_the_day(logged):
    frame = logged.frame.set_index("customer_id")
    as_of = pd.Timestamp("2025-03-01 10:00")
    assert (frame.loc[["C1", "C2", "C3"], "as_of"] == as_of).all()
    assert frame.loc["C6", "as_of"] == pd.Timestamp("2025-03-02 09:00")
    # C1's order at 10:00 and C2's at 11:00 are not history yet
    assert frame.loc["C1", "frequency"] == 1
    assert frame.loc["C2", "frequency"] == 1
    assert frame.loc["C1", "monetary"] == pytest.approx(10.0)
    assert frame.loc["C1", "email_consent"]  # customer context is joined for re-deciding
    assert "email_consent" not in logged.feature_columns and "as_of" not in logged.feature_columns
    assert "frequency" in logged.feature_columns


def test_explicit_observation_end_and_errors(tiny, tmp_path):
    path, dataset = tiny
    later = log_exposures(path, dataset, window_days=14, observed_until="2025-04-10")
    assert "C5" in set(later.frame["customer_id"])
    with pytest.raises(ValueError, match="complete 30-day outcome window"):
        log_exposures(path, dataset, window_days=30, observed_until="2025-03-15")
    with pytest.raises(ValueError, match="--max-weight"):
        log_exposures(path, dataset, max_weight=0.5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        log_exposures(tmp_path / "missing.sqlite", dataset)
