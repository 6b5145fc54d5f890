"""The server's front door, one ASGI middleware: browsers, API keys, body size, concurrency.

Order of checks, each refusing with an OpenAI error object:

    foreign Host (DNS rebinding)   -> 403 (see ``_browser``)
    foreign Origin (cross-site)    -> 403
    /v1/* without an accepted key  -> 401
    a body that is not JSON        -> 415 (only ``application/json`` is read)
    Content-Length over the limit  -> 413 (a chunked body is counted as it arrives)
    chat completion over the limit -> 429 (no queueing: clients retry, load stays bounded)

A chat completion holds its concurrency slot until its last byte is sent, streams
included; agent runs take their slot from the same ``Limiter`` for as long as they run.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._auth import KeyRing
from ._browser import BrowserGuard
from ._errors import APIError
from ._metrics import Metrics

CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
HELD_PATHS = (CHAT_PATH, RESPONSES_PATH)  # each request holds a concurrency slot


class Limiter:
    """Counts work in flight; ``try_acquire`` refuses instead of waiting.

    Invariant: ``0 <= active <= limit``.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {limit}")
        self.limit = limit
        self.active = 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        assert self.active > 0, "Limiter released more often than acquired"
        self.active -= 1

    def too_busy(self) -> APIError:
        return APIError(
            429,
            f"the server is at its limit of {self.limit} concurrent requests; retry later",
            code="concurrency_limit_exceeded",
            headers={"retry-after": "1"},
        )


class Gate:
    """ASGI middleware applying the checks above and recording every request's metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyRing,
        guard: BrowserGuard,
        limiter: Limiter,
        max_body_bytes: int,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.keys = keys
        self.guard = guard
        self.limiter = limiter
        self.max_body = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        method: str = scope["method"]

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            reason, err = refusal
            self.metrics.rejected.labels(reason).inc()
            await _send_error(send_status, err)
            self.metrics.observe_request("refused", method, status, time.perf_counter() - t0)
            return
        held = scope["path"] in HELD_PATHS and method == "POST"
        if held and not self.limiter.try_acquire():
            self.metrics.rejected.labels("concurrency").inc()
            await _send_error(send_status, self.limiter.too_busy())
            self.metrics.observe_request("refused", method, status, time.perf_counter() - t0)
            return
        try:
            await self.app(scope, self._counted(receive), send_status)
        finally:
            if held:
                self.limiter.release()
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(label, method, status, time.perf_counter() - t0)

    def _refusal(self, scope: Scope) -> tuple[str, APIError] | None:
        headers = _headers(scope)
        browser = self.guard.refusal(scope["method"], headers)
        if browser is not None and browser.status == 403:
            return "browser", browser
        if self.keys.enabled and scope["path"].startswith("/v1/"):
            key = self.keys.check(headers.get("authorization"))
            if key is None:
                given = "authorization" in headers
                return "auth", APIError(
                    401,
                    "incorrect API key provided"
                    if given
                    else "missing API key: send 'Authorization: Bearer <key>'",
                    code="invalid_api_key",
                    headers={"www-authenticate": "Bearer"},
                )
            scope.setdefault("state", {})["api_key"] = key
        if browser is not None:
            return "media_type", browser
        length = headers.get("content-length", "").strip()
        if length.isascii() and length.isdigit() and int(length) > self.max_body:
            return "too_large", self._too_large()
        return None

    def _too_large(self) -> APIError:
        return APIError(
            413,
            f"request body exceeds the limit of {self.max_body} bytes",
            code="request_too_large",
        )

    def _counted(self, receive: Receive) -> Receive:
        """``receive`` that refuses a body (chunked, without Content-Length) past the limit."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise self._too_large()
            return message

        return wrapped


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _send_error(send: Send, err: APIError) -> None:
    body = orjson.dumps(err.payload())
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
