"""The options a decision chooses among, and reading per-customer inputs as numpy arrays.

An option is one (offer, channel) pair from the catalog on a channel the policy uses; "no
message" is kept apart (index -1 in choices, value 0). Input readers turn optional columns into
arrays with explicit defaults, so every rule sees the same conservative reading of the data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.catalog import Catalog, Offer
from models.frame_blocks import block_layout
from models.policy_config import column_for

__all__ = [
    "URGENT_KINDS",
    "FrameColumns",
    "OptionGrid",
    "apply_context",
    "bool_column",
    "days_since",
    "days_since_values",
    "float_column",
    "purchase_recency_column",
    "purchase_recency_columns",
    "timestamp_column",
    "utc_now",
]

DAY = np.timedelta64(86_400_000_000, "us")
#: Offer kinds that are urgent: sent by SMS when SMS is allowed, at the first slot outside quiet hours.
URGENT_KINDS: tuple[str, ...] = ("billing_alert",)
_MICROSECONDS = np.dtype("datetime64[us]")
#: Frames up to this many rows convert all their numpy-numeric columns in one block (memory stays small).
_BLOCK_ROWS = 10_000
#: Grids kept per (catalog offers, channels): a service decides one customer per call.
_GRID_CACHE_SIZE = 16
_grid_cache: dict[tuple[int, tuple[str, ...]], OptionGrid] = {}
#: Column layouts kept (a service's requests all have the same one).
_LAYOUT_CACHE_SIZE = 16
_layout_cache: dict[tuple, _Layout] = {}
#: Answers about tuples of names kept per layout.
_REMEMBERED_PER_LAYOUT = 256
_UNKNOWN = object()


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
    def offer_names(self) -> tuple[str, ...]:
        """Offer id of each offer, in `offers` order."""
        return tuple(offer.offer_id for offer in self.offers)

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
        """Cost of one send of each option (read-only, worked out once per grid)."""
        return self._send_costs

    @cached_property
    def _send_costs(self) -> NDArray[np.float64]:
        return _read_only(
            [
                self.offers[o].cost_per_send[self.channels[c]]
                for o, c in zip(self.offer_index, self.channel_index, strict=True)
            ],
            np.float64,
        )

    def option_columns(self, quantity: str) -> tuple[str, ...]:
        """The per-(offer, channel) input column of `quantity` for each option, then its per-offer column
        for each option (2 x size names, named once per grid)."""
        names = self._option_columns.get(quantity)
        if names is None:
            offers = [self.offers[i].offer_id for i in self.offer_index]
            channels = [self.channels[i] for i in self.channel_index]
            names = self._option_columns[quantity] = (
                *(column_for(quantity, offer, channel) for offer, channel in zip(offers, channels, strict=True)),
                *(column_for(quantity, offer) for offer in offers),
            )
        return names

    @cached_property
    def _option_columns(self) -> dict[str, tuple[str, ...]]:
        return {}

    @cached_property
    def urgent(self) -> NDArray[np.bool_]:
        """Whether each option's offer is urgent (kind in `URGENT_KINDS`), read-only."""
        return _read_only([self.offers[i].kind in URGENT_KINDS for i in self.offer_index], bool)

    @cached_property
    def offer_membership(self) -> NDArray[np.bool_]:
        """K x O, True where option k is of offer o: `option_flags @ offer_membership` is "any option of the offer"."""
        return _read_only(self.offer_index[:, None] == np.arange(len(self.offers))[None, :], bool)


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


@dataclass(frozen=True)
class _Layout:
    """Where a frame's columns live in its pandas blocks, worked out once per column layout.

    `positions` and `dtypes` hold each unique label's column position and dtype; the blocks of
    numpy bool/int/float dtype (`numeric_blocks`) stack into one matrix, where each of their
    unique labels has the row `numeric_rows[label]`. Repeated labels take pandas' own path.
    """

    names: frozenset[object]
    positions: dict[object, int]
    dtypes: dict[object, object]
    numeric_blocks: tuple[int, ...]
    numeric_rows: dict[object, int]
    #: `stack_rows` and `contain` answers per tuple of names (callers ask about the same few tuples).
    remembered: dict[tuple, object] = field(default_factory=dict)

    def stack_rows(self, names: tuple) -> NDArray[np.intp] | None:
        """Rows of `names` in the numeric stack (-1, its NaN row, when absent); None when one is stored elsewhere."""
        key = ("rows", names)
        rows = self.remembered.get(key, _UNKNOWN)
        if rows is _UNKNOWN:
            found = [self.numeric_rows.get(name, -1) for name in names]
            elsewhere = any(row < 0 and name in self.names for name, row in zip(names, found, strict=True))
            rows = self._remember(key, None if elsewhere else _read_only(found, np.intp))
        return rows

    def contain(self, names: tuple) -> NDArray[np.bool_]:
        """Whether each of `names` is a column of the layout."""
        key = ("contain", names)
        present = self.remembered.get(key, _UNKNOWN)
        if present is _UNKNOWN:
            present = self._remember(key, _read_only([name in self.names for name in names], bool))
        return present

    def _remember(self, key: tuple, answer: object) -> object:
        if len(self.remembered) >= _REMEMBERED_PER_LAYOUT:
            self.remembered.clear()
        self.remembered[key] = answer
        return answer

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Layout | None:
        """The frame's layout, from the cache when an equal one was seen; None without pandas' block manager."""
        found = block_layout(frame)
        if found is None:
            return None
        manager, labels, key = found
        layout = _layout_cache.get(key)
        if layout is None:
            if len(_layout_cache) >= _LAYOUT_CACHE_SIZE:
                _layout_cache.clear()
            layout = _layout_cache[key] = cls._build(labels, manager)
        return layout

    @classmethod
    def _build(cls, labels: list, manager: object) -> _Layout:
        blocks, block_numbers, block_rows = manager.blocks, manager.blknos.tolist(), manager.blklocs.tolist()
        numeric_blocks = [number for number, block in enumerate(blocks) if _is_numpy_numeric(block.dtype)]
        first_row, rows = {}, 0
        for number in numeric_blocks:
            first_row[number] = rows
            rows += len(blocks[number].mgr_locs)
        repeated = {label for label, count in Counter(labels).items() if count > 1}
        positions, dtypes, numeric_rows = {}, {}, {}
        for position, label in enumerate(labels):
            if label in repeated:
                continue
            number = block_numbers[position]
            positions[label] = position
            dtypes[label] = blocks[number].dtype
            if number in first_row:
                numeric_rows[label] = first_row[number] + block_rows[position]
        return cls(frozenset(labels), positions, dtypes, tuple(numeric_blocks), numeric_rows)


class FrameColumns:
    """The decision frame's columns as read-only numpy arrays, each converted once.

    A decision reads about a hundred columns of a wide frame, several more than once; a pandas
    column read costs ~10 microseconds whatever the row count, so a one-customer request spent
    most of its time there. Columns are read straight from the frame's blocks (where each one
    lives is worked out once per column layout), and frames up to `_BLOCK_ROWS` rows convert
    every numpy-numeric column in one go. The arrays equal what `Series.to_numpy` gives.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n_rows = len(frame)
        self._layout = _Layout.of(frame)
        self._names = set(frame.columns) if self._layout is None else self._layout.names  # set: ~1 us less per look-up
        self._arrays: dict[tuple[str, str], NDArray | None] = {}
        self._numeric: NDArray[np.float64] | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame | FrameColumns) -> FrameColumns:
        """`frame` itself when it already is a `FrameColumns`, else a new one over it."""
        return frame if isinstance(frame, FrameColumns) else cls(frame)

    def __len__(self) -> int:
        return self.n_rows

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def _dtype(self, name: str) -> object:
        layout = self._layout
        if layout is not None and name in layout.dtypes:
            return layout.dtypes[name]
        return self.frame[name].dtype

    def _values(self, name: str) -> object | None:
        """The stored values of a unique column (a view: copy before handing out), None when not in the layout."""
        layout = self._layout
        if layout is None or name not in layout.positions:
            return None
        return self.frame._mgr.iget_values(layout.positions[name])

    def _numeric_stack(self) -> NDArray[np.float64]:
        """Every numpy-numeric column as float64, one row per column (cast as `astype` casts), then a row of NaN."""
        if self._numeric is None:
            blocks = self.frame._mgr.blocks
            parts = [blocks[number].values for number in self._layout.numeric_blocks]
            missing = np.full((1, self.n_rows), np.nan)
            self._numeric = _frozen(np.concatenate([*parts, missing], dtype=np.float64), False)
        return self._numeric

    def _stack_rows(self, names: Sequence[str]) -> NDArray[np.intp] | None:
        """Rows of `names` in the numeric stack (see `_Layout.stack_rows`); None when it is not used."""
        if self._layout is None or self.n_rows > _BLOCK_ROWS:
            return None
        return self._layout.stack_rows(names if isinstance(names, tuple) else tuple(names))

    def contain(self, names: Sequence[str]) -> NDArray[np.bool_]:
        """Whether each of `names` is a column (read-only)."""
        if self._layout is None:
            return _read_only([name in self._names for name in names], bool)
        return self._layout.contain(names if isinstance(names, tuple) else tuple(names))

    def float_matrix(self, names: Sequence[str]) -> NDArray[np.float64]:
        """Columns side by side as float64 (n_rows x len(names)), NaN throughout for an absent one.

        The same values as `floats` column by column, read in one step where the columns allow.
        """
        rows = self._stack_rows(names)
        if rows is not None:
            return np.ascontiguousarray(self._numeric_stack()[rows].T)  # row-major, as column_stack gives
        matrix = np.full((self.n_rows, len(names)), np.nan)
        for position, name in enumerate(names):
            values = self.floats(name)
            if values is not None:
                matrix[:, position] = values
        return matrix

    def boolean_matrix(self, names: Sequence[str], default: bool) -> NDArray[np.bool_]:
        """Columns side by side as `booleans` reads them (n_rows x len(names)), in one step where they allow."""
        rows = self._stack_rows(names)
        if rows is not None and rows.min(initial=0) >= 0:
            return self._numeric_stack()[rows].T > 0  # `booleans` of a numpy bool/int/float column
        return np.column_stack([self.booleans(name, default) for name in names]).reshape(self.n_rows, len(names))

    def floats(self, name: str) -> NDArray[np.float64] | None:
        """A numeric or boolean column as float64 (NaN for missing values); None when absent."""
        key = ("float", name)
        if key not in self._arrays:
            self._arrays[key] = self._floats(name)
        return self._arrays[key]

    def _floats(self, name: str) -> NDArray[np.float64] | None:
        if name not in self._names:
            return None
        layout = self._layout
        if layout is not None and name in layout.numeric_rows:
            if self.n_rows <= _BLOCK_ROWS:
                return self._numeric_stack()[layout.numeric_rows[name]]
            return _frozen(self._values(name).astype(np.float64), False)
        column = self.frame[name]
        dtype = column.dtype
        if _is_numpy_numeric(dtype):
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
        dtype = self._dtype(name)
        if not _is_numpy_numeric(dtype) and pd.api.types.is_bool_dtype(dtype):
            return _frozen(self.frame[name].to_numpy(dtype=bool, na_value=False), True)
        if _is_numpy_numeric(dtype) or pd.api.types.is_numeric_dtype(dtype):
            return _frozen(self.floats(name) > 0, False)  # NaN > 0 is False: a missing value reads False
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
        values = self._values(name)
        if values is not None and self._dtype(name) == _MICROSECONDS:  # what `to_numpy` gives, without a Series
            return _frozen(np.asarray(values, dtype=_MICROSECONDS), True)
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
            values = self._values(name)
            if values is None:
                array = self.frame[name].to_numpy(dtype=object)
            elif isinstance(self._dtype(name), pd.api.extensions.ExtensionDtype):  # as `Series.to_numpy` reads
                array = values.to_numpy(dtype=object)
            else:
                array = np.asarray(values, dtype=object)
            self._arrays[key] = _frozen(array, True)
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
    return days_since_values(now, stamps, values, snapshot_age_days, len(frame))


def days_since_values(
    now: np.datetime64,
    stamps: NDArray[np.datetime64] | None,
    values: NDArray[np.float64] | None,
    snapshot_age_days: float,
    n_rows: int,
) -> NDArray[np.float64]:
    """`days_since` on columns already read (any shape; NaT and NaN are unknown, None an absent column)."""
    if stamps is None and values is None:
        return np.full(n_rows, np.nan)
    result = np.full(np.shape(stamps if values is None else values), np.inf)
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
