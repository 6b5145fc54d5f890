"""``agentrt bench server``: what the REST server costs on top of the in-process engine call.

The same streamed chat requests run twice per engine: through the server (in a child
process, clients in this one, over HTTP/SSE) and in-process (``engine.generate`` on the
same rendered prompt). Per-token overhead is the difference of the median inter-token
times of one stream at a time; requests/s comes from ``--concurrency`` streams at once.
ScriptedEngine with a fixed decode step isolates the server's cost from the model's
speed; the embedded engine shows it beside a real model.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from agentrt.bench._output import out_dir, write_json

from ._bench_report import Result, overheads, plot, table
from ._runner import run_loop

_READY_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Which engine a phase runs on (picklable: the server's child process builds it)."""

    kind: str  # "scripted" or "embedded"
    decode_step_s: float = 0.001
    max_model_len: int = 2048
    kv_cache_bytes: int = 256 * 2**20

    @property
    def label(self) -> str:
        if self.kind == "scripted":
            return f"scripted-{self.decode_step_s * 1e3:g}ms"
        return "embedded"


@dataclass(frozen=True, slots=True)
class Sample:
    """One streamed request: seconds from its start to its first and last delta, and deltas."""

    ttft_s: float
    last_s: float
    deltas: int

    @property
    def itl_s(self) -> float:
        return (self.last_s - self.ttft_s) / max(1, self.deltas - 1)


async def _make_engine(spec: EngineSpec) -> Any:
    from agentrt.engine import ScriptedEngine, TimingModel

    if spec.kind == "scripted":
        # The step is decode only (prefill is free), so TTFT differences are server cost.
        timing = TimingModel(prefill_s_per_token=0.0, decode_step_s=spec.decode_step_s)
        return ScriptedEngine(
            lambda ctx: "x" * 4096, timing=timing, max_model_len=spec.max_model_len
        )
    from agentrt.engine import EngineOptions, VLLMEngine

    options = EngineOptions(max_model_len=spec.max_model_len, kv_cache_bytes=spec.kv_cache_bytes)
    return await VLLMEngine.start(options)


def _body(model: str, i: int, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "stream": True,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": f"Request {i}: write a long story."}],
    }


async def _timed(
    n: int, concurrency: int, one: Callable[[int], Awaitable[Sample]]
) -> tuple[list[Sample], float]:
    sem = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> Sample:
        async with sem:
            return await one(i)

    t0 = time.perf_counter()
    samples = await asyncio.gather(*(guarded(i) for i in range(n)))
    return list(samples), time.perf_counter() - t0


async def _phases(
    spec: EngineSpec, mode: str, wl: argparse.Namespace, one: Callable[[int], Awaitable[Sample]]
) -> Result:
    """One stream at a time (latency), then ``wl.concurrency`` at once (throughput)."""
    seq, _ = await _timed(wl.requests, 1, one)
    conc, wall = await _timed(wl.requests, wl.concurrency, one)
    return Result(
        spec.label,
        mode,
        len(conc),
        wl.concurrency,
        wl.max_tokens,
        rps=len(conc) / wall,
        tokens_per_s=sum(s.deltas for s in conc) / wall,
        ttft_ms=statistics.mean(s.ttft_s for s in seq) * 1e3,
        itl_us=statistics.median(s.itl_s for s in seq) * 1e6,
    )


async def _in_process(spec: EngineSpec, wl: argparse.Namespace) -> Result:
    from ._chat_plan import plan_chat
    from ._openai_models import ChatCompletionRequest

    engine = await _make_engine(spec)
    try:

        async def one(i: int) -> Sample:
            body = ChatCompletionRequest.model_validate(_body("m", i, wl.max_tokens))
            t0 = time.perf_counter()
            plan = plan_chat(body, engine.tokenizer, engine.info, cache_salt=None)
            first = last = 0.0
            n = 0
            async with aclosing(engine.generate(plan.request)) as deltas:
                async for d in deltas:
                    if d.text:
                        last = time.perf_counter() - t0
                        first = first or last
                        n += 1
            return Sample(first, last, n)

        return await _phases(spec, "in-process", wl, one)
    finally:
        await engine.aclose()


async def _through_server(url: str, spec: EngineSpec, wl: argparse.Namespace) -> Result:
    import httpx

    limits = httpx.Limits(max_connections=wl.concurrency + 2)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        model = (await client.get("/v1/models")).json()["data"][0]["id"]

        async def one(i: int) -> Sample:
            t0 = time.perf_counter()
            first = last = 0.0
            n = 0
            body = _body(model, i, wl.max_tokens)
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                r.raise_for_status()
                async for line in r.aiter_lines():
                    # A content delta, found without parsing JSON: client cost stays low.
                    if (
                        line.startswith("data: {")
                        and '"content":"' in line
                        and '"role"' not in line
                    ):
                        last = time.perf_counter() - t0
                        first = first or last
                        n += 1
            return Sample(first, last, n)

        return await _phases(spec, "server", wl, one)


def _serve_child(spec: EngineSpec, conn: Connection) -> None:
    """Child process: serve ``spec``'s engine on a free port, send the URL, stop on request."""

    async def serve() -> None:
        from ._app import create_app
        from ._runner import running_server

        engine = await _make_engine(spec)
        try:
            app = create_app(engine, agents=[])
            async with running_server(app, log_level="error") as url:
                conn.send(url)
                await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        finally:
            await engine.aclose()

    run_loop(serve())  # as `agentrt serve` runs it


async def _server_phase(spec: EngineSpec, wl: argparse.Namespace) -> Result:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_child, args=(spec, child), daemon=False)
    proc.start()
    loop = asyncio.get_running_loop()
    try:
        if not await loop.run_in_executor(None, parent.poll, _READY_TIMEOUT_S):
            raise RuntimeError(f"the benchmark server did not start in {_READY_TIMEOUT_S:.0f} s")
        return await _through_server(parent.recv(), spec, wl)
    finally:
        if proc.is_alive():
            parent.send("stop")
        await loop.run_in_executor(None, proc.join, 60)
        if proc.is_alive():
            proc.terminate()  # it did not stop by itself; it is our own child
            proc.join(10)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engines",
        default="scripted,embedded",
        help="comma-separated: scripted (ScriptedEngine), embedded (vLLM)",
    )
    p.add_argument(
        "--decode-steps-ms",
        default="0,1",
        help="ScriptedEngine decode step(s) in ms, comma-separated (default: 0,1)",
    )
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per phase (default: 100 scripted, 8 embedded)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="streams at once in the throughput phase (default: 16 scripted, 4 embedded)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per request (default: 128 scripted, 32 embedded)",
    )
    p.add_argument("--out", default=None, help="result folder (default runs/bench-server-<time>)")


def _specs(args: argparse.Namespace) -> list[tuple[EngineSpec, argparse.Namespace]]:
    out = []
    for kind in filter(None, (k.strip() for k in args.engines.split(","))):
        if kind == "scripted":
            steps = [float(s) / 1e3 for s in args.decode_steps_ms.split(",") if s.strip()]
            defaults = {"requests": 100, "concurrency": 16, "max_tokens": 128}
            specs = [EngineSpec("scripted", decode_step_s=s) for s in steps]
        elif kind == "embedded":
            defaults = {"requests": 8, "concurrency": 4, "max_tokens": 32}
            specs = [EngineSpec("embedded")]
        else:
            raise ValueError(f"--engines: unknown engine {kind!r} (scripted, embedded)")
        wl = argparse.Namespace(**{k: getattr(args, k) or v for k, v in defaults.items()})
        out += [(s, wl) for s in specs]
    return out


def main(args: argparse.Namespace) -> int:
    try:
        specs = _specs(args)
    except ValueError as exc:
        print(f"agentrt bench server: {exc}")
        return 2

    async def run() -> list[Result]:
        results = []
        for spec, wl in specs:
            print(
                f"-- {spec.label}: {wl.requests} requests x {wl.max_tokens} tokens, "
                f"concurrency {wl.concurrency}",
                flush=True,
            )
            # One engine at a time: the server's (in its child), then this process's own.
            results.append(await _server_phase(spec, wl))
            results.append(await _in_process(spec, wl))
        return results

    results = run_loop(run())  # the same loop as the server child: only the server differs
    print(table(results))
    data = {"results": [dataclasses.asdict(r) for r in results], "overhead": overheads(results)}
    folder = out_dir(args.out, "bench-server")
    write_json(folder / "server.json", data)
    (folder / "server.md").write_text(table(results) + "\n")
    plot(results, folder / "server.png")
    print(f"results in {folder}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="agentrt bench server", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(main(_parser.parse_args()))
