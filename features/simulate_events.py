"""An append-only log of simulated events kept as compact integer codes until the end.

Rows are collected as arrays (customer index, UTC day, channel/type/campaign/offer codes) and
turned into the contract's string columns once, which keeps memory low at a million customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CHANNELS = ("email", "sms", "push", "web", "app")
EVENT_TYPES = (
    "send", "open", "click", "unsubscribe", "bounce", "complaint", "visit", "login",
    "feature_use", "support_ticket", "payment_failed",
)  # fmt: skip
CHANNEL = {name: code for code, name in enumerate(CHANNELS)}
EVENT = {name: code for code, name in enumerate(EVENT_TYPES)}


NAMES = ("customer", "time", "channel", "event_type", "campaign", "offer")
DTYPES = (np.int32, np.float64, np.int8, np.int8, np.int16, np.int8)


@dataclass
class EventLog:
    """Event rows as parallel code arrays; `campaign`/`offer` are -1 when not in a campaign."""

    columns: dict[str, list[np.ndarray]] = field(default_factory=lambda: {name: [] for name in NAMES})

    def add(
        self,
        customer: np.ndarray,
        time: np.ndarray,
        channel: int | np.ndarray,
        event_type: int | str,
        campaign: int | np.ndarray = -1,
        offer: int | np.ndarray = -1,
    ) -> None:
        """Append events; scalar codes are broadcast to every row."""
        size = len(customer)
        if size == 0:
            return
        code = EVENT[event_type] if isinstance(event_type, str) else event_type
        values = (customer, time, channel, code, campaign, offer)
        for name, dtype, value in zip(NAMES, DTYPES, values, strict=True):
            array = np.asarray(value, dtype=dtype)
            self.columns[name].append(np.broadcast_to(array, (size,)).copy())

    def collect(self, n_days: int) -> dict[str, np.ndarray]:
        """All rows inside [0, n_days), sorted by customer then time; the log is emptied."""
        merged = {}
        for name, dtype in zip(NAMES, DTYPES, strict=True):
            parts = self.columns[name]
            merged[name] = np.concatenate(parts) if parts else np.empty(0, dtype)
            parts.clear()  # free the pieces before concatenating the next column
        inside = (merged["time"] >= 0) & (merged["time"] < n_days)
        for name in NAMES:
            merged[name] = merged[name][inside]
        # One float key (customer, then time to well under a second) sorts ~3x faster than
        # lexsort on tens of millions of rows; the sort is deterministic for equal input.
        key = merged["customer"] * float(n_days + 1) + merged["time"]
        order = np.argsort(key)
        del key
        for name in NAMES:
            merged[name] = merged[name][order]
        return merged
