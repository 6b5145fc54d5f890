"""Running the app with uvicorn inside the current event loop (tests, benchmarks, the CLI).

The server runs as a task of the caller's loop, so it shares the loop an embedded engine
is bound to. uvicorn's own signal capture is turned off: whoever runs the loop decides
what a signal means (the CLI maps SIGINT/SIGTERM to a graceful stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any, Literal, TypeVar

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0
T = TypeVar("T")
LoopKind = Literal["auto", "uvloop", "asyncio"]


def run_loop(main: Coroutine[Any, Any, T], kind: LoopKind = "auto") -> T:
    """Run ``main`` to completion on a new event loop: uvloop when installed (``auto``; the
    loop vLLM's own server uses; it lowers the cost of each streamed chunk), else asyncio.

    Raises:
        ImportError: ``kind`` is "uvloop" and uvloop is not installed.
    """
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(
    app: ASGIApp, host: str, port: int, *, log_level: str = "warning"
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="asyncio",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket; port 0 picks a free port with no race.

    The protocol is named explicitly: asyncio turns Nagle's algorithm off only on sockets
    whose ``proto`` is TCP, and with it on, a response written in two parts (headers,
    body) waits ~40 ms for the client's delayed ACK on every keep-alive request.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def serve(server: uvicorn.Server, sock: socket.socket) -> None:
    """``server.serve`` on ``sock``; a failed start-up raises instead of exiting the process."""
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn calls sys.exit() when the app's start-up fails
        raise RuntimeError(f"the server failed to start (exit code {exc.code})") from None


@contextlib.asynccontextmanager
async def running_server(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` while the block runs; yields the base URL.

    Raises:
        RuntimeError: the server failed to start (e.g. the app's start-up raised).
    """
    sock = bound_socket(host, port)
    server = EmbeddedServer(uvicorn_config(app, host, sock.getsockname()[1], log_level=log_level))
    task = asyncio.get_running_loop().create_task(serve(server, sock))
    try:
        await _until_started(server, task)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        done, _ = await asyncio.wait((task,), timeout=_STOP_TIMEOUT_S)
        if not done:
            server.force_exit = True
            await asyncio.wait((task,), timeout=_STOP_TIMEOUT_S)
        sock.close()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError("the server failed while stopping") from task.exception()


async def _until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    # uvicorn exposes no start-up event; poll its flag, bounded, and fail fast if it died.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT_S
    while not server.started:
        if task.done():
            exc = None if task.cancelled() else task.exception()
            raise RuntimeError("the server failed to start") from exc
        if loop.time() > deadline:
            raise RuntimeError(f"the server did not start within {_START_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.005)
