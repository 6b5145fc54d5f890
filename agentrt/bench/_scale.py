"""``agentrt bench scale``: many concurrent agent runs in one process, and memory after.

Waves of ``--runs`` agent runs start at once on a ``ScriptedEngine`` (so the engine is
not the limit) with a tool that waits like a remote service. Resident memory is sampled
before, during and after each wave; after the first wave it must stay flat: a second
and third wave of the same size leave memory where the first left it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import anyio
import psutil

from agentrt import Agent, SamplingOptions, Session, tool
from agentrt.engine import ScriptedEngine, TimingModel

from ._output import bar_chart, markdown_table, out_dir, write_json

_CALL = '<tool_call>\n{"name": "fetch", "arguments": {"key": "k"}}\n</tool_call>'
_ANSWER = "The value of k is 42, fetched from the remote store just now."


def _rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def _live_sessions() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, Session))


async def wave(agent: Agent, runs: int) -> dict[str, float]:
    peak = _rss_mib()
    done = 0
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal done
        result = await agent.run(f"Fetch k for user {i}.")
        assert result.status == "completed", f"run {i} ended {result.status}"
        done += 1

    async with anyio.create_task_group() as tg:
        for i in range(runs):
            tg.start_soon(one, i)
        while done < runs:
            peak = max(peak, _rss_mib())
            await anyio.sleep(0.05)
    wall = time.perf_counter() - t0
    gc.collect()
    return {
        "wall_s": wall,
        "peak_mib": peak,
        "after_mib": _rss_mib(),
        "live_sessions": _live_sessions(),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    @tool(expected_latency_s=args.tool_s)
    async def fetch(key: str) -> str:
        """Fetch a key from a remote store.

        Args:
            key: the key
        """
        await anyio.sleep(args.tool_s)
        return f"{key} = 42"

    timing = TimingModel(
        prefill_s_per_token=1e-6,
        decode_step_s=0.002,
        max_num_seqs=args.runs,
        max_batched_tokens=1_000_000,
    )
    engine = ScriptedEngine(
        # By the prompt, not the call's index: the runs' calls interleave.
        lambda c: _ANSWER if "<tool_response>" in c.prompt_text else _CALL,
        timing=timing,
        num_blocks=args.runs * 8,
        record_requests=False,
    )
    agent = Agent(
        instructions="Fetch keys.",
        tools=[fetch],
        engine=engine,
        constrain_calls=False,
        sampling=SamplingOptions(max_tokens=128),
    )
    await agent.run("warm up")
    gc.collect()
    before = _rss_mib()
    waves = [await wave(agent, args.runs) for _ in range(args.waves)]
    await engine.aclose()
    return {
        "runs_per_wave": args.runs,
        "before_mib": before,
        "waves": waves,
        "growth_after_first_wave_mib": waves[-1]["after_mib"] - waves[0]["after_mib"],
    }


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=1000, help="concurrent agent runs per wave")
    p.add_argument("--waves", type=int, default=3)
    p.add_argument("--tool-s", type=float, default=0.5, help="tool latency")
    p.add_argument("--out", default=None)


def main(args: argparse.Namespace) -> int:
    res = asyncio.run(run(args))
    rows = [
        [
            i + 1,
            f"{w['wall_s']:.1f}",
            f"{w['peak_mib']:.0f}",
            f"{w['after_mib']:.0f}",
            w["live_sessions"],
        ]
        for i, w in enumerate(res["waves"])
    ]
    table = markdown_table(
        ["wave", "wall s", "peak RSS MiB", "RSS after MiB", "live sessions after"], rows
    )
    print(
        f"{res['runs_per_wave']} concurrent runs per wave; RSS before: {res['before_mib']:.0f} MiB"
    )
    print(table)
    print(f"growth after the first wave: {res['growth_after_first_wave_mib']:+.1f} MiB")
    folder = out_dir(args.out, "bench-scale")
    write_json(folder / "scale.json", res)
    (folder / "scale.md").write_text(table + "\n")
    bar_chart(
        folder / "scale_memory.png",
        f"RSS with {res['runs_per_wave']} concurrent runs",
        [f"wave {i + 1}" for i in range(len(rows))],
        {
            "peak": [w["peak_mib"] for w in res["waves"]],
            "after": [w["after_mib"] for w in res["waves"]],
        },
        "MiB",
    )
    print(f"results in {folder}")
    return 0
