"""The options a decision chooses among, and reading per-customer inputs as numpy arrays.

An option is one (offer, channel) pair from the catalog on a channel the policy uses; "no
message" is kept apart (index -1 in choices, value 0). Input readers turn optional columns into
arrays with explicit defaults, so every rule sees the same conservative reading of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.catalog import Catalog, Offer

__all__ = [
    "OptionGrid",
    "apply_context",
    "bool_column",
    "days_since",
    "float_column",
    "purchase_recency_column",
    "purchase_recency_columns",
    "timestamp_column",
    "utc_now",
]

DAY = np.timedelta64(86_400_000_000, "us")


@dataclass(frozen=True)
class OptionGrid:
    """Every (offer, channel) option, flattened.

    Option k is `offers[offer_index[k]]` sent on `channels[channel_index[k]]`.
    """

    offers: tuple[Offer, ...]
    channels: tuple[str, ...]
    offer_index: NDArray[np.intp]
    channel_index: NDArray[np.intp]

    @classmethod
    def from_catalog(cls, catalog: Catalog, channels: Sequence[str]) -> OptionGrid:
        """All catalog offers on each of their channels that the policy uses (catalog order).

        `channels` of the grid keeps only the policy's channels some offer can use.
        """
        channels = tuple(channel for channel in channels if any(channel in offer.channels for offer in catalog.offers))
        offer_index, channel_index = [], []
        for position, offer in enumerate(catalog.offers):
            for channel in offer.channels:
                if channel in channels:
                    offer_index.append(position)
                    channel_index.append(channels.index(channel))
        if not offer_index:
            raise ValueError(f"catalog {catalog.version} has no offer on the policy's channels {list(channels)}")
        return cls(
            tuple(catalog.offers), channels, np.asarray(offer_index, np.intp), np.asarray(channel_index, np.intp)
        )

    @property
    def size(self) -> int:
        """Number of message options (without "no message")."""
        return len(self.offer_index)

    @property
    def offer_ids(self) -> NDArray[np.object_]:
        """Offer id of each option."""
        return np.array([self.offers[i].offer_id for i in self.offer_index], dtype=object)

    @property
    def option_channels(self) -> NDArray[np.object_]:
        """Channel of each option."""
        return np.array([self.channels[i] for i in self.channel_index], dtype=object)

    @property
    def labels(self) -> tuple[str, ...]:
        """`offer_id/channel` per option."""
        return tuple(f"{offer}/{channel}" for offer, channel in zip(self.offer_ids, self.option_channels, strict=True))

    def send_costs(self) -> NDArray[np.float64]:
        """Cost of one send of each option."""
        return np.array(
            [
                self.offers[o].cost_per_send[self.channels[c]]
                for o, c in zip(self.offer_index, self.channel_index, strict=True)
            ]
        )


def utc_now(moment: object) -> np.datetime64:
    """A decision time as UTC tz-naive datetime64[us] (tz-aware times are converted)."""
    stamp = pd.Timestamp(moment)
    if stamp is pd.NaT:
        raise ValueError("the decision time is missing (NaT)")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.as_unit("us").to_datetime64()


def bool_column(frame: pd.DataFrame, name: str, default: bool) -> NDArray[np.bool_]:
    """A 0/1 or boolean column as bools; a missing value reads False, a missing column `default`."""
    if name not in frame.columns:
        return np.full(len(frame), default)
    column = frame[name]
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=bool, na_value=False)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return np.nan_to_num(column.to_numpy(dtype=float, na_value=np.nan), nan=0.0) > 0
    raise ValueError(f"column {name!r} must be boolean or 0/1, got dtype {column.dtype}")


def float_column(frame: pd.DataFrame, name: str) -> NDArray[np.float64] | None:
    """A numeric column as float64 with NaN for missing values; None when the column is absent."""
    if name not in frame.columns:
        return None
    column = frame[name]
    if not (pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)):
        raise ValueError(f"column {name!r} must be numeric, got dtype {column.dtype}")
    return column.to_numpy(dtype=float, na_value=np.nan)


def timestamp_column(frame: pd.DataFrame, name: str) -> NDArray[np.datetime64] | None:
    """A timestamp column as UTC tz-naive datetime64[us] (NaT when missing); None when absent."""
    if name not in frame.columns:
        return None
    column = frame[name]
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(column.dtype):
        try:
            column = pd.to_datetime(column, utc=True).dt.tz_localize(None)
        except (ValueError, TypeError) as error:
            raise ValueError(f"column {name!r} must hold timestamps: {error}") from None
    return column.to_numpy(dtype="datetime64[us]")


def days_since(
    now: np.datetime64,
    frame: pd.DataFrame,
    *,
    timestamp: str | None = None,
    days: str | None = None,
    snapshot_age_days: float = 0.0,
) -> NDArray[np.float64]:
    """Days from the latest known event to `now`: the smaller of a timestamp column and a days column.

    `days` columns are counted at the snapshot's as-of time, so `snapshot_age_days` (now minus
    as-of) is added; NaN when neither source knows of an event.
    """
    result = np.full(len(frame), np.inf)
    if timestamp is not None:
        stamps = timestamp_column(frame, timestamp)
        if stamps is not None:
            elapsed = (now - stamps) / DAY
            result = np.fmin(result, np.where(np.isnat(stamps), np.inf, elapsed))
    if days is not None:
        values = float_column(frame, days)
        if values is not None:
            result = np.fmin(result, np.where(np.isnan(values), np.inf, values + snapshot_age_days))
    return np.where(np.isinf(result), np.nan, result)


def purchase_recency_column(level: str, key: str) -> str:
    """Input column with days since the customer last bought this product or category."""
    return f"days_since_purchase__{level}__{key}"


def apply_context(frame: pd.DataFrame, context: pd.DataFrame, customer_id_column: str = "customer_id") -> pd.DataFrame:
    """The snapshot with request context laid over it: a non-missing context value wins.

    `context` has one row per customer (a subset of `frame`'s) and any decision input columns,
    e.g. `email_consent` just changed, `last_purchase_at` a minute ago, `last_message_at`,
    `messages_sent_7d`, `last_sent_at__<offer>`. New columns are added (missing elsewhere).
    """
    if customer_id_column not in context.columns:
        raise ValueError(f"request context has no {customer_id_column!r} column")
    ids = context[customer_id_column].astype(str)
    repeated = ids[ids.duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"request context repeats customers {repeated[:3]}: give one row per customer")
    unknown = sorted(set(ids) - set(frame[customer_id_column].astype(str)))
    if unknown:
        raise ValueError(f"request context names {len(unknown)} customers not in the snapshot, e.g. {unknown[:3]}")
    aligned = context.assign(**{customer_id_column: ids}).set_index(customer_id_column)
    aligned = aligned.reindex(frame[customer_id_column].astype(str).to_numpy())
    aligned.index = frame.index
    result = frame.copy()
    for column in aligned.columns:
        result[column] = aligned[column].combine_first(frame[column]) if column in frame.columns else aligned[column]
    return result


def purchase_recency_columns(
    recency: pd.DataFrame, catalog: Catalog, customer_ids: Sequence[str], level: str = "category"
) -> pd.DataFrame:
    """Wide `days_since_purchase__<level>__<key>` columns for the catalog's discounted items.

    `recency` is `features.families.products.purchase_recency`'s long table (customer_id,
    category or product_id, days_since_last_purchase); rows follow `customer_ids`, NaN where the
    customer never bought the item.
    """
    key_column = {"category": "category", "product": "product_id"}.get(level)
    if key_column is None:
        raise ValueError(f"level must be 'category' or 'product', got {level!r}")
    wanted = {
        getattr(offer, key_column)
        for offer in catalog.offers
        if getattr(offer, key_column) is not None and (offer.discount_pct is not None or offer.fixed_cost is not None)
    }
    missing = {"customer_id", key_column, "days_since_last_purchase"} - set(recency.columns)
    if missing:
        raise ValueError(f"purchase recency table lacks columns {sorted(missing)}")
    subset = recency[recency[key_column].isin(sorted(wanted))]
    wide = subset.pivot_table(index="customer_id", columns=key_column, values="days_since_last_purchase", aggfunc="min")
    wide = wide.reindex(index=pd.Index(customer_ids, dtype=object).astype(str), columns=sorted(wanted))
    wide.columns = [purchase_recency_column(level, key) for key in wide.columns]
    return wide.reset_index(drop=True)
