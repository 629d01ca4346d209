"""Hard rules, checked as properties over random customers, histories and request contexts.

Each example draws a policy configuration, a decision time and a seed for a small population
with random consents, opt-outs, lifecycle stages, send and purchase histories and time zones.
The checker recomputes every rule independently from the raw histories (not from the columns
the policy reads) and fails on any breach.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zoneinfo
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import features
from features.catalog import LIFECYCLE_STAGES, Catalog, load_catalog
from models.policy import decide
from models.policy_config import NO_MESSAGE, OfferEffectPrior, PolicyConfig
from models.policy_options import apply_context, purchase_recency_columns
from models.policy_rules import RULES, hash_uniform, in_holdout
from models.send_time import QuietHours

CHANNELS = ("email", "sms", "push")
TIMEZONES = (
    "UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Adelaide", "Asia/Kathmandu",
    "America/St_Johns", "Pacific/Chatham", None,
)  # fmt: skip
MODEL_OFFERS = ("discount_10", "free_shipping", "content_reminder")
CATEGORY = "kitchen"
DAY = pd.Timedelta(days=1)


def property_catalog() -> Catalog:
    """The default catalog plus a category discount (to exercise the per-category purchase rule)."""
    default = load_catalog(Path(features.__file__).parent / "default_catalog.yaml")
    kitchen = {
        "offer_id": "kitchen_15",
        "kind": "discount",
        "channels": ["email", "push"],
        "cost_per_send": {"email": 0.01, "push": 0.002},
        "discount_pct": 15,
        "margin": 0.4,
        "eligible_stages": ["active", "at_risk", "upsell_ready"],
        "category": CATEGORY,
        "cooldown_days": 20,
    }
    offers = [offer.model_dump() for offer in default.offers] + [kitchen]
    return Catalog.model_validate({"version": "property-test", "offers": offers})


CATALOG = property_catalog()
#: Every offer without a model gets a generous prior, so that messages actually go out and the
#: rules, not the values, are what stands between a customer and a message.
PRIORS = {
    offer.offer_id: OfferEffectPrior(convert=0.08, unsubscribe=0.0)
    for offer in CATALOG.offers
    if offer.offer_id not in MODEL_OFFERS
}


def _times_before(rng: np.random.Generator, end: pd.Timestamp, n: int, days: float, empty_share: float) -> np.ndarray:
    """Per customer: a timestamp up to `days` before `end`, or NaT with probability `empty_share`."""
    offsets = pd.to_timedelta(rng.random(n) * days * 86_400, unit="s").to_numpy()
    stamps = (np.datetime64(end.as_unit("us")) - offsets).astype("datetime64[us]")
    return np.where(rng.random(n) < empty_share, np.datetime64("NaT", "us"), stamps)


def build_population(rng: np.random.Generator, n: int, now: pd.Timestamp, scenario: dict) -> tuple[pd.DataFrame, dict]:
    """A decision frame and the raw histories the checker uses."""
    as_of = now - pd.Timedelta(hours=scenario["snapshot_lag_hours"])
    history_end = as_of if scenario["count_source"] == "snapshot" else now
    # Past sends: up to 5 per customer over the 10 days before history_end.
    n_sends = rng.integers(0, 6, n)
    end = np.datetime64(history_end.as_unit("us"))
    sends = [np.sort(end - (rng.random(k) * 10 * 86_400 * 1e6).astype("timedelta64[us]")) for k in n_sends]
    window_start = np.datetime64((history_end - pd.Timedelta(days=7)).as_unit("us"))
    in_window = np.array([int(np.sum(s > window_start)) for s in sends])
    last_message = np.array([s[-1] if len(s) else np.datetime64("NaT", "us") for s in sends], dtype="datetime64[us]")
    consent = {}
    for channel in CHANNELS:
        values = pd.array(rng.random(n) < scenario["consent_rate"][channel], dtype="boolean")
        values[rng.random(n) < 0.1] = pd.NA
        consent[f"{channel}_consent"] = values
    frame = pd.DataFrame(
        {
            "customer_id": [f"P{scenario['id_offset'] + i}" for i in range(n)],
            "timezone": rng.choice(np.array(TIMEZONES, dtype=object), n),
            **consent,
            "lifecycle_stage": rng.choice(np.array((*LIFECYCLE_STAGES, None), dtype=object), n),
            "failed_payments_30d": rng.integers(0, 2, n),
            "avg_order_value": rng.gamma(2.0, 40.0, n),
            "subscriber_value": rng.gamma(2.0, 10.0, n),
            "p_convert__control": rng.random(n) * 0.2,
            "last_message_at": last_message,
        }
    )
    for channel in CHANNELS:
        for flag, rate in (("unsubscribed", 0.1), ("complained", 0.03), ("bounced", 0.03)):
            frame[f"{channel}_{flag}"] = (rng.random(n) < rate).astype("int64")
    unsubscribed_at = _times_before(rng, now + 5 * DAY, n, 40, 0.8)  # some lie after now: not yet effective
    frame["unsubscribed_at"] = unsubscribed_at
    if scenario["count_source"] == "context":
        frame["messages_sent_7d"] = in_window.astype(float)
    else:
        split = rng.integers(0, 3, n)
        for position, channel in enumerate(CHANNELS):
            frame[f"{channel}_sends_7d"] = np.where(split == position, in_window, 0)
    for offer_id in MODEL_OFFERS:
        frame[f"uplift_convert__{offer_id}"] = rng.normal(0.05, 0.04, n)
        frame[f"uplift_unsubscribe__{offer_id}"] = rng.normal(0.0, 0.002, n)
    # Offer history: last send of every offer, as a timestamp (context) or days at the snapshot.
    offer_sent = {}
    for offer in CATALOG.offers:
        # Concentrated around the cooldown, where an off-by-a-day mistake would show.
        stamps = _times_before(rng, history_end, n, offer.cooldown_days * 1.5 + 2, 0.3)
        offer_sent[offer.offer_id] = stamps
        if rng.random() < 0.5:
            frame[f"last_sent_at__{offer.offer_id}"] = stamps
        else:
            frame[f"days_since_sent__{offer.offer_id}"] = (
                np.datetime64(as_of.as_unit("us")) - stamps
            ) / np.timedelta64(1, "D")
    # Purchases: last order of anything and of the kitchen category (never later than anything).
    last_order = _times_before(rng, as_of, n, 70, 0.2)
    last_kitchen = np.where(rng.random(n) < 0.5, last_order, _times_before(rng, as_of, n, 70, 0.5))
    last_kitchen = np.where(np.isnat(last_order), np.datetime64("NaT", "us"), np.minimum(last_kitchen, last_order))
    as_of_us = np.datetime64(as_of.as_unit("us"))
    frame["recency_days"] = (as_of_us - last_order) / np.timedelta64(1, "D")
    if scenario["category_column"]:
        frame[f"days_since_purchase__category__{CATEGORY}"] = (as_of_us - last_kitchen) / np.timedelta64(1, "D")
    just_bought = np.where(
        rng.random(n) < 0.2, np.datetime64((now - pd.Timedelta(minutes=1)).as_unit("us")), np.datetime64("NaT", "us")
    )
    frame["last_purchase_at"] = just_bought
    for hour in range(24):
        frame[f"hour_profile_{hour:02d}"] = rng.dirichlet(np.ones(24), n)[:, hour]
    history = {
        "sends": sends,
        "offer_sent": offer_sent,
        "last_order": np.where(np.isnat(just_bought), last_order, just_bought),
        "last_kitchen": np.where(np.isnat(just_bought), last_kitchen, just_bought),
        "as_of": as_of,
    }
    return frame, history


def _is_true(value: object) -> bool:
    return not pd.isna(value) and bool(value)


def _local_minute(moment: pd.Timestamp, zone: str | None) -> int:
    zone = "UTC" if pd.isna(zone) else zone
    local = moment.tz_localize("UTC").tz_convert(zoneinfo.ZoneInfo(zone))
    return local.hour * 60 + local.minute


def check_decisions(frame: pd.DataFrame, history: dict, decisions, config: PolicyConfig, now: pd.Timestamp) -> int:
    """Assert every hard rule from the raw inputs; returns how many messages were checked."""
    table = decisions.table
    holdout = in_holdout(frame["customer_id"].to_numpy(object), config.holdout_share, config.holdout_salt)
    assert np.array_equal(table["holdout"].to_numpy(bool), holdout)
    assert (table.loc[holdout, "offer_id"] == NO_MESSAGE).all()
    propensity = table["propensity"].to_numpy(float)
    assert ((propensity > 0) & (propensity <= 1 + 1e-12)).all()
    offers = {offer.offer_id: offer for offer in CATALOG.offers}
    checked = 0
    for row in np.flatnonzero((table["offer_id"] != NO_MESSAGE).to_numpy()):
        decision = table.iloc[row]
        customer = frame.iloc[row]
        offer, channel = offers[decision["offer_id"]], decision["channel"]
        send_at = pd.Timestamp(decision["send_at"])
        label = f"customer {customer['customer_id']} got {offer.offer_id}/{channel} at {send_at}"
        # Consent and opt-outs.
        assert _is_true(customer[f"{channel}_consent"]), f"{label} without consent"
        for flag in ("unsubscribed", "complained", "bounced"):
            assert customer[f"{channel}_{flag}"] == 0, f"{label} despite {flag}"
        if channel == "email" and not pd.isna(customer["unsubscribed_at"]):
            assert customer["unsubscribed_at"] > now, f"{label} after unsubscribing"
        # Lifecycle eligibility, failed payment, SMS first for billing alerts.
        assert customer["lifecycle_stage"] in offer.eligible_stages, label
        if offer.kind == "billing_alert":
            assert customer["failed_payments_30d"] > 0, label
            if channel != "sms":
                sms_ok = (
                    _is_true(customer["sms_consent"])
                    and customer["sms_unsubscribed"] == 0
                    and customer["sms_complained"] == 0
                    and customer["sms_bounced"] == 0
                )
                assert not sms_ok, f"{label}: SMS was allowed"
        # Send time: after now, after the minimum gap, never in quiet hours.
        assert send_at >= now, label
        last_message = customer["last_message_at"]
        if not pd.isna(last_message):
            assert send_at >= last_message + pd.Timedelta(hours=config.min_hours_between_messages), label
        assert not config.quiet_hours.is_quiet(_local_minute(send_at, customer["timezone"])), f"{label} in quiet hours"
        # Frequency cap over the rolling window ending at the send, this message included.
        window_start = np.datetime64((send_at - pd.Timedelta(days=config.frequency_window_days)).as_unit("us"))
        previous = history["sends"][row]
        assert int(np.sum(previous > window_start)) + 1 <= config.frequency_cap, f"{label}: frequency cap"
        # Offer cooldown.
        last_sent = history["offer_sent"][offer.offer_id][row]
        if not np.isnat(last_sent) and offer.cooldown_days > 0:
            assert send_at - pd.Timestamp(last_sent) >= offer.cooldown_days * DAY, f"{label}: cooldown"
        # No discount on what was bought within the offer's cooldown.
        if offer.discount_pct is not None or offer.fixed_cost is not None:
            bought = history["last_kitchen"][row] if offer.category == CATEGORY else history["last_order"][row]
            if not np.isnat(bought):
                assert send_at - pd.Timestamp(bought) >= offer.cooldown_days * DAY, f"{label}: just bought"
        assert decisions.suppression[row, decisions.option_labels.index(f"{offer.offer_id}/{channel}")] == 0
        checked += 1
    return checked


@st.composite
def scenarios(draw) -> dict:
    quiet_start = draw(st.integers(0, 24 * 60 - 1))
    quiet_length = draw(st.sampled_from([0, 60, 9 * 60, 11 * 60 + 30, 22 * 60]))
    return {
        "n": draw(st.integers(1, 40)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "id_offset": draw(st.integers(0, 10**6)),
        "now": pd.Timestamp(draw(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31)))),
        "consent_rate": {channel: draw(st.sampled_from([0.0, 0.5, 1.0])) for channel in CHANNELS},
        "frequency_cap": draw(st.integers(0, 4)),
        "quiet_hours": QuietHours(start_minute=quiet_start, end_minute=(quiet_start + quiet_length) % (24 * 60)),
        "min_gap": draw(st.sampled_from([0.0, 6.0, 24.0, 36.0])),
        "horizon": draw(st.sampled_from([1, 6, 24, 48])),
        "holdout_share": draw(st.sampled_from([0.0, 0.05, 0.5])),
        "exploration_share": draw(st.sampled_from([0.0, 0.2, 1.0])),
        "count_source": draw(st.sampled_from(["context", "snapshot"])),
        "snapshot_lag_hours": draw(st.sampled_from([0, 30])),
        "category_column": draw(st.booleans()),
    }


def run_scenario(scenario: dict):
    now = scenario["now"]
    rng = np.random.default_rng(scenario["seed"])
    frame, history = build_population(rng, scenario["n"], now, scenario)
    config = PolicyConfig(
        frequency_cap=scenario["frequency_cap"],
        quiet_hours=scenario["quiet_hours"],
        min_hours_between_messages=scenario["min_gap"],
        send_horizon_hours=scenario["horizon"],
        holdout_share=scenario["holdout_share"],
        exploration_share=scenario["exploration_share"],
        uplift_priors=PRIORS,
        seed=scenario["seed"] % 1000,
    )
    decisions = decide(frame, CATALOG, now, config, as_of=history["as_of"])
    return frame, history, decisions, config, now


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_rule_is_ever_broken(scenario):
    frame, history, decisions, config, now = run_scenario(scenario)
    check_decisions(frame, history, decisions, config, now)


PERMISSIVE = {
    "n": 400,
    "seed": 1,
    "id_offset": 0,
    "now": pd.Timestamp("2025-03-30 00:30"),  # Europe's switch to summer time
    "consent_rate": {"email": 1.0, "sms": 0.5, "push": 0.5},
    "frequency_cap": 3,
    "quiet_hours": QuietHours(),
    "min_gap": 24.0,
    "horizon": 24,
    "holdout_share": 0.05,
    "exploration_share": 0.2,
    "count_source": "context",
    "snapshot_lag_hours": 30,
    "category_column": True,
}


def test_the_checks_have_messages_to_check_and_catch_breaches():
    frame, history, decisions, config, now = run_scenario(PERMISSIVE)
    checked = check_decisions(frame, history, decisions, config, now)
    assert checked >= 50, f"only {checked} messages: the property test would check almost nothing"
    codes = set(";".join(decisions.table["reason_codes"]).split(";"))
    for code in ("holdout", "frequency_cap", "no_sms_consent", "unsubscribed_email", "exploration", "best_value"):
        assert code in codes, f"no decision has reason {code!r}"
    assert any(code.startswith("cooldown:") for code in codes)
    assert any(code.startswith("recent_purchase:") for code in codes)
    # A breach planted in the decisions is caught: message a customer without e-mail consent.
    table = decisions.table.copy()
    row = int(np.flatnonzero(~frame["email_consent"].fillna(False).to_numpy(bool) & ~table["holdout"].to_numpy())[0])
    table.loc[row, ["offer_id", "channel", "send_at"]] = ["content_reminder", "email", now + pd.Timedelta(hours=12)]
    broken = type(decisions)(table, decisions.option_labels, decisions.suppression, decisions.values)
    with pytest.raises(AssertionError):
        check_decisions(frame, history, broken, config, now)


def test_each_suppressed_option_records_its_rule():
    frame, _, decisions, _, _ = run_scenario(PERMISSIVE)
    labels = decisions.option_labels
    no_email = np.flatnonzero(
        ~frame["email_consent"].fillna(False).to_numpy(bool) & ~decisions.table["holdout"].to_numpy()
    )
    row = int(no_email[0])
    assert decisions.rule_of(row, labels.index("content_reminder/email")) == "no_consent"
    assert "no_email_consent" in decisions.table.loc[row, "reason_codes"]
    holdout_row = int(np.flatnonzero(decisions.table["holdout"].to_numpy())[0])
    assert {decisions.rule_of(holdout_row, k) for k in range(len(labels))} == {"holdout"}
    options = decisions.options_for(row)
    assert set(options["suppressed_by"].dropna()) <= set(RULES)
    assert len(options) == len(labels)


def test_decisions_are_reproducible_and_exploration_follows_its_share():
    frame, _, first, config, now = run_scenario(PERMISSIVE)
    _, _, second, _, _ = run_scenario(PERMISSIVE)
    pd.testing.assert_frame_equal(first.table, second.table)
    # Order does not matter: each customer's draws depend on its id, the seed and the time.
    reversed_frame = frame.iloc[::-1].reset_index(drop=True)
    reversed_decisions = decide(reversed_frame, CATALOG, now, config, as_of=now - pd.Timedelta(hours=30))
    pd.testing.assert_frame_equal(reversed_decisions.table.iloc[::-1].reset_index(drop=True), first.table)
    explored = first.table.loc[~first.table["holdout"], "explored"].to_numpy()
    share = explored.mean()
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(explored)), share
    # Propensity: 1 - eps + eps/n for the greedy option, eps/n for the others.
    table = first.table[~first.table["holdout"]]
    n_choices = table["eligible_options"].to_numpy() + 1
    low, high = 0.2 / n_choices, 0.8 + 0.2 / n_choices
    propensity = table["propensity"].to_numpy()
    assert np.all(np.isclose(propensity, low) | np.isclose(propensity, high))
    assert np.all(np.isclose(propensity[~table["explored"].to_numpy()], high[~table["explored"].to_numpy()]))


def test_holdout_is_about_the_configured_share():
    ids = np.array([f"customer-{i}" for i in range(40_000)], dtype=object)
    for share in (0.05, 0.2):
        observed = in_holdout(ids, share, "nbo-holdout-v1").mean()
        assert abs(observed - share) < 4 * np.sqrt(share * (1 - share) / len(ids)), (share, observed)
    # Another salt draws another group of the same size.
    first, other = in_holdout(ids, 0.05, "a"), in_holdout(ids, 0.05, "b")
    assert (first & other).mean() < 0.01


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=50, unique=True),
    st.floats(0.0, 0.99),
    st.text(min_size=1, max_size=10),
)
def test_holdout_depends_on_the_id_alone(ids, share, salt):
    ids = np.array(ids, dtype=object)
    whole = in_holdout(ids, share, salt)
    one_by_one = np.array([in_holdout(np.array([i], dtype=object), share, salt)[0] for i in ids])
    assert np.array_equal(whole, one_by_one)
    order = np.random.default_rng(0).permutation(len(ids))
    assert np.array_equal(in_holdout(ids[order], share, salt), whole[order])


def test_holdout_is_identical_in_another_process_with_another_hash_seed():
    ids = [f"C{i:07d}" for i in range(200)] + ["émile", "42", "a b"]
    here = hash_uniform(np.array(ids, dtype=object), "nbo-holdout-v1")
    code = (
        "import sys, numpy as np; from models.policy_rules import hash_uniform; "
        "ids = sys.stdin.read().split('\\n'); "
        "print(','.join(repr(float(x)) for x in hash_uniform(np.array(ids, dtype=object), 'nbo-holdout-v1')))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], input="\n".join(ids), capture_output=True, text=True, cwd=root,
        env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True,
    )  # fmt: skip
    there = np.array([float(x) for x in result.stdout.strip().split(",")])
    np.testing.assert_array_equal(here, there)


def _siphash24(key: bytes, data: bytes) -> int:
    """Reference SipHash-2-4 (Aumasson & Bernstein), written from the paper."""
    mask = (1 << 64) - 1

    def rotate(x: int, bits: int) -> int:
        return ((x << bits) | (x >> (64 - bits))) & mask

    def rounds(v0, v1, v2, v3, count):
        for _ in range(count):
            v0 = (v0 + v1) & mask
            v1 = rotate(v1, 13) ^ v0
            v0 = rotate(v0, 32)
            v2 = (v2 + v3) & mask
            v3 = rotate(v3, 16) ^ v2
            v0 = (v0 + v3) & mask
            v3 = rotate(v3, 21) ^ v0
            v2 = (v2 + v1) & mask
            v1 = rotate(v1, 17) ^ v2
            v2 = rotate(v2, 32)
        return v0, v1, v2, v3

    k0, k1 = struct.unpack("<QQ", key)
    v0, v1, v2, v3 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573
    whole = len(data) // 8 * 8
    blocks = [struct.unpack("<Q", data[i : i + 8])[0] for i in range(0, whole, 8)]
    last = (len(data) & 0xFF) << 56
    for position, byte in enumerate(data[whole:]):
        last |= byte << (8 * position)
    for block in [*blocks, last]:
        v3 ^= block
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 2)
        v0 ^= block
    v2 ^= 0xFF
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def _splitmix_finaliser(value: int) -> int:
    mask = (1 << 64) - 1
    value ^= value >> 30
    value = (value * 0xBF58476D1CE4E5B9) & mask
    value ^= value >> 27
    value = (value * 0x94D049BB133111EB) & mask
    return value ^ (value >> 31)


def test_holdout_hash_is_reproducible_from_its_definition():
    import hashlib

    ids = ["C0000001", "customer-123456789", "émile", "x"]
    key = hashlib.sha256(b"nbo-holdout-v1").hexdigest()[:16].encode()
    expected = [(_splitmix_finaliser(_siphash24(key, i.encode())) >> 11) * 2.0**-53 for i in ids]
    np.testing.assert_array_equal(hash_uniform(np.array(ids, dtype=object), "nbo-holdout-v1"), expected)


def test_missing_customer_ids_and_lifecycle_column_are_clear_errors():
    frame, _, _, config, now = run_scenario({**PERMISSIVE, "n": 3})
    with pytest.raises(ValueError, match="lifecycle_stage"):
        decide(frame.drop(columns="lifecycle_stage"), CATALOG, now, config)
    broken = frame.astype({"customer_id": object})
    broken.loc[1, "customer_id"] = None
    with pytest.raises(ValueError, match="customer ids must not be missing: 1 rows"):
        decide(broken, CATALOG, now, config)


def test_request_context_overrides_the_snapshot():
    frame, _, _, config, now = run_scenario({**PERMISSIVE, "n": 120, "exploration_share": 0.0, "holdout_share": 0.0})
    before = decide(frame, CATALOG, now, config)
    # Consent withdrawn a second ago.
    row = int(np.flatnonzero((before.table["channel"] == "email").to_numpy())[0])
    customer = frame.loc[row, "customer_id"]
    context = pd.DataFrame({"customer_id": [customer], "email_consent": pd.array([False], dtype="boolean")})
    after = decide(apply_context(frame, context), CATALOG, now, config)
    assert after.table.loc[row, "channel"] != "email"
    assert "no_email_consent" in after.table.loc[row, "reason_codes"]
    others = np.arange(len(frame)) != row
    pd.testing.assert_frame_equal(after.table[others], before.table[others])
    # A purchase a minute ago: discounts allowed before are now removed by the purchase rule.
    discount = before.option_labels.index("discount_10/email")
    row = int(np.flatnonzero(before.suppression[:, discount] == 0)[0])
    context = pd.DataFrame(
        {"customer_id": [frame.loc[row, "customer_id"]], "last_purchase_at": [now - pd.Timedelta(minutes=1)]}
    )
    after = decide(apply_context(frame, context), CATALOG, now, config)
    assert after.rule_of(row, discount) == "recent_purchase"
    assert "recent_purchase:discount_10" in after.table.loc[row, "reason_codes"]
    with pytest.raises(ValueError, match="not in the snapshot"):
        apply_context(frame, pd.DataFrame({"customer_id": ["nobody"], "email_consent": [True]}))
    with pytest.raises(ValueError, match="repeats customers"):
        apply_context(frame, pd.DataFrame({"customer_id": [customer, customer]}))


def test_purchase_recency_columns_pivot_only_discounted_catalog_items():
    recency = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "category": ["kitchen", "garden", "kitchen"],
            "lines": [3, 1, 2],
            "days_since_last_purchase": [4.0, 1.0, 40.0],
        }
    )
    wide = purchase_recency_columns(recency, CATALOG, ["b", "c", "a"])
    assert list(wide.columns) == ["days_since_purchase__category__kitchen"]
    assert wide.iloc[:, 0].tolist()[0] == 40.0 and np.isnan(wide.iloc[1, 0]) and wide.iloc[2, 0] == 4.0
