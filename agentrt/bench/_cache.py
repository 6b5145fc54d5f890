"""``agentrt bench cache``: prefix-cache hit rate under pressure, tiers vs plain LRU.

Workload (deterministic, the same request sequence for both modes): agent sessions that
share a system prompt grow their context call by call (output, then a tool result),
interleaved with one-shot prompts from other traffic that never repeat. The cache holds
the agents' live context but not the one-shot traffic too, so plain LRU lets the floods
evict it, while the tier-aware scheduler evicts the unlabelled one-shots first.

Both modes run on one engine with the tier scheduler: with hints off nothing is labelled
and vLLM's LRU order is kept exactly. The theoretical maximum is each prompt's longest
prefix shared with any earlier sequence (prompt + output), in whole blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass
from typing import Any

from agentrt.cli._engine_options import add_engine_flags, engine_options
from agentrt.engine import CacheHint, GenerateRequest, SamplingOptions, SessionId, Tier, VLLMEngine
from agentrt.replay import theoretical_max_hits

from ._output import bar_chart, markdown_table, out_dir, write_json


@dataclass(frozen=True, slots=True)
class Step:
    """One request of the workload: its prompt, forced output, hints and session."""

    prompt: tuple[int, ...]
    output: tuple[int, ...]
    hints: tuple[CacheHint, ...]
    session: str | None
    agent: bool
    release: str | None = None


def build_workload(args: argparse.Namespace, block: int, eos: int) -> list[Step]:
    """The request sequence: round-robin agent calls, each followed by one-shot floods."""
    rng = random.Random(args.seed)

    def toks(n: int) -> tuple[int, ...]:
        return tuple(rng.randrange(1000, 40000) for _ in range(n))

    system = toks(args.system_blocks * block)
    steps: list[Step] = []
    live: dict[int, list[tuple[tuple[int, ...], Tier]]] = {}
    runs_started = [0] * args.sessions
    for _ in range(args.rounds):
        for s in range(args.sessions):
            if s not in live:  # a new run of this agent: system prompt + a fresh query
                runs_started[s] += 1
                live[s] = [(system, Tier.SYSTEM), (toks(args.query_tokens), Tier.USER_QUERY)]
            segments = live[s]
            prompt = tuple(t for seg, _ in segments for t in seg)
            hints, pos = [], 0
            for seg, tier in segments:
                hints.append(CacheHint(pos, pos + len(seg), tier))
                pos += len(seg)
            out = (*toks(args.output_tokens - 1), eos)
            sid = f"s{s}-r{runs_started[s]}"
            done = len(segments) >= 2 + 2 * args.calls_per_run
            steps.append(Step(prompt, out, tuple(hints), sid, True, release=sid if done else None))
            if done:
                del live[s]
            else:
                segments += [(out, Tier.DEFAULT), (toks(args.tool_tokens), Tier.TOOL_OUTPUT)]
            for _ in range(args.floods):
                steps.append(Step(toks(args.flood_blocks * block + 5), (eos,), (), None, False))
    return steps


async def run_mode(engine: VLLMEngine, steps: list[Step], hinted: bool) -> dict[str, Any]:
    await engine.reset_prefix_cache()
    prompt_tokens = cached = agent_prompt = agent_cached = 0
    for st in steps:
        req = GenerateRequest(
            st.prompt,
            SamplingOptions(max_tokens=len(st.output)),
            hints=st.hints if hinted else (),
            session=SessionId(st.session) if (hinted and st.session) else None,
            forced_output=st.output,
        )
        async for d in engine.generate(req):
            if d.stats is not None:
                prompt_tokens += d.stats.prompt_tokens
                cached += d.stats.cached_tokens
                if st.agent:
                    agent_prompt += d.stats.prompt_tokens
                    agent_cached += d.stats.cached_tokens
        if hinted and st.release:
            await engine.release(SessionId(st.release))
    return {
        "prompt_tokens": prompt_tokens,
        "cached_tokens": cached,
        "recomputed_tokens": prompt_tokens - cached,
        "agent_prompt_tokens": agent_prompt,
        "agent_cached_tokens": agent_cached,
        "hit_rate": cached / prompt_tokens,
    }


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sessions", type=int, default=2, help="agents running at once")
    p.add_argument("--rounds", type=int, default=8, help="agent calls per session")
    p.add_argument("--calls-per-run", type=int, default=3, help="LLM calls before a run ends")
    p.add_argument("--system-blocks", type=int, default=2)
    p.add_argument("--query-tokens", type=int, default=60)
    p.add_argument("--output-tokens", type=int, default=24)
    p.add_argument("--tool-tokens", type=int, default=90)
    p.add_argument("--floods", type=int, default=2, help="one-shot prompts after each agent call")
    p.add_argument("--flood-blocks", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    add_engine_flags(p, kv_cache_mib=96, max_model_len=2048)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    engine = await VLLMEngine.start(engine_options(args))
    try:
        block = engine.info.block_size
        steps = build_workload(args, block, engine.tokenizer.im_end_id)
        max_hits = theoretical_max_hits(
            [s.prompt for s in steps], block, outputs=[s.output for s in steps]
        )
        total = sum(len(s.prompt) for s in steps)
        lru = await run_mode(engine, steps, hinted=False)
        tiers = await run_mode(engine, steps, hinted=True)
        stats = await engine.stats()
    finally:
        await engine.aclose()
    return {
        "lru": lru,
        "tiers": tiers,
        "theoretical_max_hit_rate": max_hits / total,
        "theoretical_max_cached_tokens": max_hits,
        "requests": len(steps),
        "num_blocks": stats.num_blocks,
        "block_size": block,
        "tier_stats": {k: v.to_json() for k, v in stats.tiers.items()},
        "workload": {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "out"},
    }


def main(args: argparse.Namespace) -> int:
    res = asyncio.run(run(args))
    mx = res["theoretical_max_hit_rate"]
    rows = []
    for name in ("lru", "tiers"):
        r = res[name]
        rows.append(
            [
                name,
                f"{r['hit_rate']:.1%}",
                f"{mx:.1%}",
                f"{r['hit_rate'] / mx:.1%}",
                r["recomputed_tokens"],
                r["agent_cached_tokens"],
                r["agent_prompt_tokens"],
            ]
        )
    table = markdown_table(
        [
            "mode",
            "hit rate",
            "theoretical max",
            "share of max",
            "recomputed prompt tokens",
            "agent cached",
            "agent prompt",
        ],
        rows,
    )
    geometry = f"{res['num_blocks']} blocks of {res['block_size']} tokens"
    print(f"{res['requests']} requests, KV cache {geometry}")
    print(table)
    folder = out_dir(args.out, "bench-cache")
    write_json(folder / "cache.json", res)
    (folder / "cache.md").write_text(table + "\n")
    bar_chart(
        folder / "cache_hit_rate.png",
        "Prefix-cache hit rate under pressure",
        ["LRU", "tiers", "max"],
        {"hit rate": [res["lru"]["hit_rate"], res["tiers"]["hit_rate"], mx]},
        "cached / prompt tokens",
    )
    print(f"results in {folder}")
    return 0
