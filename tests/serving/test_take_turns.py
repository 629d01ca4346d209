"""TakeTurns: the leader does the waiting work on its own thread; every item is processed once."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from serving.take_turns import TakeTurns


@dataclasses.dataclass(eq=False)
class _Item:
    name: str
    done: bool = False
    by: str | None = None


def test_a_lone_item_is_processed_on_the_callers_thread():
    seen = []

    def process(items):
        seen.append(([item.name for item in items], threading.current_thread().name))
        for item in items:
            item.done = True

    TakeTurns(process).submit(_Item("a"))
    assert seen == [(["a"], threading.current_thread().name)]


def test_callers_arriving_during_a_turn_are_processed_together_each_once():
    batches, gate = [], threading.Event()

    def process(items):
        if not batches:
            gate.wait(5)  # hold the first turn so the others queue behind it
        batches.append([item.name for item in items])
        for item in items:
            item.done, item.by = True, threading.current_thread().name

    turns = TakeTurns(process, take=lambda waiting: 3)  # at most three items a turn
    items = [_Item(f"i{k}") for k in range(8)]
    threads = [threading.Thread(target=turns.submit, args=(item,), name=f"t{k}") for k, item in enumerate(items)]
    threads[0].start()
    time.sleep(0.05)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.1)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert all(item.done for item in items)
    assert sorted(name for batch in batches for name in batch) == sorted(item.name for item in items)
    assert batches[0] == ["i0"] and max(len(batch) for batch in batches[1:]) == 3 and len(batches) <= 4


def test_a_failing_turn_raises_in_the_leader_and_leaves_no_one_waiting():
    failures = iter([True, False])

    def process(items):
        for item in items:
            item.done = True
        if next(failures):
            raise RuntimeError("disk gone")

    turns = TakeTurns(process)
    with pytest.raises(RuntimeError, match="disk gone"):
        turns.submit(_Item("a"))
    finished = threading.Event()
    threading.Thread(target=lambda: (turns.submit(_Item("b")), finished.set()), daemon=True).start()
    assert finished.wait(5)  # the next caller leads; it is not left waiting for the failed leader
