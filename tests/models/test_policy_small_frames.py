"""One customer at a time decides exactly as a whole batch, and the per-call caches stay correct.

The service decides one customer per request, so `decide` reads small frames through one shared
column reader (a block conversion for numpy-numeric columns) and keeps the option grid per
catalog. These tests pin that the shortcuts change nothing: every row decided alone equals the
batch, column for column, on a frame where most rules fire, with numpy and pandas nullable
dtypes; and a different catalog or configuration in the same process gets its own answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import features
from features.catalog import Catalog, load_catalog
from models.policy import decide
from models.policy_config import OfferEffectPrior, PolicyConfig
from models.policy_options import FrameColumns, OptionGrid, bool_column, float_column, timestamp_column
from models.policy_rules import RULES
from models.send_time import HOUR_PROFILE_COLUMNS, WEEKDAY_PROFILE_COLUMNS, SendTimeModel

NOW = "2026-01-02T10:00:00"
N_CUSTOMERS = 60
CATALOG = load_catalog(Path(features.__file__).parent / "default_catalog.yaml")
MODEL_OFFERS = ("discount_10", "free_shipping", "content_reminder")
PRIORS = {
    offer.offer_id: OfferEffectPrior(convert=0.06, unsubscribe=0.001)
    for offer in CATALOG.offers
    if offer.offer_id not in MODEL_OFFERS
}
CONFIG = PolicyConfig(uplift_priors=PRIORS, holdout_share=0.1, exploration_share=0.2, frequency_cap=2)


def rule_frame(nullable: bool = False, seed: int = 7) -> pd.DataFrame:
    """Customers with snapshot features and request context that trip most rules.

    `nullable` stores consents, counts and a value column with pandas' nullable dtypes (the
    column-by-column reading path) instead of numpy dtypes (the block path).
    """
    rng = np.random.default_rng(seed)
    n = N_CUSTOMERS
    now = np.datetime64(NOW, "us")

    def some_times(share: float, days: float) -> np.ndarray:
        stamps = now - (rng.random(n) * days * 86_400e6).astype("timedelta64[us]")
        return np.where(rng.random(n) < share, stamps, np.datetime64("NaT", "us"))

    timezones = np.array(["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "", None], dtype=object)
    stages = np.array(["active", "at_risk", "lapsed", "win_back", "billing_issue", "renewal_due", None], dtype=object)
    frame = pd.DataFrame(
        {
            "customer_id": [f"S{i:03d}" for i in range(n)],
            "timezone": pd.array(rng.choice(timezones, n), dtype="str"),
            "lifecycle_stage": pd.array(rng.choice(stages, n), dtype="str"),
            "rfm_segment": pd.array(rng.choice(np.array(["A", "B", "C", None], dtype=object), n), dtype="str"),
            "recency_days": np.where(rng.random(n) < 0.9, rng.integers(0, 60, n), np.nan),
            "days_since_last_send": np.where(rng.random(n) < 0.7, rng.random(n) * 3, np.nan),
            "failed_payments_30d": rng.integers(0, 2, n),
            "avg_order_value": rng.gamma(2.0, 40.0, n),
            "subscriber_value": rng.gamma(2.0, 10.0, n),
            "p_convert__control": rng.random(n) * 0.2,
            "churn_risk": rng.random(n),
            "responses_365d": rng.integers(0, 40, n),
            "unsubscribed_at": some_times(0.15, 30),
            "last_message_at": some_times(0.3, 2),
            "last_purchase_at": pd.DatetimeIndex(some_times(0.2, 5)).tz_localize("UTC"),
            "last_sent_at__discount_10": some_times(0.3, 40),
            "messages_sent_7d": np.where(rng.random(n) < 0.5, rng.integers(0, 4, n), np.nan),
        }
    )
    for channel in ("email", "sms", "push"):
        frame[f"{channel}_consent"] = rng.random(n) < 0.8
        frame[f"{channel}_sends_7d"] = rng.integers(0, 2, n)
        for flag, rate in (("unsubscribed", 0.1), ("complained", 0.05), ("bounced", 0.05)):
            frame[f"{channel}_{flag}"] = (rng.random(n) < rate).astype("int64")
    for offer_id in MODEL_OFFERS:
        frame[f"uplift_convert__{offer_id}"] = rng.normal(0.05, 0.04, n)
        frame[f"uplift_unsubscribe__{offer_id}"] = rng.normal(0.0, 0.002, n)
        frame[f"days_since_sent__{offer_id}"] = np.where(rng.random(n) < 0.5, rng.random(n) * 40, np.nan)
    frame["uplift_convert__discount_10__sms"] = np.where(rng.random(n) < 0.5, np.nan, 0.09)
    hours = rng.dirichlet(np.ones(24), n)
    for hour, name in enumerate(HOUR_PROFILE_COLUMNS):
        frame[name] = hours[:, hour]
    weekdays = rng.dirichlet(np.ones(7), n)
    for day, name in enumerate(WEEKDAY_PROFILE_COLUMNS):
        frame[name] = weekdays[:, day]
    if nullable:
        for channel in ("email", "sms"):
            consent = pd.array(frame[f"{channel}_consent"].to_numpy(), dtype="boolean")
            consent[rng.random(n) < 0.1] = pd.NA
            frame[f"{channel}_consent"] = consent
        frame["failed_payments_30d"] = pd.array(frame["failed_payments_30d"].to_numpy(), dtype="Int64")
        frame.loc[rng.random(n) < 0.1, "failed_payments_30d"] = pd.NA
        frame["p_convert__control"] = pd.array(frame["p_convert__control"].to_numpy(), dtype="Float64")
    return frame


def send_time_model() -> SendTimeModel:
    rng = np.random.default_rng(3)
    counts = rng.poisson(1.0, (40, 24)).astype(float)
    return SendTimeModel().fit(counts, rng.poisson(1.0, (40, 7)), segments=rng.choice(["A", "B", "C"], 40))


def assert_same_decisions(alone: list, together) -> None:
    table = pd.concat([decisions.table for decisions in alone], ignore_index=True)
    pd.testing.assert_frame_equal(table, together.table, check_exact=True)
    suppression = np.vstack([decisions.suppression for decisions in alone])
    assert suppression.dtype == together.suppression.dtype
    np.testing.assert_array_equal(suppression, together.suppression)
    values = np.vstack([decisions.values for decisions in alone])
    assert values.dtype == together.values.dtype
    np.testing.assert_array_equal(values, together.values)  # NaN where unpriced, in the same places
    assert {decisions.option_labels for decisions in alone} == {together.option_labels}


@pytest.mark.parametrize("nullable", [False, True], ids=["numpy", "nullable"])
@pytest.mark.parametrize("with_model", [False, True], ids=["profiles", "send-time-model"])
def test_each_customer_alone_is_decided_as_in_the_batch(nullable: bool, with_model: bool) -> None:
    frame = rule_frame(nullable)
    model = send_time_model() if with_model else None
    together = decide(frame, CATALOG, NOW, CONFIG, send_time_model=model, as_of="2026-01-01")
    alone = [
        decide(
            frame.iloc[[row]].reset_index(drop=True), CATALOG, NOW, CONFIG, send_time_model=model, as_of="2026-01-01"
        )
        for row in range(len(frame))
    ]
    assert_same_decisions(alone, together)
    # The frame must exercise the rules and the choice, or the equality above says little.
    fired = {RULES[code - 1] for code in np.unique(together.suppression) if code}
    assert {"holdout", "no_consent", "unsubscribed", "lifecycle", "cooldown", "frequency_cap"} <= fired
    messaged = together.table["offer_id"] != "no_message"
    assert 0 < messaged.sum() < len(frame)
    assert together.table["explored"].any()
    assert together.table["send_at_local"].dropna().str[-6:].nunique() > 1  # several UTC offsets


def test_batches_in_chunks_and_sizes_agree() -> None:
    frame = rule_frame()
    whole = decide(frame, CATALOG, NOW, CONFIG)
    chunked = decide(frame, CATALOG, NOW, CONFIG.model_copy(update={"chunk_size": 7}))
    pairs = [
        decide(frame.iloc[start : start + 2].reset_index(drop=True), CATALOG, NOW, CONFIG) for start in range(0, 60, 2)
    ]
    assert_same_decisions([chunked], whole)
    assert_same_decisions(pairs, whole)


def test_a_different_catalog_or_config_in_the_same_process_gets_its_own_answer() -> None:
    frame = rule_frame().iloc[:20].reset_index(drop=True)
    first = decide(frame, CATALOG, NOW, CONFIG)
    # Fewer offers, and one with other costs: the cached grid of CATALOG must not be reused.
    smaller = Catalog.model_validate(
        {
            "version": "smaller",
            "offers": [
                {**offer.model_dump(), "cost_per_send": {channel: 5.0 for channel in offer.channels}}
                for offer in CATALOG.offers[:4]
            ],
        }
    )
    second = decide(frame, smaller, NOW, CONFIG)
    assert second.option_labels == OptionGrid.from_catalog(smaller, CONFIG.channels).labels
    assert len(second.option_labels) < len(first.option_labels)
    assert (second.table["expected_cost"] >= 5.0).sum() == (second.table["offer_id"] != "no_message").sum()
    # Same catalog, other channels: another grid.
    email_only = CONFIG.model_copy(update={"channels": ("email",)})
    third = decide(frame, CATALOG, NOW, email_only)
    assert {label.split("/")[1] for label in third.option_labels} == {"email"}
    # Same catalog, other priors: other values (nothing about the values is cached).
    no_priors = CONFIG.model_copy(update={"uplift_priors": {}})
    fourth = decide(frame, CATALOG, NOW, no_priors)
    assert np.isnan(fourth.values).sum() > np.isnan(first.values).sum()
    # An equal catalog built anew, and the first one again, give the first answer.
    rebuilt = Catalog.model_validate(CATALOG.model_dump())
    for catalog in (rebuilt, CATALOG):
        again = decide(frame, catalog, NOW, CONFIG)
        assert_same_decisions([again], first)


def test_cached_grid_is_keyed_on_the_catalog_and_channels() -> None:
    grid = OptionGrid.cached(CATALOG, ("email", "sms"))
    assert OptionGrid.cached(CATALOG, ["email", "sms"]) is grid
    fresh = OptionGrid.from_catalog(CATALOG, ("email", "sms"))
    assert grid.labels == fresh.labels
    np.testing.assert_array_equal(grid.offer_index, fresh.offer_index)
    assert OptionGrid.cached(CATALOG, ("sms", "email")).channels == ("sms", "email")
    rebuilt = Catalog.model_validate(CATALOG.model_dump())
    assert OptionGrid.cached(rebuilt, ("email", "sms")).offers is rebuilt.offers
    with pytest.raises(ValueError, match="read-only"):
        grid.offer_index[0] = 1


def test_column_reader_matches_pandas_one_column_at_a_time() -> None:
    frame = rule_frame(nullable=True)
    frame["flag_float"] = np.where(np.arange(len(frame)) % 3 == 0, np.nan, np.arange(len(frame)) % 2)
    numpy_frame = rule_frame(nullable=False)
    for source in (frame, numpy_frame):
        columns = FrameColumns(source)
        for name in ("avg_order_value", "recency_days", "failed_payments_30d", "p_convert__control", "email_consent"):
            expected = source[name].to_numpy(dtype=float, na_value=np.nan)
            np.testing.assert_array_equal(columns.floats(name), expected)
            np.testing.assert_array_equal(float_column(source, name), expected)
        for name in ("email_consent", "sms_consent", "push_unsubscribed", "failed_payments_30d"):
            column = source[name]
            if pd.api.types.is_bool_dtype(column.dtype):
                expected = column.to_numpy(dtype=bool, na_value=False)
            else:
                expected = np.nan_to_num(column.to_numpy(dtype=float, na_value=np.nan), nan=0.0) > 0
            np.testing.assert_array_equal(columns.booleans(name, True), expected)
            np.testing.assert_array_equal(bool_column(source, name, True), expected)
        stamps = pd.to_datetime(source["last_purchase_at"], utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")
        np.testing.assert_array_equal(timestamp_column(columns, "last_purchase_at"), stamps)
        assert columns.floats("not_a_column") is None
        assert not columns.booleans("not_a_column", False).any()
        shared = columns.floats("avg_order_value")
        assert columns.floats("avg_order_value") is shared and not shared.flags.writeable
    np.testing.assert_array_equal(FrameColumns(frame).booleans("flag_float", False), frame["flag_float"].to_numpy() > 0)
    with pytest.raises(ValueError, match="must be numeric"):
        FrameColumns(frame).floats("timezone")


@pytest.mark.parametrize("nullable", [False, True], ids=["numpy", "nullable"])
def test_one_row_reads_equal_the_same_row_of_the_batch(nullable: bool) -> None:
    frame = rule_frame(nullable)
    frame["big_count"] = np.arange(len(frame), dtype=np.uint64) + np.uint64(2**63)
    batch = FrameColumns(frame)
    numeric = [name for name in frame.columns if pd.api.types.is_numeric_dtype(frame[name].dtype)]
    stamps = ["unsubscribed_at", "last_message_at", "last_purchase_at", "last_sent_at__discount_10"]
    texts = ["customer_id", "timezone", "lifecycle_stage", "rfm_segment"]
    for row in (0, 1, 2, 3, 4, 5, 17, 59):
        alone = FrameColumns(frame.iloc[[row]].reset_index(drop=True))
        for name in numeric:
            np.testing.assert_array_equal(alone.floats(name), batch.floats(name)[[row]])
            np.testing.assert_array_equal(alone.booleans(name, False), batch.booleans(name, False)[[row]])
        for name in stamps:
            np.testing.assert_array_equal(alone.timestamps(name), batch.timestamps(name)[[row]])
        for name in texts:
            expected = batch.objects(name)[[row]]
            assert [repr(value) for value in alone.objects(name)] == [repr(value) for value in expected]
            assert type(alone.objects(name)[0]) is type(expected[0])


def test_send_time_segments_read_the_same_with_or_without_the_shortcut() -> None:
    model = send_time_model()
    counts = np.random.default_rng(1).poisson(1.0, (6, 24)).astype(float)
    plain = np.array(["A", "B", None, np.nan, "Z", "C"], dtype=object)  # str and missing: the look-up shortcut
    mixed = np.array(["A", "B", None, np.nan, "Z", np.str_("C")], dtype=object)  # a numpy string: pandas' path
    expected = model.predict_proba(counts, segments=mixed)
    shortcut = model.predict_proba(counts, segments=plain)
    for left, right in zip(shortcut, expected, strict=True):
        np.testing.assert_array_equal(left, right)
    population = model.predict_proba(counts, segments=None)[0]
    np.testing.assert_array_equal(shortcut[0][[2, 3, 4]], population[[2, 3, 4]])  # missing, unknown: population
    assert not np.array_equal(shortcut[0][0], population[0])
