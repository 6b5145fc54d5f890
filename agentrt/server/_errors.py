"""OpenAI-style error objects, and the one mapping from exceptions to HTTP responses.

Every failure the server reports, before or during a stream, goes through
``error_payload``, so a client sees the same ``{"error": {...}}`` object with the same
status whichever layer noticed the problem.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from agentrt.engine import EngineError, PromptTooLongError

log = logging.getLogger("agentrt.server")

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """A request the server refuses or cannot serve, with the status and error object to send.

    Args:
        status: the HTTP status.
        message: what went wrong, naming the bad field when there is one.
        param: the request field at fault (``"messages[2].content"``), if any.
        code: a stable machine-readable reason (``"model_not_found"``).
        type: the OpenAI error type; derived from ``status`` when omitted.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPE_BY_STATUS.get(status, "server_error")
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def field_path(loc: Sequence[int | str]) -> str:
    """``("messages", 2, "content")`` -> ``"messages[2].content"`` (how OpenAI names params)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_validation(
    exc: pydantic.ValidationError, prefix: Sequence[int | str] = (), data: Any = None
) -> APIError:
    """The first problem of a pydantic validation error, as a 400 naming its field.

    With the validated ``data``, the field path keeps only the steps that exist in it:
    pydantic also lists the union member it tried (``content.str``), which is no field.
    """
    first = exc.errors(include_url=False)[0]
    loc = _data_path(first["loc"], data, missing=first["type"] == "missing")
    where = field_path([*prefix, *loc])
    msg = first["msg"]
    if first["type"].endswith("_type") and "input" in first:
        msg += f", got {_json_type(first['input'])}"
    return APIError(
        400, f"{where}: {msg}" if where else msg, param=where or None, code="invalid_value"
    )


def _data_path(loc: Sequence[int | str], data: Any, *, missing: bool) -> list[int | str]:
    if data is None:
        return list(loc)
    out: list[int | str] = []
    cur: Any = data
    for i, part in enumerate(loc):
        inside = _child(cur, part)
        if inside is not None:
            cur = inside[0]
        elif not (missing and i == len(loc) - 1):  # else: the absent field itself
            continue  # a union member's tag, not a step into the data
        out.append(part)
    return out


def _child(value: Any, key: int | str) -> tuple[Any] | None:
    """``(value[key],)`` when ``key`` is a step into JSON data ``value``, else None."""
    if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
        return (value[key],)
    if isinstance(value, dict) and key in value:
        return (value[key],)
    return None


def _json_type(value: Any) -> str:
    """How a JSON value's type is called in an error ("got a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def root_causes(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group wraps, flattened (``[exc]`` for any other)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in root_causes(inner)]
    return [exc]


def describe(exc: BaseException) -> str:
    """``"Type: message"`` of the cause(s), never of the task group that carried them."""
    return "; ".join(f"{type(e).__name__}: {e}" for e in root_causes(exc))


def as_api_error(exc: BaseException) -> APIError:
    """Map any exception to the error a client should see (a group: as its first cause)."""
    if isinstance(exc, BaseExceptionGroup):
        exc = root_causes(exc)[0]
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, PromptTooLongError):
        return APIError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, pydantic.ValidationError):
        return from_validation(exc)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return APIError(400, "request body is not valid JSON", code="invalid_json")
        where = field_path([p for p in first["loc"] if p not in ("body", "path", "query")])
        return APIError(400, f"{where}: {first['msg']}", param=where or None, code="invalid_value")
    if isinstance(exc, StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return APIError(exc.status_code, str(exc.detail), code=code)
    if isinstance(exc, EngineError):
        return APIError(
            503,
            f"the engine could not serve the request: {exc}",
            type="server_error",
            code="engine_unavailable",
        )
    log.exception("unhandled error", exc_info=exc)
    return APIError(500, "internal server error", type="server_error", code="internal_error")


def error_response(exc: BaseException) -> Response:
    err = as_api_error(exc)
    return Response(
        orjson.dumps(err.payload()),
        status_code=err.status,
        media_type="application/json",
        headers=err.headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the server as an OpenAI error object with its proper status."""

    async def handle(_request: Request, exc: Exception) -> Response:
        return error_response(exc)

    for cls in (
        APIError,
        PromptTooLongError,
        pydantic.ValidationError,
        RequestValidationError,
        StarletteHTTPException,
        EngineError,
        Exception,
    ):
        app.add_exception_handler(cls, handle)
