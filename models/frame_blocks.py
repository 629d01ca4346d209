"""Where a DataFrame keeps its columns: pandas' block manager, for readers that plan once per layout.

Scoring one customer reads ~150 columns of a one-row frame; a pandas column read costs
microseconds whatever the row count. The fast readers (`models.uplift_base.FeatureEncoder`,
`models.policy_options.FrameColumns`) work out once per column layout where each column lives
in the frame's blocks and then read the blocks directly. This is the one place that reaches into
pandas' internals to name that layout (pandas is pinned; callers fall back to plain pandas on None).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["block_layout"]


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
