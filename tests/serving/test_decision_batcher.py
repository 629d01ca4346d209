"""The /decide batcher: callers take turns deciding everyone pending, each gets exactly its rows."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from serving.service import DecisionBatcher


class RecordingModel:
    """Stands in for `LoadedModel`: answers one row per input row and records each call."""

    def __init__(self, name: str = "m", seconds: float = 0.0, fail_on: str | None = None) -> None:
        self.name = name
        self.seconds = seconds
        self.fail_on = fail_on
        self.calls: list[tuple[list[str], bool, str]] = []
        self._lock = threading.Lock()

    def decide(self, frame: pd.DataFrame, now: object, explain: bool) -> pd.DataFrame:
        ids = frame["customer_id"].tolist()
        with self._lock:
            self.calls.append((ids, explain, threading.current_thread().name))
        if self.seconds:
            time.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in ids:
            raise ValueError(f"cannot decide {self.fail_on}")
        return pd.DataFrame({"customer_id": ids, "decided_by": self.name, "explained": explain})


def rows(*ids: str) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(ids)})


def test_a_lone_request_is_decided_on_the_callers_own_thread() -> None:
    model = RecordingModel()
    batcher = DecisionBatcher()
    answer = batcher.submit(rows("a", "b"), False, model)
    assert answer["customer_id"].tolist() == ["a", "b"]
    assert model.calls == [(["a", "b"], False, threading.current_thread().name)]


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_rows() -> None:
    model = RecordingModel(seconds=0.02)
    batcher = DecisionBatcher()
    requests = [[f"c{k}-{j}" for j in range(1 + k % 3)] for k in range(24)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda ids: batcher.submit(rows(*ids), False, model), requests))
    for ids, answer in zip(requests, answers, strict=True):
        assert answer["customer_id"].tolist() == ids
        assert answer.index.tolist() == list(range(len(ids)))
    decided = sorted(customer for ids, _, _ in model.calls for customer in ids)
    assert decided == sorted(customer for ids in requests for customer in ids)  # each row decided exactly once
    assert len(model.calls) < len(requests)  # waiting callers were coalesced into shared calls


def test_rows_of_different_models_and_explain_flags_are_never_mixed() -> None:
    old, new = RecordingModel("old", seconds=0.01), RecordingModel("new", seconds=0.01)
    batcher = DecisionBatcher()
    plan = [(f"x{k}", [old, new][k % 2], k % 3 == 0) for k in range(30)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda item: batcher.submit(rows(item[0]), item[2], item[1]), plan))
    for (customer, model, explain), answer in zip(plan, answers, strict=True):
        assert answer.to_dict("records") == [{"customer_id": customer, "decided_by": model.name, "explained": explain}]
    for model in (old, new):
        assert all(isinstance(explain, bool) for _, explain, _ in model.calls)
    assert {customer for ids, _, _ in old.calls for customer in ids} == {c for c, m, _ in plan if m is old}


def test_an_error_reaches_only_the_callers_whose_rows_were_in_that_call() -> None:
    failing, healthy = RecordingModel("failing", seconds=0.01, fail_on="bad"), RecordingModel("healthy", seconds=0.01)
    batcher = DecisionBatcher()
    plan = [("bad", failing), *[(f"ok{k}", healthy) for k in range(10)]]
    outcomes: dict[str, object] = {}

    def call(item: tuple[str, RecordingModel]) -> None:
        try:
            outcomes[item[0]] = batcher.submit(rows(item[0]), False, item[1])
        except ValueError as error:
            outcomes[item[0]] = error

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(call, plan))
    assert isinstance(outcomes["bad"], ValueError) and "cannot decide bad" in str(outcomes["bad"])
    assert all(isinstance(outcomes[f"ok{k}"], pd.DataFrame) for k in range(10))
    # the batcher is not left locked by the failure
    assert batcher.submit(rows("after"), False, healthy)["customer_id"].tolist() == ["after"]


def test_a_request_of_max_rows_or_more_is_decided_alone() -> None:
    model = RecordingModel()
    batcher = DecisionBatcher(max_rows=3)
    assert batcher.submit(rows("a", "b", "c"), True, model)["customer_id"].tolist() == ["a", "b", "c"]
    assert model.calls == [(["a", "b", "c"], True, threading.current_thread().name)]


@pytest.mark.timeout(60)
def test_a_queue_longer_than_max_rows_is_decided_in_several_calls_of_at_most_max_rows() -> None:
    model = RecordingModel(seconds=0.01)
    batcher = DecisionBatcher(max_rows=4)
    requests = [[f"q{k}-{j}" for j in range(3)] for k in range(12)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda ids: batcher.submit(rows(*ids), False, model), requests))
    assert [answer["customer_id"].tolist() for answer in answers] == requests
    assert all(len(ids) <= 4 for ids, _, _ in model.calls)
