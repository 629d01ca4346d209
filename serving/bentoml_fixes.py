"""A correction to BentoML 1.4.39, applied when the service module is imported.

BentoML's `TimeoutMiddleware` arms `loop.call_later(timeout, ...)` for every request and never
cancels it. The timer handle keeps the request's context (its OpenTelemetry span, locks, deques,
futures) alive for the whole timeout, 120 s here: at ~80 requests/s about 10,000 requests' worth of
objects stay on the heap, and each full garbage collection (every few seconds) walked them all,
pausing requests 20-65 ms and growing with uptime. This version cancels the timer when the request
ends; everything else is BentoML's code unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.responses import JSONResponse

__all__ = ["UPSTREAM_TIMEOUT_CALL", "apply"]

#: BentoML's own `TimeoutMiddleware.__call__`, as imported (kept for the test that shows the defect).
UPSTREAM_TIMEOUT_CALL = TimeoutMiddleware.__call__


async def _call_cancelling_the_timer(self: TimeoutMiddleware, scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    future = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if future.cancel():
            response = JSONResponse(
                {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504
            )
            await response(scope, receive, send)
    else:
        await future
    finally:
        timer.cancel()  # the one change: the handle (and the request's context it holds) is released now


def apply() -> None:
    """Install the corrected `TimeoutMiddleware.__call__` (idempotent)."""
    TimeoutMiddleware.__call__ = _call_cancelling_the_timer
