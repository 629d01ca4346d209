"""The options a decision chooses among, and reading per-customer inputs as numpy arrays.

An option is one (offer, channel) pair from the catalog on a channel the policy uses; "no
message" is kept apart (index -1 in choices, value 0). Input readers turn optional columns into
arrays with explicit defaults, so every rule sees the same conservative reading of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.catalog import Catalog, Offer

__all__ = [
    "FrameColumns",
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
_TEXT = pd.api.types.pandas_dtype("str")
_MICROSECONDS = np.dtype("datetime64[us]")
#: Frames up to this many rows convert all their numpy-numeric columns in one block (memory stays small).
_BLOCK_ROWS = 10_000
#: Grids kept per (catalog offers, channels): a service decides one customer per call.
_GRID_CACHE_SIZE = 16
_grid_cache: dict[tuple[int, tuple[str, ...]], OptionGrid] = {}


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
    def cached(cls, catalog: Catalog, channels: Sequence[str]) -> OptionGrid:
        """`from_catalog`, built once per catalog offers and channels (catalogs and offers are frozen).

        Keyed on the identity of `catalog.offers`; the grid holds that tuple, so the key stays valid.
        """
        channels = tuple(channels)
        key = (id(catalog.offers), channels)
        grid = _grid_cache.get(key)
        if grid is None or grid.offers is not catalog.offers:
            grid = cls.from_catalog(catalog, channels)
            if len(_grid_cache) >= _GRID_CACHE_SIZE:
                _grid_cache.pop(next(iter(_grid_cache)))
            _grid_cache[key] = grid
        return grid

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
        return cls(catalog.offers, channels, _read_only(offer_index, np.intp), _read_only(channel_index, np.intp))

    @property
    def size(self) -> int:
        """Number of message options (without "no message")."""
        return len(self.offer_index)

    @cached_property
    def offer_ids(self) -> NDArray[np.object_]:
        """Offer id of each option (read-only)."""
        return _read_only([self.offers[i].offer_id for i in self.offer_index], object)

    @cached_property
    def option_channels(self) -> NDArray[np.object_]:
        """Channel of each option (read-only)."""
        return _read_only([self.channels[i] for i in self.channel_index], object)

    @cached_property
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


def _read_only(values: object, dtype: object) -> NDArray:
    array = np.asarray(values, dtype=dtype)
    array.flags.writeable = False
    return array


class FrameColumns:
    """The decision frame's columns as read-only numpy arrays, each converted once.

    A decision reads about a hundred columns of a wide frame, several more than once; a pandas
    column read costs ~10 microseconds whatever the row count, so a one-customer request spends
    most of its time there. Columns are read once, and small frames convert every numpy-numeric
    column in one block (a quarter of the cost of reading them one by one).
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n_rows = len(frame)
        self._labels = frame.columns.tolist()
        self._names = set(self._labels)  # set look-ups: a pandas Index's cost ~1 us each
        self._arrays: dict[tuple[str, str], NDArray | None] = {}
        self._block: tuple[dict[str, int], NDArray[np.float64]] | None = None
        self._block_read = False
        self._row_objects: dict[str, object] = {}
        self._row_stamps: dict[str, pd.Timestamp] = {}

    @classmethod
    def of(cls, frame: pd.DataFrame | FrameColumns) -> FrameColumns:
        """`frame` itself when it already is a `FrameColumns`, else a new one over it."""
        return frame if isinstance(frame, FrameColumns) else cls(frame)

    def __len__(self) -> int:
        return self.n_rows

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def floats(self, name: str) -> NDArray[np.float64] | None:
        """A numeric or boolean column as float64 (NaN for missing values); None when absent."""
        key = ("float", name)
        if key not in self._arrays:
            self._arrays[key] = self._floats(name)
        return self._arrays[key]

    def _numeric_block(self) -> tuple[dict[str, int], NDArray[np.float64]] | None:
        """({name: position}, float64 matrix) of numpy-numeric columns read in one go, or None.

        One row: every numpy bool/int/float column, from the row (cheapest with ~60 pandas blocks).
        Up to `_BLOCK_ROWS` rows: every numeric column, when all of them have numpy dtypes.
        Repeated column names are left out (they take the one-by-one path).
        """
        if not self._block_read:
            self._block_read = True
            if self.n_rows == 1:
                self._block = self._row_block()
            elif self.n_rows <= _BLOCK_ROWS:
                numeric = self.frame.select_dtypes(include=["number", "bool"])
                if all(_is_numpy_numeric(dtype) for dtype in numeric.dtypes.to_numpy()):
                    repeated = self._repeated_labels()
                    positions = {
                        name: position for position, name in enumerate(numeric.columns.tolist()) if name not in repeated
                    }
                    self._block = (positions, _frozen(numeric.to_numpy(dtype=np.float64, copy=True), False))
        return self._block

    def _row_block(self) -> tuple[dict[str, int], NDArray[np.float64]]:
        """The one row's numeric values; its text, object and datetime64[us] values are kept too.

        Text and object cells hold what `to_numpy(dtype=object)` gives (NaN when a "str" is missing).
        """
        row = self.frame.iloc[0].to_numpy()
        repeated = self._repeated_labels()
        numeric, names = [], {}
        for position, (name, dtype) in enumerate(zip(self._labels, self.frame.dtypes.to_numpy(), strict=True)):
            if name in repeated:
                continue
            if isinstance(dtype, np.dtype):
                if dtype.kind in "biuf":
                    names[name] = len(numeric)
                    numeric.append(row[position])
                elif dtype.kind == "O":
                    self._row_objects[name] = row[position]
                elif dtype == _MICROSECONDS:
                    self._row_stamps[name] = row[position]
            elif dtype == _TEXT:
                self._row_objects[name] = row[position]
        return names, _frozen(np.array(numeric, dtype=np.float64).reshape(1, len(numeric)), False)

    def _repeated_labels(self) -> set:
        if len(self._names) == len(self._labels):
            return set()
        return set(pd.Index(self._labels)[pd.Index(self._labels).duplicated()])

    def _floats(self, name: str) -> NDArray[np.float64] | None:
        if name not in self._names:
            return None
        block = self._numeric_block()
        if block is not None and name in block[0]:
            return block[1][:, block[0][name]]
        column = self.frame[name]
        dtype = column.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return _frozen(column.to_numpy().astype(np.float64), False)
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise ValueError(f"column {name!r} must be numeric, got dtype {dtype}")
        return _frozen(column.to_numpy(dtype=float, na_value=np.nan), True)

    def booleans(self, name: str, default: bool) -> NDArray[np.bool_]:
        """A 0/1 or boolean column as bools: a missing value reads False, a missing column `default`."""
        if name not in self._names:
            return np.full(self.n_rows, default)
        key = ("bool", name)
        if key not in self._arrays:
            self._arrays[key] = self._booleans(name)
        return self._arrays[key]

    def _booleans(self, name: str) -> NDArray[np.bool_]:
        block = self._numeric_block()
        if block is not None and name in block[0]:
            # numpy bool, int or float: exactly the 0/1 reading below (NaN > 0 is False).
            return _frozen(self.floats(name) > 0, False)
        dtype = self.frame[name].dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
            return _frozen(np.nan_to_num(self.floats(name), nan=0.0) > 0, False)
        if isinstance(dtype, np.dtype) and dtype.kind == "b":
            return _frozen(self.frame[name].to_numpy(), True)
        if pd.api.types.is_bool_dtype(dtype):
            return _frozen(self.frame[name].to_numpy(dtype=bool, na_value=False), True)
        if pd.api.types.is_numeric_dtype(dtype):
            return _frozen(np.nan_to_num(self.floats(name), nan=0.0) > 0, False)
        raise ValueError(f"column {name!r} must be boolean or 0/1, got dtype {dtype}")

    def timestamps(self, name: str) -> NDArray[np.datetime64] | None:
        """A timestamp column as UTC tz-naive datetime64[us] (NaT when missing); None when absent."""
        key = ("timestamp", name)
        if key not in self._arrays:
            self._arrays[key] = self._timestamps(name)
        return self._arrays[key]

    def _timestamps(self, name: str) -> NDArray[np.datetime64] | None:
        if name not in self._names:
            return None
        if self.n_rows == 1:
            self._numeric_block()
        if name in self._row_stamps:  # a Timestamp or datetime64 (unit us), or NaT, from the one row
            stamp = pd.Timestamp(self._row_stamps[name])
            value = np.datetime64("NaT", "us") if stamp is pd.NaT else stamp.as_unit("us").to_datetime64()
            return _frozen(np.array([value], dtype="datetime64[us]"), False)
        column = self.frame[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        elif not pd.api.types.is_datetime64_dtype(column.dtype):
            try:
                column = pd.to_datetime(column, utc=True).dt.tz_localize(None)
            except (ValueError, TypeError) as error:
                raise ValueError(f"column {name!r} must hold timestamps: {error}") from None
        return _frozen(column.to_numpy(dtype="datetime64[us]"), True)

    def objects(self, name: str) -> NDArray[np.object_]:
        """A column as Python objects (`Series.to_numpy(dtype=object)`); KeyError when absent."""
        key = ("object", name)
        if key not in self._arrays:
            if self.n_rows == 1:
                self._numeric_block()
            if name in self._row_objects:
                value = np.empty(1, dtype=object)
                value[0] = self._row_objects[name]
                self._arrays[key] = _frozen(value, False)
            else:
                self._arrays[key] = _frozen(self.frame[name].to_numpy(dtype=object), True)
        return self._arrays[key]


def _is_numpy_numeric(dtype: object) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind in "biuf"


def _frozen(array: NDArray, may_share: bool) -> NDArray:
    """`array` made read-only; copied first when it may be a view of the frame's own data."""
    if may_share:
        array = array.copy()
    array.flags.writeable = False
    return array


def bool_column(frame: pd.DataFrame | FrameColumns, name: str, default: bool) -> NDArray[np.bool_]:
    """A 0/1 or boolean column as bools; a missing value reads False, a missing column `default`."""
    return FrameColumns.of(frame).booleans(name, default)


def float_column(frame: pd.DataFrame | FrameColumns, name: str) -> NDArray[np.float64] | None:
    """A numeric column as float64 with NaN for missing values; None when the column is absent."""
    return FrameColumns.of(frame).floats(name)


def timestamp_column(frame: pd.DataFrame | FrameColumns, name: str) -> NDArray[np.datetime64] | None:
    """A timestamp column as UTC tz-naive datetime64[us] (NaT when missing); None when absent."""
    return FrameColumns.of(frame).timestamps(name)


def days_since(
    now: np.datetime64,
    frame: pd.DataFrame | FrameColumns,
    *,
    timestamp: str | None = None,
    days: str | None = None,
    snapshot_age_days: float = 0.0,
) -> NDArray[np.float64]:
    """Days from the latest known event to `now`: the smaller of a timestamp column and a days column.

    `days` columns are counted at the snapshot's as-of time, so `snapshot_age_days` (now minus
    as-of) is added; NaN when neither source knows of an event.
    """
    stamps = None if timestamp is None else timestamp_column(frame, timestamp)
    values = None if days is None else float_column(frame, days)
    if stamps is None and values is None:
        return np.full(len(frame), np.nan)
    result = np.full(len(frame), np.inf)
    if stamps is not None:
        elapsed = (now - stamps) / DAY
        result = np.fmin(result, np.where(np.isnat(stamps), np.inf, elapsed))
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
