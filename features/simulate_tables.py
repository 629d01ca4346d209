"""Turn the simulator's integer-coded arrays into the contract's pandas tables.

Strings are built once per distinct value and gathered with Arrow `take`, so a million
customers' ids cost one small array plus offsets; columns come out as pandas' Arrow-backed
`str` dtype and timestamps as tz-naive UTC `datetime64[us]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.simulate_calendar import TIMEZONES, Clock
from features.simulate_effects import ARMS, OFFERS
from features.simulate_events import CHANNELS, EVENT_TYPES
from features.simulate_orders import CATEGORIES
from features.simulate_population import (
    ACQUISITION_CHANNELS,
    EMAIL_FREQUENCIES,
    MESSAGE_CHANNELS,
    Population,
)

STRING_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)
SUBSCRIPTION_STATUS = ("active", "past_due", "cancelled")
PLANS = ("basic", "plus", "premium")


def _to_str(array: pa.Array) -> pd.Series:
    mapping = {pa.large_string(): STRING_DTYPE, pa.string(): STRING_DTYPE}
    return pd.Series(array.to_pandas(types_mapper=mapping.get), copy=False)


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids like C0000001: `prefix` + zero-padded number, as an Arrow string array."""
    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.large_string()), width=width, padding="0")
    separator = pa.scalar("", pa.large_string())
    return pc.binary_join_element_wise(pa.scalar(prefix, pa.large_string()), digits, separator)


def customer_labels(n: int) -> pa.Array:
    """Customer ids C0000001 .. for `n` customers (wider when n needs more digits)."""
    return padded_ids("C", np.arange(1, n + 1), max(7, len(str(n))))


def labelled(labels: pa.Array | Sequence[str], codes: np.ndarray) -> pd.Series:
    """Gather `labels[codes]` as a `str` column; negative codes become missing."""
    if not isinstance(labels, pa.Array):
        labels = pa.array(list(labels), pa.large_string())
    codes = np.asarray(codes)
    indices = pa.array(codes.astype(np.int64), mask=codes < 0)
    return _to_str(labels.take(indices))


def timestamps(clock: Clock, time: np.ndarray) -> pd.Series:
    """Float days since start as a `datetime64[us]` column; infinite times become NaT."""
    time = np.asarray(time, dtype=np.float64)
    finite = np.isfinite(time)
    values = clock.to_datetime64(np.where(finite, time, 0.0))
    values[~finite] = np.datetime64("NaT")
    return pd.Series(values, dtype="datetime64[us]")


def customers_table(clock: Clock, pop: Population, ids: pa.Array, email_unsubscribe: np.ndarray) -> pd.DataFrame:
    unsubscribed = np.where(email_unsubscribe < clock.n_days, email_unsubscribe, np.inf)
    return pd.DataFrame(
        {
            "customer_id": _to_str(ids),
            "signup_at": timestamps(clock, pop.signup),
            "acquisition_channel": labelled(ACQUISITION_CHANNELS, pop.acquisition),
            "timezone": labelled([zone for zone, _ in TIMEZONES], pop.zone),
            "email_consent": pop.email_consent.copy(),
            "sms_consent": pop.sms_consent.copy(),
            "push_consent": pop.push_consent.copy(),
            "unsubscribed_at": timestamps(clock, unsubscribed),
        }
    )


def transactions_table(clock: Clock, ids: pa.Array, lines: dict[str, np.ndarray]) -> pd.DataFrame:
    n_orders = int(lines["order_number"].max(initial=0))
    order_labels = padded_ids("O", np.arange(1, n_orders + 1), max(9, len(str(n_orders))))
    product_labels = padded_ids("P", np.arange(1, 1000), 4)
    return pd.DataFrame(
        {
            "customer_id": labelled(ids, lines["customer"]),
            "ts": timestamps(clock, lines["time"]),
            "amount": lines["amount"].astype(np.float64),
            "order_id": labelled(order_labels, lines["order_number"] - 1),
            "product_id": labelled(product_labels, lines["product"]),
            "category": labelled([c[0] for c in CATEGORIES], lines["category"]),
            "quantity": lines["quantity"].astype(np.int64),
            "discount_amount": lines["discount_amount"].astype(np.float64),
        }
    )


def events_table(
    clock: Clock, ids: pa.Array, campaign_ids: Sequence[str], events: dict[str, np.ndarray]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": labelled(ids, events["customer"]),
            "ts": timestamps(clock, events["time"]),
            "channel": labelled(CHANNELS, events["channel"]),
            "event_type": labelled(EVENT_TYPES, events["event_type"]),
            "campaign_id": labelled(campaign_ids, events["campaign"]),
            "offer_id": labelled(ARMS, events["offer"]),
        }
    )


def exposures_table(
    clock: Clock, ids: pa.Array, campaign_ids: Sequence[str], exposures: dict[str, np.ndarray]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": labelled(ids, exposures["customer"]),
            "campaign_id": labelled(campaign_ids, exposures["campaign"]),
            "offer_id": labelled(ARMS, exposures["arm"]),
            "assigned_at": timestamps(clock, exposures["time"]),
            "channel": labelled(MESSAGE_CHANNELS, exposures["channel"]),
            "propensity": exposures["propensity"].astype(np.float64),
        }
    )


def subscriptions_table(clock: Clock, ids: pa.Array, subs: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": labelled(ids, subs["customer"]),
            "plan": labelled(PLANS, subs["plan"]),
            "started_at": timestamps(clock, subs["started"]),
            "renews_at": timestamps(clock, subs["renews"]),
            "status": labelled(SUBSCRIPTION_STATUS, subs["status"]),
            "usage": subs["usage"].astype(np.float64),
            "usage_limit": subs["usage_limit"].astype(np.float64),
        }
    )


def truth_columns(truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-offer truth columns in a stable order."""
    names = ["p_convert_control", "expected_revenue_control", "p_unsubscribe_control"]
    for kind in ("convert", "revenue", "unsubscribe"):
        names += [f"tau_{kind}_{offer}" for offer in OFFERS]
    return {name: truth[name].astype(np.float64) for name in names}


def ground_truth_table(
    clock: Clock,
    pop: Population,
    ids: pa.Array,
    end_truth: dict[str, np.ndarray],
    churn: dict[str, np.ndarray],
    expected_order_value: np.ndarray,
) -> pd.DataFrame:
    end = float(clock.n_days)
    churned = pop.churn_time < end
    frame = pd.DataFrame(
        {
            "customer_id": _to_str(ids),
            "purchase_rate": pop.purchase_rate,
            "price_sensitivity": pop.price_sensitivity,
            "engagement": pop.engagement0,
            "engagement_at_end": end_truth["engagement_now"],
            "engagement_decay_days": pop.decay_days,
            "spend_level": pop.spend_level,
            "expected_order_value": expected_order_value,
            "discount_propensity": pop.discount_propensity,
            "preferred_hour": pop.preferred_hour.astype(np.int64),
            "preferred_weekday": pop.preferred_weekday.astype(np.int64),
            "preferred_channel": labelled(MESSAGE_CHANNELS, pop.preferred_channel),
            "timezone": labelled([zone for zone, _ in TIMEZONES], pop.zone),
            "favourite_category": labelled([c[0] for c in CATEGORIES], pop.favourite_category),
            "email_frequency": labelled(EMAIL_FREQUENCIES, pop.email_frequency),
            "has_app": pop.has_app.copy(),
            "hard_bounce": pop.hard_bounce.copy(),
            "recent_sends_30d": end_truth["recent_sends_30d"],
            "churn_hazard_30d_at_end": -np.expm1(
                -(pop.cumulative_hazard(np.full(pop.size, end + 30.0)) - pop.cumulative_hazard(np.full(pop.size, end)))
            ),
            "churned_at": timestamps(clock, np.where(churned, pop.churn_time, np.inf)),
            "alive_at_end": ~churned,
            "p_churn_90d": churn["p_churn_90d"],
            "p_no_purchase_90d": churn["p_no_purchase_90d"],
        }
    )
    return frame.assign(**truth_columns(end_truth))


def exposure_truth_table(
    clock: Clock,
    ids: pa.Array,
    campaign_ids: Sequence[str],
    exposures: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": labelled(ids, exposures["customer"]),
            "campaign_id": labelled(campaign_ids, exposures["campaign"]),
            "offer_id": labelled(ARMS, exposures["arm"]),
            "assigned_at": timestamps(clock, exposures["time"]),
            "engagement_now": truth["engagement_now"],
            "recent_sends_30d": truth["recent_sends_30d"],
        }
    )
    return frame.assign(**truth_columns(truth))
