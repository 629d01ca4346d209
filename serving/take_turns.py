"""Callers take turns doing the waiting work together: the model call and the log's group commit.

Both the /decide batcher and the decision log's group commit gain from doing the work of
concurrent callers at once (one model call for 30 rows costs about one for 1 row; one fsync for
30 appends costs one). Neither wants a worker thread: a hand-over to another thread and back
costs a GIL wake-up each way, which is most of the gain under no load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["TakeTurns"]


class _Work(Protocol):
    done: bool


Work = TypeVar("Work", bound=_Work)


class TakeTurns(Generic[Work]):
    """Callers hand in work; one at a time leads, doing the waiting work on its own thread.

    A caller that finds nobody leading leads: it takes the oldest waiting items (`take` says
    how many; all by default), calls `process` with them, and goes on until its own item is
    done. Callers arriving meanwhile wait; when the leader is through, one of them leads next.
    `process` must mark every item it is given `done`, also when it raises (its exception then
    reaches the leading caller; the others read their outcome from their items).
    """

    def __init__(
        self, process: Callable[[list[Work]], None], take: Callable[[list[Work]], int] | None = None
    ) -> None:
        self._process = process
        self._take = take
        self._waiting: list[Work] = []
        self._condition = threading.Condition()
        self._leading = False

    def submit(self, item: Work) -> None:
        """Return when `item` is done (by this caller's turn or another's)."""
        with self._condition:
            self._waiting.append(item)
            while self._leading and not item.done:
                self._condition.wait()
            if item.done:
                return
            self._leading = True
        try:
            while True:
                with self._condition:
                    count = len(self._waiting) if self._take is None else max(1, self._take(self._waiting))
                    taken, self._waiting = self._waiting[:count], self._waiting[count:]
                self._process(taken)
                if item.done:
                    return
                with self._condition:  # leading on: the callers just answered may go now
                    self._condition.notify_all()
        finally:
            with self._condition:
                self._leading = False
                self._condition.notify_all()
