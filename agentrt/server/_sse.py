"""Disconnects end the work behind a response: server-sent events, and awaited results.

Starlette's ``StreamingResponse`` cancels its sender when the client leaves but leaves
the body iterator to the garbage collector, and anyio's level-triggered cancellation
would also cancel the awaits inside the iterator's clean-up (where vLLM sends its
abort). Here the source is pumped by a plain asyncio task that receives exactly one
``CancelledError`` on disconnect, and is then closed explicitly, so every
``finally`` down to the engine runs to completion:

    receive() ── http.disconnect ──► pump.cancel() ─► source.aclose() ─► engine abort

Headers are sent with the first chunk: an error raised before it (prompt too long, the
engine refused the request) still becomes a proper JSON error with its HTTP status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._errors import as_api_error, error_response

log = logging.getLogger("agentrt.server")
T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its response was ready."""


_CLOSE_TIMEOUT_S = 10.0
DONE = b"data: [DONE]\n\n"


def data_frame(payload: bytes) -> bytes:
    """One unnamed event (what OpenAI streams use)."""
    return b"data: " + payload + b"\n\n"


def event_frame(event: str, payload: bytes, event_id: int | None = None) -> bytes:
    """One named event, with an id a client can resume after (``Last-Event-ID``)."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def error_frame(exc: BaseException) -> bytes:
    # No event name: the openai client raises APIError for any data holding "error".
    return data_frame(orjson.dumps(as_api_error(exc).payload()))


class SSEResponse(Response):
    """Streams ``source`` (already-framed bytes) as ``text/event-stream``.

    Invariant: when ``__call__`` returns, ``source`` is closed (its ``finally`` blocks have
    run), whether the stream ended, failed, or the client disconnected.
    """

    media_type = "text/event-stream"

    def __init__(
        self, source: AsyncIterator[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        self.source = source
        self.status_code = 200
        self.background = None
        extra = {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        self.init_headers(extra)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(scope, receive, send))
        watch = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pump.cancel()  # the server is shutting down: clean up, then go
            watch.cancel()
            await _settle(pump)
            raise
        if not pump.done():
            pump.cancel()  # the client left
        watch.cancel()
        await _settle(pump)
        await _settle(watch)

    async def _pump(self, scope: Scope, receive: Receive, send: Send) -> None:
        src = self.source
        try:
            try:
                first = await anext(src)
            except StopAsyncIteration:
                first = b""
            except Exception as exc:
                await error_response(exc)(scope, receive, send)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await send({"type": "http.response.body", "body": first, "more_body": True})
            try:
                async for chunk in src:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except Exception as exc:  # headers are out: report in-band, then end the stream
                await send(
                    {"type": "http.response.body", "body": error_frame(exc), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await src.aclose()  # type: ignore[attr-defined]


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _settle(task: asyncio.Future[Any]) -> None:
    """Wait (at most ``_CLOSE_TIMEOUT_S``) for a task to finish its clean-up; log its failure."""
    await asyncio.wait((task,), timeout=_CLOSE_TIMEOUT_S)
    if not task.done():
        log.error("an event stream did not close within %.0f s", _CLOSE_TIMEOUT_S)
        return
    if task.cancelled():
        return
    exc = task.exception()
    # A send to a client that has gone is expected; anything else is our bug.
    if exc is not None and not isinstance(exc, OSError):
        log.error("event stream failed", exc_info=exc)


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (once, so its clean-up runs) if the client leaves.

    Raises:
        ClientGone: the client disconnected first.
    """
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watch.cancel()
        await _settle(task)
        raise
    watch.cancel()
    if not task.done():
        task.cancel()
        await _settle(task)
        raise ClientGone()
    return task.result()
