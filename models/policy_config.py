"""Settings of the decision policy that are not properties of an offer, and the input column names.

The catalog (features/catalog.py) says what each offer is and costs; `PolicyConfig` holds what
the retention team sets once for every offer: frequency cap, quiet hours, holdout share,
exploration share, fallbacks, and priors for offers no uplift model has estimated yet.

Decision input, one row per customer (names as configured below; * = required):
- `customer_id`*, `timezone` (IANA; empty = `default_timezone`), `lifecycle_stage`*.
- Per channel: `<channel>_consent` (bool; missing = no consent), `<channel>_unsubscribed`,
  `<channel>_complained`, `<channel>_bounced` (0/1), `unsubscribed_at` (e-mail, timestamp).
- Money: `avg_order_value` (before discount), `subscriber_value` (what losing the customer's
  channel costs), `p_convert__control` (baseline conversion); fallbacks fill missing values.
- Per offer: `uplift_convert__<offer>`, `uplift_unsubscribe__<offer>`, `uplift_revenue__<offer>`,
  `p_convert__<offer>`, each optionally per channel (`…__<offer>__<channel>` wins); last send
  as `last_sent_at__<offer>` (timestamp) or `days_since_sent__<offer>` (days at the snapshot).
- Purchases: `recency_days` (days at the snapshot), `days_since_purchase__category__<c>` /
  `…__product__<p>` for discounted items, `last_purchase_at` (context: a purchase just now).
- Messages: `messages_sent_7d` (in the rolling window up to now; else the snapshot's
  `<channel>_sends_7d`), `last_message_at`; `failed_payments_30d`; `churn_risk` (reported).
- Send time: `hour_profile_00..23`, `weekday_profile_0..6`, `responses_365d`, `rfm_segment`.
"""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.catalog import MESSAGE_CHANNELS
from models.send_time import MAX_SLOTS, QuietHours

__all__ = [
    "CHANNEL_STATUS_RULES",
    "NO_MESSAGE",
    "OfferEffectPrior",
    "PolicyConfig",
    "column_for",
]

#: The offer id of the "send nothing" option (value 0).
NO_MESSAGE = "no_message"

#: Per-channel flags (engagement features, 1 = happened) that forbid the channel, and their rule.
CHANNEL_STATUS_RULES: tuple[tuple[str, str], ...] = (
    ("unsubscribed", "unsubscribed"),
    ("complained", "complained"),
    ("bounced", "bounced"),
)

# Per-offer input columns; `{offer}` is the catalog offer_id, `{channel}` a message channel.
# A per-(offer, channel) column, when present, overrides the per-offer one for that channel.
_COLUMN_PATTERNS = {
    "uplift_convert": "uplift_convert__{offer}",
    "uplift_revenue": "uplift_revenue__{offer}",
    "uplift_unsubscribe": "uplift_unsubscribe__{offer}",
    "p_convert": "p_convert__{offer}",
    "last_sent_at": "last_sent_at__{offer}",
    "days_since_sent": "days_since_sent__{offer}",
}
BASELINE_CONVERT = "p_convert__control"


@cache
def column_for(quantity: str, offer_id: str, channel: str | None = None) -> str:
    """Input column name of a per-offer quantity, e.g. `uplift_convert__discount_10[__email]` (formatted once)."""
    name = _COLUMN_PATTERNS[quantity].format(offer=offer_id)
    return f"{name}__{channel}" if channel else name


class OfferEffectPrior(BaseModel):
    """An analyst's assumed effect of an offer no model has estimated (same for every customer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    convert: float = Field(ge=-1, le=1, description="uplift in conversion probability")
    unsubscribe: float = Field(default=0.0, ge=-1, le=1, description="uplift in unsubscribe probability")
    revenue: float | None = Field(default=None, description="uplift in revenue (reporting only)")


class PolicyConfig(BaseModel):
    """Every policy setting, with the defaults a retention team would start from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[str, ...] = Field(default=MESSAGE_CHANNELS, min_length=1, description="channels in use")
    frequency_cap: int = Field(default=3, ge=0, description="most messages per customer per rolling window")
    frequency_window_days: int = Field(default=7, ge=1, description="length of the rolling window")
    min_hours_between_messages: float = Field(
        default=24.0, ge=0, le=24 * 7, description="no message sooner than this after the last one"
    )
    quiet_hours: QuietHours = Field(default_factory=QuietHours, description="local times when nothing is sent")
    send_horizon_hours: int = Field(
        default=24, ge=1, le=MAX_SLOTS // 2, description="how far ahead the send time may be put"
    )
    holdout_share: float = Field(default=0.05, ge=0, lt=1, description="share of customers who get nothing")
    holdout_salt: str = Field(default="nbo-holdout-v1", min_length=1, description="changes the holdout draw")
    exploration_share: float = Field(
        default=0.05, ge=0, le=1, description="share of decisions drawn uniformly among eligible options"
    )
    seed: int = Field(default=0, description="seeds the exploration draws")
    blocking_flags: tuple[str, ...] = Field(
        default=("unsubscribed", "complained", "bounced"),
        description="per-channel 0/1 features `<channel>_<flag>` that forbid the channel",
    )
    assume_consent_when_unknown: bool = Field(
        default=False, description="treat a missing consent column as consent (never a missing value)"
    )
    default_timezone: str = Field(default="UTC", description="for customers without a time zone")
    fallback_order_value: float | None = Field(
        default=None, ge=0, description="order value for customers without one (e.g. never ordered)"
    )
    fallback_subscriber_value: float | None = Field(
        default=None, ge=0, description="subscriber value for customers without one"
    )
    uplift_priors: dict[str, OfferEffectPrior] = Field(
        default_factory=dict, description="assumed effects for offers without model columns, by offer_id"
    )
    top_k_drivers: int = Field(default=3, ge=0, le=10, description="SHAP drivers named per decision")
    chunk_size: int = Field(default=100_000, ge=1, description="customers decided at a time (memory bound)")
    # Input column names.
    customer_id_column: str = "customer_id"
    timezone_column: str = "timezone"
    lifecycle_column: str = "lifecycle_stage"
    churn_risk_column: str = "churn_risk"
    order_value_column: str = "avg_order_value"
    subscriber_value_column: str = "subscriber_value"
    failed_payment_column: str = "failed_payments_30d"
    segment_column: str = "rfm_segment"
    messages_sent_column: str | None = Field(
        default=None, description="messages in the rolling window up to now; None: messages_sent_<window>d"
    )
    last_message_column: str = "last_message_at"
    last_purchase_column: str = "last_purchase_at"
    recency_column: str = "recency_days"

    @model_validator(mode="after")
    def _check(self) -> PolicyConfig:
        unknown = [channel for channel in self.channels if channel not in MESSAGE_CHANNELS]
        if unknown:
            raise ValueError(f"channels {unknown} are not message channels {list(MESSAGE_CHANNELS)}")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels are repeated: {list(self.channels)}")
        known_flags = [flag for flag, _ in CHANNEL_STATUS_RULES]
        if "unsubscribed" not in self.blocking_flags or not set(self.blocking_flags) <= set(known_flags):
            raise ValueError(
                f"blocking_flags must include 'unsubscribed' and be among {known_flags}, "
                f"got {list(self.blocking_flags)}"
            )
        return self

    @property
    def messages_sent_name(self) -> str:
        """Column with the messages sent in the rolling window before the decision."""
        return self.messages_sent_column or f"messages_sent_{self.frequency_window_days}d"
