"""Group commit: concurrent appends share one transaction, each answered after its commit."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from serving.decision_log import DecisionLog


def _decision(decision_id: str, offer_id: str = "discount_10") -> dict:
    return {
        "decision_id": decision_id, "customer_id": f"C-{decision_id}", "decided_at": "2025-06-01T10:00:00+00:00",
        "offer_id": offer_id, "channel": "email", "propensity": 0.9, "holdout": False, "explored": False,
    }  # fmt: skip


class _SlowFirstCommit:
    """Wraps `DecisionLog._commit`: records batch sizes and on-record counts at commit time, and
    holds the first commit so the other callers queue behind it."""

    def __init__(self, log: DecisionLog) -> None:
        self.log, self.original, self.batches = log, log._commit, []
        self.first = threading.Event()

    def __call__(self, batch) -> None:
        if not self.first.is_set():
            self.first.set()
            time.sleep(0.3)
        self.original(batch)
        self.batches.append(len(batch))


def _run_concurrently(calls) -> list:
    results: list = [None] * len(calls)

    def run(position: int) -> None:
        try:
            results[position] = calls[position]()
        except Exception as error:  # kept to assert on
            results[position] = error

    threads = [threading.Thread(target=run, args=(position,)) for position in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(0.005)
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_appends_share_commits_and_all_land(tmp_path):
    log = DecisionLog(tmp_path / "log.sqlite")
    wrapper = _SlowFirstCommit(log)
    log._commit = wrapper
    calls = [lambda i=i: log.append([_decision(f"d{i}a"), _decision(f"d{i}b")]) for i in range(12)]
    results = _run_concurrently(calls)
    assert [[record["decision_id"] for record in result] for result in results] == [
        [f"d{i}a", f"d{i}b"] for i in range(12)
    ]
    assert sum(wrapper.batches) == 12 and max(wrapper.batches) > 1  # fewer commits than appends
    log.close()
    with sqlite3.connect(tmp_path / "log.sqlite") as reopened:  # on disk once append returned
        assert reopened.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 24


def test_a_failing_append_in_a_group_fails_alone(tmp_path):
    log = DecisionLog(tmp_path / "log.sqlite")
    log.append([_decision("taken")])
    log.append([_decision("first")], idempotency_key="key-1")
    wrapper = _SlowFirstCommit(log)
    log._commit = wrapper
    results = _run_concurrently(
        [
            lambda: log.append([_decision("x0")]),
            lambda: log.append([_decision("x1"), _decision("taken")]),  # duplicate id, no key: error
            lambda: log.append([_decision("retry", "free_shipping")], idempotency_key="key-1"),  # a retry
            lambda: log.append([_decision("x3")]),
        ]
    )
    assert [record["decision_id"] for record in results[0]] == ["x0"]
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert [record["decision_id"] for record in results[2]] == ["first"]  # the first attempt's answer
    assert [record["decision_id"] for record in results[3]] == ["x3"]
    assert log.decision_ids() == {"taken", "first", "x0", "x3"}  # x1 rolled back with its append


def test_a_failed_commit_fails_every_caller_of_the_group(tmp_path):
    log = DecisionLog(tmp_path / "log.sqlite")
    log.close()  # the connection is gone: the commit itself fails
    with pytest.raises(sqlite3.ProgrammingError):
        log.append([_decision("d1")])
    with pytest.raises(sqlite3.ProgrammingError):  # the next caller commits (and fails) too, not left waiting
        log.append([_decision("d2")])
