"""A request still in progress when the graceful shutdown runs out (an upload that stopped arriving) is cancelled by
uvicorn, which then answered a plain-text 500, as for a bug: here it gets the API's JSON error, 503 with
Retry-After, so that a client or a load balancer retries it elsewhere."""

from __future__ import annotations

import asyncio
import json
from typing import Any

SHUTDOWN_MESSAGE = "the server is shutting down and stopped this request: send it again (to another instance, or " \
                   "once this one is back)"


class ShutdownAnswer:
    """ASGI middleware: a request cancelled before its response started (uvicorn cancels those still running when
    a shutdown's grace ends) is answered the 503 and ends there; one cancelled later is let go as it was.
    running: the requests in progress (their tasks), which `answered` waits for at the app's shutdown."""

    def __init__(self, app: Any, running: set[asyncio.Task]) -> None:
        self.app = app
        self.running = running

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        self.running.add(task)
        try:
            await self._answer(scope, receive, send)
        finally:
            self.running.discard(task)

    async def _answer(self, scope: dict, receive: Any, send: Any) -> None:
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not started:
                body = json.dumps({"error": SHUTDOWN_MESSAGE, "status": 503, "retry_after_s": 1}).encode()
                await send({"type": "http.response.start", "status": 503,
                            "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                # answered: the request ends here (re-raised, uvicorn logged the cancellation as an error of the
                # app, with a traceback, at every shutdown that found an upload still arriving)
                uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11 on; 3.10 counts none
                if uncancel is not None:
                    uncancel()
                return
            raise


async def answered(running: set[asyncio.Task], seconds: float = 1.0) -> None:
    """At the app's shutdown: let the requests uvicorn has just cancelled send their 503. uvicorn goes on to the
    app's shutdown at once, and the process then ended before they ran (the client read an empty reply)."""
    if running:
        await asyncio.wait(set(running), timeout=seconds)
