"""Where a DataFrame keeps its columns: pandas' block manager, for readers that plan once per layout.

Scoring one customer reads ~150 columns of a one-row frame; a pandas column read costs
microseconds whatever the row count. The fast readers (`models.uplift_base.FeatureEncoder`,
`models.policy_options.FrameColumns`) work out once per column layout where each column lives
in the frame's blocks and then read the blocks directly. This is the one place that reaches into
pandas' internals to name that layout (pandas is pinned; callers fall back to plain pandas on None),
to assemble rows of a fixed frame from its blocks (`RowTaker`, for the serving snapshot), to read
columns as Python values (`column_lists`) and to tell whether a frame is consolidated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

__all__ = ["RowTaker", "block_layout", "column_lists", "is_consolidated"]

_MICROSECONDS = np.dtype("datetime64[us]")


def block_layout(frame: pd.DataFrame) -> tuple[Any, list[Any], tuple] | None:
    """(block manager, column labels, hashable key of the layout), or None without a block manager.

    Two frames with equal keys keep every column in the same block, at the same place, with the
    same block dtypes, so a plan worked out for one reads the other.
    """
    manager = getattr(frame, "_mgr", None)
    blocks = getattr(manager, "blocks", None)
    if blocks is None or not all(hasattr(manager, name) for name in ("blknos", "blklocs", "iget_values")):
        return None
    labels = frame.columns.tolist()
    key = (tuple(labels), manager.blknos.tobytes(), manager.blklocs.tobytes(), tuple([block.dtype for block in blocks]))
    return manager, labels, key


def is_consolidated(frame: pd.DataFrame) -> bool:
    """Whether the frame keeps each dtype's columns in one block (a `copy()` would not merge any)."""
    check = getattr(getattr(frame, "_mgr", None), "is_consolidated", None)
    return check is not None and check()


class RowTaker:
    """Rows of one fixed frame by position, assembled from the frame's blocks.

    `frame.take(positions)` of one row costs ~0.45 ms on a 150-column snapshot, most of it in
    pyarrow's take of each text column; this costs ~0.09 ms. The result equals
    `frame.take(positions).reset_index(drop=True)` (values, dtypes, block layout) and owns its
    numbers (numpy blocks are copied; text blocks are immutable Arrow slices).
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._columns = frame.columns
        self._parts = [(block.values, block.mgr_locs.as_array) for block in frame._mgr.blocks]

    def take(self, positions: list[int]) -> pd.DataFrame:
        """The rows at `positions` (in that order), with a fresh RangeIndex."""
        one = len(positions) == 1
        index = np.asarray(positions, dtype=np.intp)
        blocks = []
        for values, placement in self._parts:
            if values.ndim == 2:  # numpy and datetime blocks: (columns, rows)
                rows = values[:, index]
            elif one:
                rows = values[index[0] : index[0] + 1]
            else:
                rows = values.take(index)
            blocks.append((rows, placement))
        return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(len(positions)), columns=self._columns)


def column_lists(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, list]:
    """Each named column as a list of Python values, read from the blocks without building a Series.

    What `Series.tolist()` gives for numpy numbers and flags (~10 us a column less), Python
    `datetime`s (None for NaT) for a datetime64[us] column, and the values with None for
    missing ones for any other column (text), as `to_numpy(dtype=object, na_value=None)`.
    """
    manager, columns = frame._mgr, frame.columns
    missing = [name for name in names if name not in columns]
    if missing or not columns.is_unique:
        raise KeyError(f"columns {missing or list(names)} are missing or not unique in the frame")
    lists = {}
    for name in names:
        values = manager.iget_values(columns.get_loc(name))  # get_loc: ~0.3 us; get_indexer: ~100 us
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            lists[name] = values.tolist()
        elif values.dtype == _MICROSECONDS:
            lists[name] = np.asarray(values, dtype=_MICROSECONDS).tolist()
        else:
            lists[name] = values.to_numpy(dtype=object, na_value=None).tolist()
    return lists
