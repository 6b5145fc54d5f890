"""``agentrt bench engine``: start-up, prefill and decode speed, and the wrapper's overhead.

The overhead is measured against vLLM's ``AsyncLLM`` on the same engine in the same
run: identical requests go through ``VLLMEngine.generate`` and straight through
``AsyncLLM.generate``, alternating rounds so drift hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

from agentrt.cli._engine_options import add_engine_flags, engine_options
from agentrt.engine import GenerateRequest, SamplingOptions, VLLMEngine
from agentrt.engine._clock import now

from ._output import bar_chart, markdown_table, out_dir, write_json


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", type=int, default=6, help="alternating raw/wrapper rounds")
    p.add_argument("--streams", type=int, default=8, help="concurrent streams per overhead round")
    p.add_argument("--tokens", type=int, default=64, help="tokens per stream in overhead rounds")
    p.add_argument("--out", default=None, help="result folder (default runs/bench-engine-<time>)")
    add_engine_flags(p, kv_cache_mib=512, max_model_len=4096)


def _prompt(n: int, rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.randrange(1000, 40000) for _ in range(n))


async def _wrapper_run(engine: VLLMEngine, prompts: list[tuple[int, ...]], n: int) -> float:
    sampling = SamplingOptions(max_tokens=n, ignore_eos=True)

    async def one(p: tuple[int, ...]) -> None:
        async for _ in engine.generate(GenerateRequest(p, sampling)):
            pass

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    return time.perf_counter() - t0


async def _raw_run(engine: VLLMEngine, prompts: list[tuple[int, ...]], n: int, tag: str) -> float:
    from vllm import SamplingParams
    from vllm.inputs.engine import tokens_input
    from vllm.sampling_params import RequestOutputKind

    llm = engine.async_llm
    params = SamplingParams(
        max_tokens=n, ignore_eos=True, temperature=0.0, output_kind=RequestOutputKind.DELTA
    )

    async def one(i: int, p: tuple[int, ...]) -> None:
        async for _ in llm.generate(tokens_input(list(p)), params, f"raw-{tag}-{i}"):
            pass

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    return time.perf_counter() - t0


async def _decode_rate(engine: VLLMEngine, streams: int, n: int, rng: random.Random) -> float:
    """Aggregate decode tokens/s: tokens after each stream's first, over the busy window."""
    firsts: list[float] = []
    lasts: list[float] = []

    async def one() -> None:
        times = [
            d.t
            async for d in engine.generate(
                GenerateRequest(_prompt(16, rng), SamplingOptions(max_tokens=n, ignore_eos=True))
            )
            if d.token_ids
        ]
        firsts.append(times[0])
        lasts.append(times[-1])

    await asyncio.gather(*(one() for _ in range(streams)))
    return streams * (n - 1) / (max(lasts) - max(firsts))


async def _prefill_rate(engine: VLLMEngine, tokens: int, rng: random.Random) -> float:
    rates = []
    for _ in range(3):
        t0 = now()
        async for d in engine.generate(
            GenerateRequest(_prompt(tokens, rng), SamplingOptions(max_tokens=1))
        ):
            if d.stats is not None:
                rates.append(tokens / (d.t - t0))
    return statistics.median(rates)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(0)
    t0 = time.perf_counter()
    engine = await VLLMEngine.start(engine_options(args))
    start_s = time.perf_counter() - t0
    try:
        # Warm-up: the first requests pay one-time kernel set-up.
        await _wrapper_run(engine, [_prompt(64, rng) for _ in range(2)], 8)
        prefill = await _prefill_rate(engine, min(1024, engine.info.max_model_len - 8), rng)
        decode1 = await _decode_rate(engine, 1, 64, rng)
        decode8 = await _decode_rate(engine, 8, 64, rng)
        raw, wrapped = [], []
        for r in range(args.rounds):
            prompts = [_prompt(32, rng) for _ in range(args.streams)]
            if r % 2 == 0:
                raw.append(await _raw_run(engine, prompts, args.tokens, str(r)))
                wrapped.append(
                    await _wrapper_run(engine, [_prompt(32, rng) for _ in prompts], args.tokens)
                )
            else:
                wrapped.append(await _wrapper_run(engine, prompts, args.tokens))
                raw.append(
                    await _raw_run(engine, [_prompt(32, rng) for _ in prompts], args.tokens, str(r))
                )
    finally:
        await engine.aclose()
    raw_med, wrap_med = statistics.median(raw), statistics.median(wrapped)
    tokens_per_round = args.streams * args.tokens
    return {
        "engine_start_s": start_s,
        "prefill_tokens_per_s": prefill,
        "decode_tokens_per_s_1_stream": decode1,
        "decode_tokens_per_s_8_streams": decode8,
        "raw_round_s": raw,
        "wrapper_round_s": wrapped,
        "wrapper_over_raw": wrap_med / raw_med,
        "wrapper_overhead_us_per_token": (wrap_med - raw_med) / tokens_per_round * 1e6,
        "options": {
            "rounds": args.rounds,
            "streams": args.streams,
            "tokens": args.tokens,
            "block_size": engine.info.block_size,
            "max_model_len": engine.info.max_model_len,
        },
    }


def main(args: argparse.Namespace) -> int:
    res = asyncio.run(run(args))
    rows = [
        [
            "engine start (eager)" if not args.compiled else "engine start (compiled)",
            f"{res['engine_start_s']:.1f} s",
        ],
        ["prefill", f"{res['prefill_tokens_per_s']:.0f} tok/s"],
        ["decode, 1 stream", f"{res['decode_tokens_per_s_1_stream']:.1f} tok/s"],
        ["decode, 8 streams", f"{res['decode_tokens_per_s_8_streams']:.1f} tok/s"],
        ["AsyncLLM direct, median round", f"{statistics.median(res['raw_round_s']):.3f} s"],
        ["VLLMEngine wrapper, median round", f"{statistics.median(res['wrapper_round_s']):.3f} s"],
        ["wrapper / AsyncLLM", f"{res['wrapper_over_raw']:.4f}"],
        ["wrapper overhead", f"{res['wrapper_overhead_us_per_token']:.1f} µs/token"],
    ]
    table = markdown_table(["measure", "value"], rows)
    print(table)
    folder = out_dir(args.out, "bench-engine")
    write_json(folder / "engine.json", res)
    (folder / "engine.md").write_text(table + "\n")
    bar_chart(
        folder / "engine_overhead.png",
        "Same requests: AsyncLLM vs agentrt wrapper",
        [f"round {i}" for i in range(len(res["raw_round_s"]))],
        {"AsyncLLM": res["raw_round_s"], "VLLMEngine": res["wrapper_round_s"]},
        "seconds",
    )
    print(f"results in {folder}")
    return 0
