"""MCP tool servers mounted into an agent: each server tool becomes a ``Tool``.

Schemas come from the server's ``tools/list`` (``inputSchema``); calling a ``Tool``
sends ``tools/call``. An error result (``isError``) or a JSON-RPC error becomes a
``ToolFailure`` the model reads; a server that goes away raises ``MCPConnectionError``
at once (the pending request fails when the pipe closes — no hang).

Built on the ``mcp`` package (2.x), imported lazily: ``agentrt.tools`` works without it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import orjson

from agentrt.engine._messages import to_tool_name

from ._capture import truncate_text
from ._tool import Tool, ToolFailure

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as MCPTool

_MAX_PAGES = 100  # a server whose tools/list cursor never ends cannot hang the mount
_STDERR_TAIL_BYTES = 2_000
DEFAULT_MAX_RESULT_BYTES = 100_000


class MCPConnectionError(RuntimeError):
    """The MCP server could not be reached or went away (exited, closed its pipes)."""


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "MCP tool servers need the 'mcp' package: pip install 'agentrt[mcp]'"
        ) from exc


def _local_name(prefix: str, name: str) -> str:
    """A name that satisfies the one tool-name pattern (MCP allows a wider alphabet)."""
    return to_tool_name(f"{prefix}{name}")


def _result_text(result: CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        if block.type == "text":
            parts.append(block.text)
        elif block.type in ("image", "audio"):
            parts.append(f"[{block.type} content ({block.mime_type}) not shown]")
        elif block.type == "resource":
            text = getattr(block.resource, "text", None)
            parts.append(text if text is not None else f"[binary resource {block.resource.uri}]")
        elif block.type == "resource_link":
            parts.append(f"[resource {block.uri}]")
    if not parts and result.structured_content is not None:
        return orjson.dumps(result.structured_content).decode()
    return "\n".join(parts)


class _Server:
    """One connected server: what its tools need to call it and to explain its failures."""

    def __init__(
        self,
        client: Client,
        label: str,
        stderr_tail: Callable[[], str],
        max_result_bytes: int,
    ) -> None:
        self.client = client
        self.label = label
        self.stderr_tail = stderr_tail
        self.max_result_bytes = max_result_bytes
        self.open = True

    def close(self) -> None:
        """Later calls fail fast instead of reaching a client that has shut down."""
        self.open = False

    def connection_error(self, what: str, cause: BaseException | None = None) -> MCPConnectionError:
        message = f"MCP server {self.label!r} {what}"
        if cause is not None and str(cause):
            message += f" ({cause})"
        tail = self.stderr_tail().strip()
        if tail:
            message += f"; its last stderr output:\n{tail}"
        return MCPConnectionError(message)

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float | None) -> str:
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        if not self.open:
            raise MCPConnectionError(f"MCP server {self.label!r} is no longer mounted")
        # None means no limit; the client would read it as "use the connect timeout".
        limit = math.inf if timeout_s is None else timeout_s
        try:
            result = await self.client.call_tool(name, arguments, read_timeout_seconds=limit)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise self.connection_error(f"closed the connection during {name!r}") from exc
            if exc.code == REQUEST_TIMEOUT:
                raise ToolFailure(
                    f"{name}: no answer from the MCP server within {timeout_s:g} s"
                ) from exc
            raise ToolFailure(f"{name}: the MCP server refused the call: {exc.message}") from exc
        # A server's answer enters the model's context: bound it like every built-in tool.
        text = truncate_text(_result_text(result), self.max_result_bytes)
        if result.is_error:
            raise ToolFailure(text or f"{name}: the MCP server reported an error")
        return text

    def tool(
        self,
        spec: MCPTool,
        *,
        prefix: str,
        timeout_s: float | None,
        expected_latency_s: float | None,
    ) -> Tool:
        remote = spec.name
        schema = dict(spec.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})

        async def call(**arguments: Any) -> str:
            return await self.call(remote, arguments, timeout_s)

        hints = spec.annotations
        return Tool(
            name=_local_name(prefix, remote),
            description=spec.description or spec.title or f"{remote} (MCP server {self.label})",
            parameters=schema,
            fn=call,
            timeout_s=timeout_s,
            expected_latency_s=expected_latency_s,
            # Only the server's explicit promise counts; MCP's default assumes side effects.
            side_effect_free=bool(hints is not None and hints.read_only_hint),
            metadata={"mcp_server": self.label, "mcp_tool": remote},
        )


def _leaf(exc: BaseException) -> BaseException:
    """The first underlying exception of a (nested) exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _list_tools(client: Client) -> list[MCPTool]:
    specs: list[MCPTool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        specs.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return specs


@asynccontextmanager
async def _mounted(
    transport: AbstractAsyncContextManager[Any],
    *,
    label: str,
    stderr_tail: Callable[[], str],
    timeout_s: float | None,
    connect_timeout_s: float,
    name_prefix: str,
    expected_latency_s: float | None,
    max_result_bytes: int,
) -> AsyncIterator[list[Tool]]:
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    # The client-wide read timeout bounds the handshake and the listing; each call
    # passes its own (timeout_s), so a slow tool is not cut at the connect timeout.
    client = Client(transport, read_timeout_seconds=connect_timeout_s)
    server = _Server(client, label, stderr_tail, max_result_bytes)
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(client)
            specs = await _list_tools(client)
        except Exception as exc:
            # The client's task groups may wrap the cause; the model-facing error names it.
            cause = _leaf(exc)
            if isinstance(cause, OSError):
                raise server.connection_error("could not be started", cause) from exc
            if isinstance(cause, MCPError | anyio.BrokenResourceError | anyio.ClosedResourceError):
                raise server.connection_error("did not complete the handshake", cause) from exc
            raise
        stack.callback(server.close)
        tools = [
            server.tool(
                spec, prefix=name_prefix, timeout_s=timeout_s, expected_latency_s=expected_latency_s
            )
            for spec in specs
        ]
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise ValueError(f"MCP server {label!r}: tool names collide after sanitizing: {names}")
        yield tools


def _stderr_reader(log: TextIO) -> Callable[[], str]:
    def tail() -> str:
        # pread leaves the shared file offset alone: the server still writes through it.
        fd = log.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - _STDERR_TAIL_BYTES)
        return os.pread(fd, size - start, start).decode("utf-8", errors="replace")

    return tail


@asynccontextmanager
async def mcp_stdio_tools(
    command: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout_s: float | None = 30.0,
    connect_timeout_s: float = 30.0,
    name_prefix: str = "",
    expected_latency_s: float | None = None,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> AsyncIterator[list[Tool]]:
    """Start an MCP server over stdio and mount its tools for the duration of the block.

    ``async with mcp_stdio_tools("python", ["server.py"]) as tools: ...`` — the server
    process is stopped (and its process group killed if it lingers) on exit.

    Args:
        command: the server program.
        args: its arguments.
        env: extra environment variables, on top of a minimal inherited set (PATH, HOME...).
        cwd: the server's working folder.
        timeout_s: limit of one tool call (also each Tool's ``timeout_s``).
        connect_timeout_s: limit of the handshake and of listing the tools.
        name_prefix: prepended to each tool name (e.g. "fs." to keep servers apart).
        expected_latency_s: static latency guess for each Tool (see ``LatencyTracker``).
        max_result_bytes: longer results are cut in the middle, with a marker.

    Yields:
        One ``Tool`` per server tool, in the server's order.

    Raises:
        MCPConnectionError: the server could not be started, did not complete the
            handshake, or went away; the message ends with its last stderr output.
    """
    _require_mcp()
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=command,
        args=list(args),
        env=dict(env) if env else None,
        cwd=os.fspath(cwd) if cwd is not None else None,
    )
    label = " ".join([command, *args])
    # Stderr goes to a file, not our terminal: it is the best explanation of a crash.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        async with _mounted(
            stdio_client(params, errlog=log),
            label=label,
            stderr_tail=_stderr_reader(log),
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            name_prefix=name_prefix,
            expected_latency_s=expected_latency_s,
            max_result_bytes=max_result_bytes,
        ) as tools:
            yield tools


@asynccontextmanager
async def mcp_http_tools(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = 30.0,
    connect_timeout_s: float = 30.0,
    name_prefix: str = "",
    expected_latency_s: float | None = None,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    http_client: Any = None,
) -> AsyncIterator[list[Tool]]:
    """Connect to an MCP server over streamable HTTP and mount its tools for the block.

    Args:
        url: the server's MCP endpoint, e.g. "http://127.0.0.1:8000/mcp".
        headers: extra request headers (e.g. authorization); ignored if ``http_client``.
        timeout_s: limit of one tool call (also each Tool's ``timeout_s``).
        connect_timeout_s: limit of the handshake and of listing the tools.
        name_prefix: prepended to each tool name.
        expected_latency_s: static latency guess for each Tool.
        max_result_bytes: longer results are cut in the middle, with a marker.
        http_client: an ``httpx2.AsyncClient`` (the HTTP library of ``mcp`` 2.x) to use,
            e.g. one with an ASGI transport in tests.

    Yields:
        One ``Tool`` per server tool.

    Raises:
        MCPConnectionError: the server could not be reached or went away.
    """
    _require_mcp()
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with AsyncExitStack() as stack:
        client = http_client
        if client is None and headers:
            # Our own client for the headers; read stays long because a server may
            # hold a response stream open while a tool runs.
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=dict(headers), timeout=httpx2.Timeout(connect_timeout_s, read=300.0)
                )
            )
        tools = await stack.enter_async_context(
            _mounted(
                streamable_http_client(url, http_client=client),
                label=url,
                stderr_tail=lambda: "",
                timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s,
                name_prefix=name_prefix,
                expected_latency_s=expected_latency_s,
                max_result_bytes=max_result_bytes,
            )
        )
        yield tools
