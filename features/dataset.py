"""A data set as the feature pipeline sees it: contract tables as lazy Ibis expressions.

Every table uses the contract's column names and types (see `features.contract`), so feature
definitions never care whether the rows came from Parquet, CSV, a DuckDB file or pandas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import ibis
import pandas as pd

TABLE_NAMES = ("customers", "transactions", "events", "exposures", "subscriptions")


@dataclass
class Dataset:
    """Contract tables bound to one Ibis backend (DuckDB by default).

    `tables` holds only the tables that exist; `transactions` is always present.
    `cache_part`, when set, caches each feature family's narrow table before the families are
    joined: on Spark this keeps the snapshot's query plan small (planning one nested plan of
    every family takes longer than computing it); DuckDB plans the single query best (None).
    """

    con: ibis.BaseBackend
    tables: dict[str, ibis.Table] = field(default_factory=dict)
    cache_part: Callable[[ibis.Table], ibis.Table] | None = None

    def has(self, name: str) -> bool:
        """Whether the optional table `name` is present."""
        return name in self.tables

    def __getitem__(self, name: str) -> ibis.Table:
        try:
            return self.tables[name]
        except KeyError:
            present = ", ".join(sorted(self.tables)) or "none"
            raise KeyError(f"table {name!r} is not in this data set (present: {present})") from None

    @classmethod
    def from_frames(
        cls, frames: Mapping[str, pd.DataFrame], con: ibis.BaseBackend | None = None
    ) -> Dataset:
        """Register in-memory pandas frames (tests, small fixtures) as a Dataset."""
        con = con or ibis.duckdb.connect()
        tables = {}
        for name, frame in frames.items():
            if name not in TABLE_NAMES:
                raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLE_NAMES)}")
            tables[name] = con.create_table(f"_{name}", frame, temp=True, overwrite=True)
        return cls(con=con, tables=tables)
