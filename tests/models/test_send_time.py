"""Send time: empirical-Bayes preferences, held-out fit on the simulator, concrete send times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.simulate import simulate_world
from models.send_time import (
    QuietHours,
    SendTimeModel,
    local_time_counts,
    log_likelihood,
    profile_counts,
    schedule_send_times,
)


def test_posterior_mean_shrinks_counts_towards_the_segment():
    # Segment "a": all opens at hour 9; customer 0 opened 3 times at 20.
    hours = np.zeros((3, 24))
    hours[0, 20] = 3
    hours[1, 9] = 10
    hours[2, 9] = 10
    model = SendTimeModel(prior_strength=2.0, segment_prior_strength=0.0).fit(hours, segments=["a", "a", "a"])
    hour_probability, weekday_probability = model.predict_proba(hours, segments=["a", "a", "a"])
    segment = model.segment_hour_[0]
    assert segment[9] == pytest.approx(20 / 23) and segment[20] == pytest.approx(3 / 23)
    # (counts + 2 x segment) / (3 + 2)
    assert hour_probability[0, 20] == pytest.approx((3 + 2 * 3 / 23) / 5)
    assert hour_probability[0, 9] == pytest.approx((2 * 20 / 23) / 5)
    np.testing.assert_allclose(hour_probability.sum(axis=1), 1.0)
    np.testing.assert_allclose(weekday_probability, 1 / 7)  # no weekday counts: the flat population
    assert model.preferred_hour(hours, segments=["a", "a", "a"]).tolist() == [20, 9, 9]
    # An unknown segment falls back to the population.
    unknown, _ = model.predict_proba(np.zeros((1, 24)), segments=["zzz"])
    np.testing.assert_allclose(unknown[0], model.population_hour_)


def test_prior_strength_follows_how_much_customers_differ():
    rng = np.random.default_rng(0)
    n = 3000
    shared = rng.dirichlet(np.ones(24) * 2)
    # Everyone draws from the same distribution: individual counts are noise, shrink hard.
    same = np.array([rng.multinomial(5, shared) for _ in range(n)], dtype=float)
    # Everyone has an own peaked distribution: trust the customer's counts.
    own = np.array([rng.multinomial(5, rng.dirichlet(np.ones(24) * 0.1)) for _ in range(n)], dtype=float)
    strong = SendTimeModel().fit(same).prior_strength_hour_
    weak = SendTimeModel().fit(own).prior_strength_hour_
    assert strong >= 100 and weak <= 5, (strong, weak)


def test_bad_counts_are_rejected_with_the_rows():
    counts = np.zeros((3, 24))
    counts[2, 4] = -1
    with pytest.raises(ValueError, match=r"hour_counts: 1 rows have negative.*rows \[2\]"):
        SendTimeModel().fit(counts)
    with pytest.raises(ValueError, match=r"shape \(n_customers, 24\)"):
        SendTimeModel().fit(np.zeros((3, 23)))


def test_beats_the_population_mode_hour_on_held_out_simulated_opens():
    """Done-when: higher held-out open-hour log-likelihood than "everyone at the most common hour"."""
    world = simulate_world(8000, months=12, seed=11)
    customers, events = world.tables["customers"], world.tables["events"]
    opens = events[events["event_type"] == "open"].merge(customers[["customer_id", "timezone"]], on="customer_id")
    cut = pd.Timestamp(world.meta["start"]) + pd.DateOffset(months=9)
    train, test = opens[opens["ts"] < cut], opens[opens["ts"] >= cut]
    ids = customers["customer_id"].to_numpy(dtype=object)
    train_hours, train_days = local_time_counts(train["customer_id"], train["ts"], train["timezone"], ids)
    test_hours, _ = local_time_counts(test["customer_id"], test["ts"], test["timezone"], ids)
    n_test = test_hours.sum()
    assert train_hours.sum() > 5000 and n_test > 2000

    segments = customers["acquisition_channel"].to_numpy(dtype=object)
    model = SendTimeModel().fit(train_hours, train_days, segments=segments)
    predicted, _ = model.predict_proba(train_hours, train_days, segments=segments)
    model_score = log_likelihood(predicted, test_hours) / n_test

    population = train_hours.sum(axis=0) / train_hours.sum()
    mode = int(np.argmax(population))
    # The mode-hour baseline as a distribution, given its best possible mass off the mode
    # (chosen on the test opens themselves, which only flatters it).
    off_mode = 1 - test_hours[:, mode].sum() / n_test
    mode_distribution = np.full(24, off_mode / 23)
    mode_distribution[mode] = 1 - off_mode
    mode_score = log_likelihood(np.tile(mode_distribution, (len(ids), 1)), test_hours) / n_test
    population_score = log_likelihood(np.tile(population, (len(ids), 1)), test_hours) / n_test
    assert model_score > mode_score + 0.2, (model_score, mode_score)
    assert model_score > population_score + 0.1, (model_score, population_score)


def test_profile_counts_invert_the_timing_family_smoothing():
    counts = np.zeros(24)
    counts[[9, 10, 11]] = [0.25, 0.5, 0.25]  # one response at 10:00 after the family's 1-2-1 smoothing
    hour_shares = (counts * 4 + 1 / 24) / (4 + 1)  # n = 4 responses, prior 1
    frame = pd.DataFrame(
        {
            **{f"hour_profile_{h:02d}": [hour_shares[h]] for h in range(24)},
            **{f"weekday_profile_{d}": [((4 if d == 2 else 0) + 1 / 7) / 5] for d in range(7)},
            "responses_365d": [4],
        }
    )
    hours, weekdays = profile_counts(frame)
    np.testing.assert_allclose(hours[0], counts * 4, atol=1e-12)
    np.testing.assert_allclose(weekdays[0], np.eye(7)[2] * 4, atol=1e-12)


def _peaked(hour: int) -> np.ndarray:
    probability = np.full(24, 0.01)
    probability[hour] = 1.0
    return probability / probability.sum()


def test_send_at_is_the_next_preferred_hour_in_local_time():
    now = pd.Timestamp("2025-01-15 10:20")  # Wednesday, UTC
    hours = np.vstack([_peaked(18), _peaked(18), _peaked(9), _peaked(18)])
    zones = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", None]
    schedule = schedule_send_times(now, zones, hours, quiet_hours=QuietHours(), horizon_hours=24)
    # Berlin 18:00 = 17:00 UTC today; New York 18:00 = 23:00 UTC today; Kolkata 09:00 is
    # past today (15:50 local), so tomorrow 09:30 local (whole UTC hours land on :30 there).
    assert list(pd.DatetimeIndex(schedule.send_at)) == [
        pd.Timestamp("2025-01-15 17:00"),
        pd.Timestamp("2025-01-15 23:00"),
        pd.Timestamp("2025-01-16 04:00"),
        pd.Timestamp("2025-01-15 18:00"),
    ]
    assert list(schedule.send_at_local) == [
        "2025-01-15T18:00+01:00",
        "2025-01-15T18:00-05:00",
        "2025-01-16T09:30+05:30",
        "2025-01-15T18:00+00:00",
    ]
    assert schedule.local_hour.tolist() == [18, 18, 9, 18]
    assert schedule.feasible.all() and not schedule.delayed_by_quiet_hours.any()


def test_quiet_hours_delay_to_the_next_allowed_moment_and_follow_daylight_saving():
    # New York moves to summer time at 2025-03-09 02:00 local; now is 06:30 UTC = 01:30 EST.
    now = pd.Timestamp("2025-03-09 06:30")
    schedule = schedule_send_times(
        now, ["America/New_York"], _peaked(3)[None, :], quiet_hours=QuietHours(start_minute=22 * 60, end_minute=8 * 60)
    )
    # Preferred 03:00 is quiet; the best allowed slot is the first after 08:00 EDT = 12:00 UTC.
    assert pd.Timestamp(schedule.send_at[0]) == pd.Timestamp("2025-03-09 12:00")
    assert schedule.send_at_local[0] == "2025-03-09T08:00-04:00"
    assert schedule.delayed_by_quiet_hours[0]


def test_urgent_goes_first_allowed_slot_and_earliest_pushes_the_window():
    now = pd.Timestamp("2025-01-15 05:00")  # 05:00 in London, quiet until 08:00
    hours = np.vstack([_peaked(20), _peaked(20), _peaked(20)])
    earliest = np.array(["NaT", "NaT", "2025-01-16 02:00"], dtype="datetime64[us]")
    schedule = schedule_send_times(
        now, ["Europe/London"] * 3, hours, urgent=[True, False, False], earliest=earliest, horizon_hours=24
    )
    assert list(pd.DatetimeIndex(schedule.send_at)) == [
        pd.Timestamp("2025-01-15 08:00"),  # urgent: the first moment quiet hours end
        pd.Timestamp("2025-01-15 20:00"),  # preferred hour today
        pd.Timestamp("2025-01-16 20:00"),  # not before the earliest moment: tomorrow's 20:00
    ]


def test_send_now_when_now_is_the_preferred_hour():
    now = pd.Timestamp("2025-01-15 14:25:10")
    schedule = schedule_send_times(now, ["UTC"], _peaked(14)[None, :])
    assert pd.Timestamp(schedule.send_at[0]) == now


def test_unknown_time_zone_is_a_clear_error():
    with pytest.raises(ValueError, match=r"1 rows have unknown IANA time zones, e.g. \['Mars/Olympus'\]"):
        schedule_send_times("2025-01-01", ["UTC", "Mars/Olympus"], np.full((2, 24), 1 / 24))


def test_quiet_hours_must_leave_time_to_send():
    with pytest.raises(ValueError, match="less than an hour"):
        QuietHours(start_minute=8 * 60, end_minute=7 * 60 + 30)
    assert QuietHours(start_minute=0, end_minute=0).is_quiet([0, 600]).tolist() == [False, False]
    assert QuietHours(start_minute=21 * 60, end_minute=8 * 60).is_quiet([20 * 60 + 59, 21 * 60, 479, 480]).tolist() == [
        False,
        True,
        True,
        False,
    ]
