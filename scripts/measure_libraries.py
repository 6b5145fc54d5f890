"""Micro-measurements behind the library choices of issue 18 (docs/OBSERVABILITY.md):
our hand-written pieces against the well-kept libraries that could replace them.

    .venv/bin/python scripts/measure_libraries.py [sse|lru|json|units|tracing ...]

* sse: per-frame cost of an event stream through the ASGI interface (our SSEResponse,
  sse-starlette's EventSourceResponse, FastAPI's EventSourceResponse = Starlette's
  StreamingResponse), and whether a source's clean-up may still await after a disconnect
  (where vLLM sends its abort) and whether an error before the first frame can still
  become an HTTP error status.
* lru: get/put cost of the server's bounded stores (our IdleLRU against cachetools'
  TTLCache).
* json: finding where a tool call's JSON ends while tokens stream in (our incremental
  scanner against partial-json-parser re-parsing the growing prefix, as vLLM does).
* units: the calculator's unit conversions (our table against pint's registry): how many
  of a set of conversions, written as a user or a model writes them, each gets right, and
  the cost of one conversion.
* tracing: what the tracing hooks cost per LLM call when tracing is off.

The libraries compared against are the ``measure`` extra (``pip install 'agentrt[measure]'``).
Timings are medians of several repeats on whatever machine runs this; read them as
ratios, not as absolute figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

FRAME = b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" word"}}]}\n\n'


def median_of(fn: Callable[[], float], repeats: int = 5) -> float:
    return statistics.median(fn() for _ in range(repeats))


# --- server-sent events -------------------------------------------------------------


async def _frames(n: int, state: dict[str, Any], pause: float = 0.0) -> AsyncIterator[bytes]:
    try:
        for _ in range(n):
            yield FRAME
            if pause:
                await asyncio.sleep(pause)
    finally:
        # What vLLM's abort does on the way out: awaits inside the clean-up.
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        state["cleaned"] = True


def _responses() -> dict[str, Callable[[AsyncIterator[bytes]], Any]]:
    from fastapi.sse import EventSourceResponse as FastAPIEventSource
    from sse_starlette import EventSourceResponse

    from agentrt.server._sse import SSEResponse

    return {
        "agentrt SSEResponse": SSEResponse,
        "sse-starlette": lambda src: EventSourceResponse(src, ping=0),
        "fastapi EventSourceResponse": FastAPIEventSource,
    }


SCOPE = {"type": "http", "method": "POST", "asgi": {"spec_version": "2.4"}, "headers": []}


async def _throughput(make: Callable[[AsyncIterator[bytes]], Any], n: int) -> float:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, Any]:
        await never
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    response = make(_frames(n, {}))
    t0 = time.perf_counter()
    await response(SCOPE, receive, send)
    return (time.perf_counter() - t0) / n * 1e6


async def _disconnect(make: Callable[[AsyncIterator[bytes]], Any]) -> bool:
    state: dict[str, Any] = {"cleaned": False}
    sent = 0
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += 1
        if sent == 20:
            gone.set()
        if gone.is_set() and sent > 25:
            raise OSError("client gone")

    with contextlib.suppress(Exception):  # Starlette raises ClientDisconnect
        await make(_frames(10_000, state, pause=0.0005))(SCOPE, receive, send)
    # Our invariant: when the response returns, the source's clean-up has run to its end.
    return bool(state["cleaned"])


async def _error_status(make: Callable[[AsyncIterator[bytes]], Any]) -> int:
    async def failing() -> AsyncIterator[bytes]:
        raise ValueError("prompt too long")
        yield b""  # an async generator

    status = 0

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    with contextlib.suppress(Exception):
        await make(failing())(SCOPE, receive, send)
    return status


def measure_sse() -> None:
    print("server-sent events: us per frame (50,000 frames, median of 5) | a disconnected")
    print("source's clean-up (awaits included) done when the response returns | status of")
    print("an error raised before the first frame")
    for name, make in _responses().items():
        us = median_of(lambda make=make: asyncio.run(_throughput(make, 50_000)))
        cleaned = asyncio.run(_disconnect(make))
        status = asyncio.run(_error_status(make))
        print(f"  {name:28s} {us:6.2f} us/frame | clean-up finished: {cleaned!s:5} | {status}")


# --- bounded stores -------------------------------------------------------------------


def measure_lru() -> None:
    from cachetools import TTLCache

    from agentrt.server._lru import IdleLRU

    keys = [f"run_{i:024x}" for i in range(20_000)]

    def idle() -> float:
        store: IdleLRU[str, int] = IdleLRU(1024, 3600.0)
        t0 = time.perf_counter()
        for k in keys:
            store.put(k, 1)
            store.get(k)
            store.get(keys[0])
        return (time.perf_counter() - t0) / len(keys) * 1e6

    def ttl() -> float:
        store: TTLCache[str, int] = TTLCache(1024, 3600.0, timer=time.monotonic)
        t0 = time.perf_counter()
        for k in keys:
            store[k] = 1
            store.get(k)
            store.get(keys[0])
        return (time.perf_counter() - t0) / len(keys) * 1e6

    print("bounded store: us per (put + 2 gets), 1,024 entries, 20,000 keys")
    print(f"  agentrt IdleLRU           {median_of(idle):6.2f}")
    print(f"  cachetools TTLCache       {median_of(ttl):6.2f}")


# --- partial JSON -----------------------------------------------------------------------


def measure_json() -> None:
    import json

    from partial_json_parser import loads as partial_loads

    from agentrt.engine._formats._scan import JsonEndScanner

    args = {"query": "weather in " + "Paris " * 60, "days": 3, "units": {"t": "C", "w": "kmh"}}
    text = json.dumps({"name": "search", "arguments": args})
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]  # ~4 characters a token

    def scanner() -> float:
        t0 = time.perf_counter()
        scan = JsonEndScanner()
        for p in pieces:
            scan.feed(p)
        assert scan.done and json.loads(scan.value_text) == json.loads(text)
        return (time.perf_counter() - t0) * 1e6

    def reparse() -> float:
        t0 = time.perf_counter()
        prefix = ""
        for p in pieces:
            prefix += p
            partial_loads(prefix)
        return (time.perf_counter() - t0) * 1e6

    print(f"tool-call JSON end ({len(text)} characters in {len(pieces)} deltas): us per call")
    print(f"  agentrt JsonEndScanner (incremental)   {median_of(scanner):9.1f}")
    print(f"  partial-json-parser (parse each prefix) {median_of(reparse):9.1f}")
    # Completeness: the parser returns a value for an unfinished prefix too, so it cannot
    # say by itself that a call has closed.
    print(f"  partial parse of an unfinished call: {partial_loads(text[:40])!r}")


# --- unit conversion in the calculator ----------------------------------------------

# (value, from, to, expected): as a user or a model writes them in "5 km in mi".
_CONVERSIONS: tuple[tuple[float, str, str, float], ...] = (
    (5.0, "km", "mi", 5000 / 1609.344),
    (100.0, "degC", "degF", 212.0),
    (100.0, "C", "F", 212.0),  # the short temperature names
    (32.0, "degF", "degC", 0.0),
    (300.0, "K", "degC", 26.85),
    (1.0, "lb", "g", 453.59237),
    (1.0, "stone", "lb", 14.0),
    (1.0, "t", "kg", 1000.0),
    (1.0, "yr", "d", 365.25),
    (2.0, "h", "min", 120.0),
    (1.0, "nmi", "km", 1.852),
)


def measure_units() -> None:
    import math

    import pint

    from agentrt.tools._tool import ToolFailure
    from agentrt.tools._units import convert_units

    registry = pint.UnitRegistry()

    def ours(v: float, src: str, dst: str) -> float:
        return convert_units(v, src, dst)

    def theirs(v: float, src: str, dst: str) -> float:
        return float(registry.Quantity(v, src).to(dst).magnitude)

    def right(fn: Callable[[float, str, str], float], case: tuple[float, str, str, float]) -> bool:
        v, src, dst, want = case
        try:
            got = fn(v, src, dst)
        except (ToolFailure, pint.PintError):
            return False
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)

    def timed(fn: Callable[[float, str, str], float]) -> Callable[[], float]:
        def run() -> float:
            n = 200
            t0 = time.perf_counter()
            for _ in range(n):
                fn(5.0, "km", "mi")
                fn(100.0, "degC", "degF")
            return (time.perf_counter() - t0) / (2 * n) * 1e6

        return run

    print(f"unit conversions ({len(_CONVERSIONS)} cases): right, and us per conversion")
    for name, fn in (("agentrt table", ours), ("pint registry", theirs)):
        wrong = [f"{c[0]:g} {c[1]} in {c[2]}" for c in _CONVERSIONS if not right(fn, c)]
        ok = len(_CONVERSIONS) - len(wrong)
        print(f"  {name}  {ok}/{len(_CONVERSIONS)}  {median_of(timed(fn)):8.1f}  wrong: {wrong}")
    # Why pint misses the short names: it reads them as other units.
    print(f"  pint reads C as {registry.parse_units('C')}, F as {registry.parse_units('F')}")


# --- tracing hooks --------------------------------------------------------------------


def measure_tracing() -> None:
    from agentrt._tracing import NO_TRACE
    from agentrt.engine import GenerateRequest

    request = GenerateRequest((1, 2, 3))
    n = 200_000

    def hooks() -> float:
        t0 = time.perf_counter()
        for i in range(n):
            with NO_TRACE.llm_call(i, request) as call:
                call.done(None)
        return (time.perf_counter() - t0) / n * 1e9

    print(f"tracing off: ns per LLM call for the hooks  {median_of(hooks):6.0f}")

    # A REST chat completion traced: the extra generator layer costs per token.
    from opentelemetry.sdk.trace import TracerProvider

    from agentrt._tracing import traced_generate, use_tracer_provider
    from agentrt.engine import RequestStats, TokenDelta

    tokens = 20_000

    class Fast:
        info = None

        async def generate(self, req: GenerateRequest) -> AsyncIterator[TokenDelta]:
            for _ in range(tokens - 1):
                yield TokenDelta((1,), "x", 0.0)
            stats = RequestStats("r", 3, 0, tokens, "stop", 0.0, 0.0, 0.0)
            yield TokenDelta((1,), "x", 0.0, stats)

    from agentrt.engine import EngineInfo

    Fast.info = EngineInfo("m", 4096, 16, True, "vllm")  # type: ignore[assignment]

    async def stream() -> float:
        t0 = time.perf_counter()
        async for _ in traced_generate(Fast(), request, {}):  # type: ignore[arg-type]
            pass
        return (time.perf_counter() - t0) / tokens * 1e9

    offs, ons = [], []
    provider = TracerProvider()
    for _ in range(7):  # interleaved, so a busy moment hits both alike
        offs.append(asyncio.run(stream()))
        with use_tracer_provider(provider):
            ons.append(asyncio.run(stream()))
    off, on = statistics.median(offs), statistics.median(ons)
    print(f"REST chat tokens: ns per token, tracing off {off:6.0f} | on {on:6.0f}")


SECTIONS = {
    "sse": measure_sse,
    "lru": measure_lru,
    "json": measure_json,
    "units": measure_units,
    "tracing": measure_tracing,
}

if __name__ == "__main__":
    logging.disable(logging.ERROR)  # the deliberate error above is logged by our server
    for name in sys.argv[1:] or list(SECTIONS):
        SECTIONS[name]()
