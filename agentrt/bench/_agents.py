"""``agentrt bench agents``: a multi-tool agent workload, baseline vs each switch vs all.

Each run asks a research agent about cities; it calls a lookup tool that behaves like a
remote service (fixed latency) several times in parallel, then answers. Every mode runs
the same questions on the same embedded engine (prefix cache reset before each mode), at
each concurrency level (closed loop: that many runs in flight). The orchestrator's own
cost per iteration is measured too (see ``_overhead``) and set against the real one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

import anyio

from agentrt import Agent, RunResult, SamplingOptions, Switches, tool
from agentrt.cli._engine_options import add_engine_flags, engine_options
from agentrt.engine import VLLMEngine
from agentrt.replay import MODE_NAMES, mode_switches, percentile

from ._output import bar_chart, markdown_table, out_dir, write_json
from ._overhead import measure as measure_overhead
from ._overhead import overhead_rows

CITIES = {
    "paris": 2102650,
    "lyon": 522250,
    "berlin": 3685265,
    "madrid": 3332035,
    "rome": 2749031,
    "tokyo": 14094034,
    "oslo": 709037,
    "lima": 10092000,
}


def make_agent(engine: VLLMEngine, switches: Switches, latency_s: float, max_tokens: int) -> Agent:
    @tool(expected_latency_s=latency_s, side_effect_free=True)
    async def city_facts(city: str, fact: Literal["population", "country"]) -> str:
        """Look up a fact about a city (a remote service).

        Args:
            city: the city's name
            fact: which fact
        """
        await anyio.sleep(latency_s)
        pop = CITIES.get(city.strip().lower())
        return f"{city}: unknown" if pop is None else f"{city} {fact}: {pop}"

    return Agent(
        instructions="You research cities. Call city_facts for every city in the question, "
        "all calls at once, then answer in one sentence.",
        tools=[city_facts],
        engine=engine,
        switches=switches,
        tool_choice="required",
        max_iterations=2,
        sampling=SamplingOptions(max_tokens=max_tokens),
    )


def questions(n: int) -> list[str]:
    names = [c.title() for c in CITIES]
    return [
        f"Compare the populations of {names[i % 8]} and {names[(i + 3) % 8]}." for i in range(n)
    ]


def modes(names: Sequence[str]) -> list[tuple[str, Switches]]:
    """Named modes as the replay names them: baseline, one switch, all, all-<switch>."""
    return [(n, mode_switches(n)) for n in names]


async def run_batch(agent: Agent, qs: list[str], concurrency: int) -> tuple[list[RunResult], float]:
    results: list[RunResult] = []
    limit = anyio.Semaphore(concurrency)

    async def one(q: str) -> None:
        async with limit:
            results.append(await agent.run(q))

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for q in qs:
            tg.start_soon(one, q)
    return results, time.perf_counter() - t0


def summarize(results: list[RunResult], wall_s: float) -> dict[str, Any]:
    ftr = [r.ftr_s for r in results if r.ftr_s is not None]
    prompt = sum(it.prompt_tokens for r in results for it in r.iterations)
    cached = sum(it.cached_tokens for r in results for it in r.iterations)
    tool_s = sum(r.tool_time_s for r in results)
    iters = [it.end_t - it.sent_t for r in results for it in r.iterations]
    return {
        "runs": len(results),
        "answered": len(ftr),
        "ftr_median_s": statistics.median(ftr) if ftr else None,
        "ftr_p90_s": percentile(ftr, 90) if ftr else None,
        "e2e_median_s": statistics.median(r.e2e_s for r in results),
        "hit_rate": cached / prompt if prompt else 0.0,
        "tool_overlap_share": sum(r.tool_overlap_s for r in results) / tool_s if tool_s else 0.0,
        "divergent_prompts": sum(len(r.divergences) for r in results),
        "tool_calls": sum(len(r.tool_spans) for r in results),
        "runs_per_s": len(results) / wall_s,
        "llm_call_median_s": statistics.median(iters) if iters else None,
    }


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=8, help="agent runs per mode and concurrency")
    p.add_argument("--concurrency", default="1,4", help="comma-separated levels")
    p.add_argument(
        "--modes",
        default=",".join(MODE_NAMES),
        help="comma-separated: baseline, a switch alone, all, or all-<switch>",
    )
    p.add_argument("--tool-latency-s", type=float, default=0.5)
    p.add_argument("--max-tokens", type=int, default=80)
    p.add_argument("--out", default=None)
    add_engine_flags(p, kv_cache_mib=160, max_model_len=2048)


async def run(args: argparse.Namespace, chosen: list[tuple[str, Switches]]) -> dict[str, Any]:
    levels = [int(c) for c in args.concurrency.split(",")]
    engine = await VLLMEngine.start(engine_options(args))
    rows: list[dict[str, Any]] = []
    try:
        qs = questions(args.runs)
        await make_agent(engine, Switches(), 0.0, 8).run("Warm up.")
        for level in levels:
            for name, sw in chosen:
                await engine.reset_prefix_cache()
                agent = make_agent(engine, sw, args.tool_latency_s, args.max_tokens)
                results, wall = await run_batch(agent, qs, level)
                rows.append({"mode": name, "concurrency": level, **summarize(results, wall)})
                print(
                    f"  concurrency {level} {name}: median FTR {rows[-1]['ftr_median_s']}",
                    flush=True,
                )
    finally:
        await engine.aclose()
    overhead = await measure_overhead()
    return {
        "rows": rows,
        "overhead": overhead,
        "options": {k: v for k, v in vars(args).items() if not k.startswith("_")},
    }


def _fmt(v: float | None, unit: Literal["s", "%"] = "s") -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if unit == "s" else f"{v:.0%}"


def main(args: argparse.Namespace) -> int:
    try:
        chosen = modes(args.modes.split(","))  # a bad name fails before the engine starts
    except ValueError as exc:
        print(f"agentrt bench agents: {exc}", file=sys.stderr)
        return 2
    res = asyncio.run(run(args, chosen))
    table = markdown_table(
        [
            "concurrency",
            "mode",
            "median FTR s",
            "p90 FTR s",
            "median E2E s",
            "KV hit rate",
            "tool overlap",
            "diverged prompts",
            "runs/s",
        ],
        [
            [
                r["concurrency"],
                r["mode"],
                _fmt(r["ftr_median_s"]),
                _fmt(r["ftr_p90_s"]),
                _fmt(r["e2e_median_s"]),
                _fmt(r["hit_rate"], "%"),
                _fmt(r["tool_overlap_share"], "%"),
                r["divergent_prompts"],
                f"{r['runs_per_s']:.2f}",
            ]
            for r in res["rows"]
        ],
    )
    calls = [r["llm_call_median_s"] for r in res["rows"] if r["llm_call_median_s"]]
    iteration_s = statistics.median(calls) if calls else None
    over = markdown_table(["orchestrator", "cost"], overhead_rows(res["overhead"], iteration_s))
    print(table)
    print()
    print(over)
    folder = out_dir(args.out, "bench-agents")
    write_json(folder / "agents.json", res)
    (folder / "agents.md").write_text(table + "\n\n" + over + "\n")
    for level in sorted({r["concurrency"] for r in res["rows"]}):
        sel = [r for r in res["rows"] if r["concurrency"] == level]
        bar_chart(
            folder / f"agents_ftr_c{level}.png",
            f"Median and p90 FTR, concurrency {level}",
            [r["mode"] for r in sel],
            {
                "median": [r["ftr_median_s"] or 0 for r in sel],
                "p90": [r["ftr_p90_s"] or 0 for r in sel],
            },
            "seconds",
        )
    print(f"results in {folder}")
    return 0
