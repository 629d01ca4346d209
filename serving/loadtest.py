"""A small bounded async load generator for the scoring API on loopback (tests and benchmarks).

Open loop (`rate` requests per second, each sent on schedule whether or not earlier ones have
answered, at most `concurrency` in flight) or closed loop (`rate=None`: `concurrency` clients
each sending the next request as soon as the previous one answers). Every answer's status and
latency is recorded, and `keep` may pull what the caller needs (e.g. decision ids) out of
successful responses.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

__all__ = ["LoadResult", "RequestSpec", "run_load"]


@dataclass(frozen=True)
class RequestSpec:
    """One request: method, path, JSON body and extra headers."""

    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass
class LoadResult:
    """What the load run saw: latencies of answered requests, status counts, errors, kept values."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    @property
    def failures(self) -> int:
        """Transport errors plus non-2xx answers."""
        return len(self.errors) + sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    def summary(self) -> dict[str, float]:
        latencies = np.asarray(self.latencies_ms, dtype=float)
        quantile = (lambda q: float(np.quantile(latencies, q))) if len(latencies) else (lambda q: float("nan"))
        return {
            "requests": float(self.sent),
            "failures": float(self.failures),
            "throughput_rps": self.sent / self.elapsed_s if self.elapsed_s > 0 else float("nan"),
            "p50_ms": quantile(0.50),
            "p95_ms": quantile(0.95),
            "p99_ms": quantile(0.99),
            "max_ms": float(latencies.max()) if len(latencies) else float("nan"),
        }


async def _send(
    client: httpx.AsyncClient,
    spec: RequestSpec,
    result: LoadResult,
    keep: Callable[[RequestSpec, httpx.Response], Any] | None,
) -> None:
    started = time.perf_counter()
    try:
        response = await client.request(spec.method, spec.path, json=spec.body, headers=spec.headers)
    except httpx.HTTPError as error:
        result.errors.append(f"{type(error).__name__}: {error}")
        return
    result.latencies_ms.append((time.perf_counter() - started) * 1000.0)
    result.statuses[response.status_code] += 1
    if keep is not None and 200 <= response.status_code < 300:
        result.kept.append(keep(spec, response))


#: Seconds an idle client connection is kept for reuse; below the server's keep-alive timeout (5 s).
KEEPALIVE_EXPIRY_S = 2.0

async def run_load_async(
    base_url: str,
    make_request: Callable[[int], RequestSpec],
    *,
    requests: int | None = None,
    duration_s: float | None = None,
    rate: float | None = None,
    concurrency: int = 8,
    timeout_s: float = 30.0,
    keep: Callable[[RequestSpec, httpx.Response], Any] | None = None,
) -> LoadResult:
    """Send requests `make_request(i)` until `requests` are sent or `duration_s` has passed."""
    if requests is None and duration_s is None:
        raise ValueError("give requests or duration_s (or both) so the load stops")
    if concurrency < 1 or (rate is not None and rate <= 0):
        raise ValueError(f"concurrency must be >= 1 and rate > 0, got {concurrency} and {rate}")
    result = LoadResult()
    # Idle connections expire on our side well before the server's keep-alive timeout (BentoML/uvicorn: 5 s,
    # httpx's default expiry is also 5 s): reusing one the server is closing at that moment gives a ReadError.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=KEEPALIVE_EXPIRY_S
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        started = time.perf_counter()

        def more(index: int) -> bool:
            within_count = requests is None or index < requests
            within_time = duration_s is None or time.perf_counter() - started < duration_s
            return within_count and within_time

        if rate is None:
            counter = iter(range(10**12))

            async def worker() -> None:
                while more(index := next(counter)):
                    await _send(client, make_request(index), result, keep)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            gate = asyncio.Semaphore(concurrency)
            tasks = []

            async def bounded(index: int) -> None:
                async with gate:
                    await _send(client, make_request(index), result, keep)

            index = 0
            while more(index):
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(bounded(index)))
                index += 1
            await asyncio.gather(*tasks)
        result.elapsed_s = time.perf_counter() - started
    return result


def run_load(base_url: str, make_request: Callable[[int], RequestSpec], **options: Any) -> LoadResult:
    """Synchronous wrapper of `run_load_async` (its own event loop)."""
    return asyncio.run(run_load_async(base_url, make_request, **options))
