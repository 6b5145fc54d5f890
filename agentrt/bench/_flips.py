"""``agentrt bench flips``: do the switches change what the agent does?

Every question of the example agents (``examples/agents``: units, research, files) runs
once with every switch off (the baseline) and once per compared mode, one run at a time,
greedy, on one embedded engine whose prefix cache is reset before each run. A run
*flips* when its tool calls (names and arguments, per LLM call) or its final answer
differ from the baseline's. The token log changes the prompt the model sees when the
baseline's re-rendered history differs from what the model generated, so each flip says
whether the baseline's prompt diverged (``divergences``) — the known cause — or not (then
only numerics can differ: a cached prefix is computed by other kernels than a fresh one).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from agentrt import Agent, RunResult, Switches
from agentrt.cli._engine_options import add_engine_flags, engine_options
from agentrt.engine import VLLMEngine
from agentrt.replay import mode_switches

from ._output import bar_chart, markdown_table, out_dir, write_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents"

UNITS = [
    "How many miles is 42 km?",
    "What is 12 * 7?",
    "How many kilometres is 26.2 miles?",
    "What is 15% of 240?",
    "How many grams are in 3.5 pounds?",
    "What is 2 to the power of 10?",
    "How many feet is 100 metres?",
    "What is 144 divided by 12?",
    "How many litres is 5 gallons?",
    "What is the square root of 81?",
    "How many seconds are in 3 hours?",
    "What is 17 + 25 * 2?",
]
RESEARCH = [
    "What is the population of Paris?",
    "Compare the populations of Paris and Lyon.",
    "When was Rome founded?",
    "Which country is Tokyo in?",
    "What is the area of Berlin in km2?",
    "Which is larger by area, Madrid or Rome?",
    "How many more people live in Tokyo than in Berlin?",
    "What is the population of Madrid?",
    "When was Lyon founded?",
    "Which country is Berlin in?",
    "Compare the areas of Paris and Tokyo.",
    "What is the combined population of Rome and Madrid?",
]
FILES = [
    "Which files mention eviction?",
    "What does cache.py do?",
    "What is in the notes?",
    "Which file describes the project?",
    "Where is the cache size set?",
    "Which files mention blocks?",
    "What does the README say about tests?",
    "Which files talk about tiers?",
    "Is there a TODO anywhere?",
    "Which functions does cache.py define?",
]


def _load_example(name: str, folder: Path) -> ModuleType:
    path = folder / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"example agent {path} not found (--examples names the folder)")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # the examples import their _common helper
    spec = importlib.util.spec_from_file_location(f"agentrt_example_{name}", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_agents(folder: Path = EXAMPLES) -> list[tuple[Agent, list[str]]]:
    """The example agents, each with its questions (42 in all)."""
    units = _load_example("units_agent", folder).agent
    research = _load_example("research_assistant", folder).agent
    files_mod = _load_example("file_analyst", folder)
    files = files_mod.make_agent(files_mod.DEFAULT_FOLDER)
    return [(units, UNITS), (research, RESEARCH), (files, FILES)]


def behaviour(result: RunResult) -> dict[str, Any]:
    """What the agent did: per LLM call its tool calls (name, arguments as parsed JSON),
    and the final answer."""
    calls = [
        [(c.name, json.loads(c.arguments)) for c in m.tool_calls]
        for m in result.messages
        if m.role == "assistant"
    ]
    return {"calls": calls, "final": result.final_text.strip(), "status": result.status}


def compare(base: RunResult, other: RunResult) -> dict[str, Any]:
    """One question's comparison: whether it flipped, what differed, and whether the
    baseline's re-rendered prompt had diverged from the generated tokens."""
    a, b = behaviour(base), behaviour(other)
    calls_differ = a["calls"] != b["calls"]
    final_differs = a["final"] != b["final"]
    return {
        "flipped": calls_differ or final_differs,
        "calls_differ": calls_differ,
        "final_differs": final_differs,
        "baseline_diverged": bool(base.divergences),
        "baseline": a,
        "switched": b,
    }


async def run(args: argparse.Namespace, modes: list[tuple[str, Switches]]) -> dict[str, Any]:
    agents = example_agents(Path(args.examples))
    engine = await VLLMEngine.start(engine_options(args))
    rows: list[dict[str, Any]] = []
    try:
        for agent, questions in agents:
            for q in questions[: args.questions]:
                await engine.reset_prefix_cache()
                base = await dataclasses.replace(
                    agent, engine=engine, switches=Switches.baseline()
                ).run(q)
                for name, sw in modes:
                    await engine.reset_prefix_cache()
                    other = await dataclasses.replace(agent, engine=engine, switches=sw).run(q)
                    row = {"agent": agent.name, "question": q, "mode": name}
                    rows.append(row | compare(base, other))
                    print(
                        f"  {agent.name} [{name}] {q!r}: flipped={rows[-1]['flipped']}", flush=True
                    )
    finally:
        await engine.aclose()
    return {"rows": rows, "options": {k: v for k, v in vars(args).items() if k[0] != "_"}}


def shares(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mode: questions, flips, their share, and how many flips had a diverged baseline."""
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        sel = [r for r in rows if r["mode"] == mode]
        flips = [r for r in sel if r["flipped"]]
        out.append(
            {
                "mode": mode,
                "questions": len(sel),
                "flips": len(flips),
                "share": len(flips) / len(sel) if sel else 0.0,
                "calls_differ": sum(r["calls_differ"] for r in flips),
                "final_differs": sum(r["final_differs"] for r in flips),
                "flips_with_diverged_baseline": sum(r["baseline_diverged"] for r in flips),
            }
        )
    return out


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--questions", type=int, default=None, help="first N questions per agent (default all)"
    )
    p.add_argument("--modes", default="all", help="compared with the baseline (comma-separated)")
    p.add_argument("--examples", default=str(EXAMPLES), help="folder of the example agents")
    p.add_argument("--out", default=None)
    add_engine_flags(p, kv_cache_mib=256, max_model_len=4096)


def main(args: argparse.Namespace) -> int:
    try:
        modes = [(n, mode_switches(n)) for n in args.modes.split(",")]
    except ValueError as exc:
        print(f"agentrt bench flips: {exc}", file=sys.stderr)
        return 2
    res = asyncio.run(run(args, modes))
    summary = shares(res["rows"])
    res["summary"] = summary
    table = markdown_table(
        [
            "mode",
            "questions",
            "flips",
            "share",
            "tool calls differ",
            "answer differs",
            "flips with diverged baseline",
        ],
        [
            [
                s["mode"],
                s["questions"],
                s["flips"],
                f"{s['share']:.0%}",
                s["calls_differ"],
                s["final_differs"],
                s["flips_with_diverged_baseline"],
            ]
            for s in summary
        ],
    )
    print(table)
    folder = out_dir(args.out, "bench-flips")
    write_json(folder / "flips.json", res)
    (folder / "flips.md").write_text(table + "\n")
    bar_chart(
        folder / "flips.png",
        "runs whose tool calls or answer differ from the baseline (greedy)",
        [s["mode"] for s in summary],
        {"flip share (%)": [100 * s["share"] for s in summary]},
        "% of questions",
    )
    print(f"results: {folder}", file=sys.stderr)
    return 0
