"""BentoML's request timeout: the timer of a finished request no longer keeps its context alive."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref

import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from serving import bentoml_fixes

REQUEST_STATE: contextvars.ContextVar[object] = contextvars.ContextVar("request_state")


class Marker:
    """Stands in for what a request's context holds (BentoML puts its tracing span there)."""


async def _answer(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow(scope, receive, send) -> None:
    await asyncio.sleep(5)
    await _answer(scope, receive, send)


async def _request(middleware: TimeoutMiddleware) -> tuple[list[dict], weakref.ref]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    marker = Marker()

    async def in_request_context() -> None:
        REQUEST_STATE.set(marker)  # as BentoML's tracing does before the timeout middleware runs
        await middleware({"type": "http", "path": "/decide"}, receive, send)

    await asyncio.create_task(in_request_context())
    return sent, weakref.ref(marker)


@pytest.fixture
def fixed() -> None:
    before = TimeoutMiddleware.__call__
    bentoml_fixes.apply()
    yield
    TimeoutMiddleware.__call__ = before


@pytest.fixture
def upstream() -> None:
    before = TimeoutMiddleware.__call__
    TimeoutMiddleware.__call__ = bentoml_fixes.UPSTREAM_TIMEOUT_CALL
    yield
    TimeoutMiddleware.__call__ = before


def _context_alive_after_request(timeout: float) -> bool:
    async def scenario() -> bool:
        sent, marker = await _request(TimeoutMiddleware(_answer, timeout=timeout))
        assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
        await asyncio.sleep(0)
        gc.collect()
        return marker() is not None

    return asyncio.run(scenario())


def test_the_request_context_is_released_when_the_request_ends(fixed) -> None:
    assert not _context_alive_after_request(timeout=120)


def test_upstream_keeps_the_context_until_the_timeout(upstream) -> None:
    """Documents the defect the fix is for: if BentoML fixes it, this fails and the fix can go."""
    assert _context_alive_after_request(timeout=120)


def test_a_slow_request_still_gets_504_at_the_timeout(fixed) -> None:
    async def scenario() -> list[dict]:
        sent, _ = await _request(TimeoutMiddleware(_slow, timeout=0.05))
        return sent

    sent = asyncio.run(scenario())
    assert sent[0]["status"] == 504
    assert b"Not able to process the request in 0.05 seconds" in sent[1]["body"]
