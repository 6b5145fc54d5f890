"""A loaded trace (header plus requests), its cross-request checks, and JSON Lines I/O."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import orjson
from pydantic import ValidationError

from ._schema import Content, TraceHeader, TraceRequest, check_hash_ids


class TraceError(ValueError):
    """A trace file or trace object breaks the schema.

    The message names the file, the line (1 = header) and the request id when known.
    """

    def __init__(
        self,
        detail: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.detail = detail
        self.path = None if path is None else str(path)
        self.line = line
        self.request_id = request_id
        where = [p for p in (self.path, None if line is None else f"line {line}") if p]
        if request_id is not None:
            where.append(f"request {request_id!r}")
        super().__init__(f"{', '.join(where)}: {detail}" if where else detail)


def describe_validation_error(err: ValidationError, limit: int = 3) -> str:
    """``field.path: message`` for the first few errors of a pydantic failure."""
    parts = []
    for e in err.errors()[:limit]:
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(err.errors()) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


class _CrossChecks:
    """Checks that need more than one line: unique ids, hash ids against the header's
    block size, and one system prompt per group."""

    def __init__(self, header: TraceHeader) -> None:
        self._block = header.hash_block_tokens
        self._ids: set[str] = set()
        self._groups: dict[str, Content] = {}

    def add(self, request: TraceRequest) -> None:
        if request.id in self._ids:
            raise ValueError("id: duplicate request id")
        for where, content in request.contents():
            check_hash_ids(content, self._block, where)
        if request.group is not None:
            first = self._groups.setdefault(request.group, request.system)
            if first != request.system:
                raise ValueError(
                    f"system: differs from the system of earlier requests in group "
                    f"{request.group!r}"
                )
        self._ids.add(request.id)


@dataclass(frozen=True, slots=True)
class Trace:
    """A header and its agent requests, in file order (importers sort by arrival).

    Constructing one runs the same checks as loading a file.

    Raises:
        TraceError: naming the request index and id that breaks a check.
    """

    header: TraceHeader
    requests: tuple[TraceRequest, ...]

    def __post_init__(self) -> None:
        checks = _CrossChecks(self.header)
        for i, request in enumerate(self.requests):
            try:
                checks.add(request)
            except ValueError as e:
                raise TraceError(f"requests[{i}].{e}", request_id=request.id) from None

    def __len__(self) -> int:
        return len(self.requests)

    def __iter__(self) -> Iterator[TraceRequest]:
        return iter(self.requests)

    def with_requests(self, requests: Iterable[TraceRequest]) -> Trace:
        """The same header with other requests (checked again)."""
        return Trace(self.header, tuple(requests))


def _open(path: Path, mode: str) -> IO[Any]:
    if path.suffix == ".gz":
        return cast(IO[Any], gzip.open(path, mode))
    return path.open(mode)


def load_trace(path: str | Path) -> Trace:
    """Read an "agentrt-trace/1" JSON Lines file (gzip if it ends in ``.gz``).

    Blank lines are skipped; line numbers in errors count them.

    Raises:
        TraceError: naming the file, line number and request id of the first bad line.
    """
    path = Path(path)
    requests: list[TraceRequest] = []
    header: TraceHeader | None = None
    checks: _CrossChecks | None = None
    with _open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            if header is None:
                header = _parse_header(raw, path, lineno)
                checks = _CrossChecks(header)
                continue
            assert checks is not None, "checks are created with the header"
            request = _parse_request(raw, path, lineno)
            try:
                checks.add(request)
            except ValueError as e:
                raise TraceError(str(e), path=path, line=lineno, request_id=request.id) from None
            requests.append(request)
    if header is None:
        raise TraceError("empty file: line 1 must be the header", path=path, line=1)
    return Trace(header, tuple(requests))


def _parse_header(raw: bytes, path: Path, lineno: int) -> TraceHeader:
    try:
        return TraceHeader.model_validate_json(raw)
    except ValidationError as e:
        raise TraceError(
            f"bad header: {describe_validation_error(e)}", path=path, line=lineno
        ) from None


def _parse_request(raw: bytes, path: Path, lineno: int) -> TraceRequest:
    try:
        return TraceRequest.model_validate_json(raw)
    except ValidationError as e:
        rid: str | None = None
        try:
            obj = orjson.loads(raw)
            if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                rid = obj["id"]
        except orjson.JSONDecodeError:
            pass
        raise TraceError(
            describe_validation_error(e), path=path, line=lineno, request_id=rid
        ) from None


def request_to_json(request: TraceRequest) -> bytes:
    """One request line; fields at their defaults are left out to keep files small."""
    body = request.model_dump(mode="json", exclude_defaults=True)
    return orjson.dumps({"type": "request", **body})


def dump_trace(trace: Trace, path: str | Path) -> None:
    """Write ``trace`` as JSON Lines (gzip if ``path`` ends in ``.gz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "wb") as f:
        f.write(orjson.dumps(trace.header.model_dump(mode="json")) + b"\n")
        for request in trace.requests:
            f.write(request_to_json(request) + b"\n")
