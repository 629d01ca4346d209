"""benchmarks/bench_serving.py's record of what the host took from each case (steal, disk waits)."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import benchmark_module


@pytest.fixture(scope="module")
def bench():
    return benchmark_module("bench_serving")


def test_host_shares_are_the_case_s_share_of_cpu_time(bench):
    before = {"total": 1_000, "iowait": 10, "steal": 5}
    after = {"total": 1_400, "iowait": 30, "steal": 105}
    assert bench._host_shares(before, after) == {"steal": 0.25, "iowait": 0.05}
    assert bench._host_shares(None, after) is None and bench._host_shares(after, after) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_cpu_times_read_this_machine(bench):
    first = bench._cpu_times()
    assert first is not None and first["total"] > 0 and 0 <= first["steal"] <= first["total"]
    assert bench._cpu_times()["total"] >= first["total"]
