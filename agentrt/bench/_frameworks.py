"""``agentrt bench frameworks``: one OpenAI Agents SDK agent against vLLM's server and agentrt's.

The agent (``OpenAIChatCompletionsModel``, a calculator tool that takes 0.5 s,
``tool_choice="required"`` for the first response, ``parallel_tool_calls`` left unset,
temperature 0) answers the same questions through vLLM's own OpenAI server and through
``agentrt serve`` on the same model and engine settings, at each concurrency. Per server:
median and p90 FTR and E2E, and per response output tokens, calls and repeated calls
(responses that call tools apart from final answers), prompt and cached tokens per run.

The ``agentrt-responses`` row (``_frameworks_responses``) runs the same agent on the SDK's
default Responses model with the calculator as a server-side tool of ``agentrt serve``;
there one response carries the whole tool loop, so its "tool response" is the only one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agentrt.tools import ToolFailure
from agentrt.tools._calculator import evaluate, format_number

from ._calc_mcp import TOOL_S
from ._frameworks_report import RunSample, add_ratios, plot, summarize, table
from ._frameworks_responses import (
    RESPONSES_SERVER,
    is_tool_done,
    responses_agent,
    responses_serve_flags,
)
from ._output import out_dir, write_json
from ._servers import (
    SERVED_NAME,
    ServerSettings,
    agentrt_argv,
    free_port,
    launched,
    vllm_argv,
)

QUESTIONS = (
    "What is 12 * 7?",
    "What is 345 + 678?",
    "How much is 2 to the power of 10?",
    "What is 1000 / 8?",
    "Compute 17 * 23 - 5.",
    "What is (4 + 6) * 3?",
    "What is 99 - 42?",
    "What is 3.5 * 4?",
)
INSTRUCTIONS = "Use the calculator tool for arithmetic, then answer in one sentence."
SERVERS = ("vllm", "agentrt", RESPONSES_SERVER)


async def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression.

    Args:
        expression: the expression, e.g. "2 * (3 + 4)".
    """
    await asyncio.sleep(TOOL_S)
    try:
        return format_number(evaluate(expression))
    except (ToolFailure, ValueError) as exc:
        return f"error: {exc}"


def _calculator() -> Any:
    from agents import function_tool

    return function_tool(calculate, name_override="calculator")


def _client(base_url: str) -> Any:
    """The agents' ``AsyncOpenAI`` client; its owner closes it on the loop that used it."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0)


def _agent(client: Any, server: str) -> Any:
    if server == RESPONSES_SERVER:
        return responses_agent(client, INSTRUCTIONS)
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, set_tracing_disabled

    set_tracing_disabled(True)  # the SDK would export traces to OpenAI's servers
    model = OpenAIChatCompletionsModel(model=SERVED_NAME, openai_client=client)
    return Agent(
        name="calculator",
        instructions=INSTRUCTIONS,
        tools=[_calculator()],
        model=model,
        model_settings=ModelSettings(
            temperature=0, tool_choice="required", include_usage=True, max_tokens=256
        ),
    )


async def _one_run(agent: Any, question: str) -> RunSample:
    from agents import Runner
    from openai.types.responses import ResponseFunctionToolCall
    from openai.types.responses.response_output_item import McpCall

    t0 = time.perf_counter()
    result = Runner.run_streamed(agent, question, max_turns=6)
    text_t: list[float] = []
    tool_t = t0
    hosted_t: float | None = None
    async for ev in result.stream_events():
        now = time.perf_counter()
        if ev.type == "raw_response_event" and getattr(ev.data, "type", "") == (
            "response.output_text.delta"
        ):
            text_t.append(now)
        elif ev.type == "raw_response_event" and is_tool_done(ev.data):
            hosted_t = now  # a server-side call finished inside the response
        elif ev.type == "run_item_stream_event" and ev.name in ("tool_called", "tool_output"):
            tool_t = now
    e2e = time.perf_counter() - t0
    if hosted_t is not None:
        # The SDK reports hosted calls as run items only after the response is complete;
        # the raw event is when the server finished the call.
        tool_t = hosted_t
    after_tools = [t for t in text_t if t >= tool_t]
    ftr = (after_tools[0] - t0) if after_tools else None
    call_out: list[int] = []
    final_out: list[int] = []
    per_resp: list[int] = []
    repeats = prompt = cached = 0
    for resp in result.raw_responses:
        calls = [o for o in resp.output if isinstance(o, ResponseFunctionToolCall | McpCall)]
        keys = [(c.name, _canonical(c.arguments)) for c in calls]
        repeats += len(keys) - len(set(keys))
        (call_out if calls else final_out).append(resp.usage.output_tokens)
        if calls:
            per_resp.append(len(calls))
        prompt += resp.usage.input_tokens
        cached += resp.usage.input_tokens_details.cached_tokens or 0
    return RunSample(
        ftr, e2e, prompt, cached, tuple(call_out), tuple(final_out), tuple(per_resp), repeats
    )


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except json.JSONDecodeError:
        return arguments


async def _phase(agent: Any, concurrency: int, runs: int) -> list[RunSample]:
    await _one_run(agent, QUESTIONS[0])  # warm-up: first compile, prefix cache of the header
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> RunSample:
        async with gate:
            return await _one_run(agent, QUESTIONS[i % len(QUESTIONS)])

    return list(await asyncio.gather(*(one(i) for i in range(runs))))


async def _repeats(
    base_url: str, server: str, concurrency: int, runs: int, repeats: int
) -> list[list[RunSample]]:
    """``repeats`` phases of ``runs`` runs, one client for all (closed on this loop)."""
    out: list[list[RunSample]] = []
    async with _client(base_url) as client:
        agent = _agent(client, server)
        for r in range(repeats):
            out.append(await _phase(agent, concurrency, runs))
            ftr = summarize(out[-1])["ftr_median_s"]
            print(f"{server}@{concurrency} repeat {r + 1}/{repeats}: FTR p50 {ftr}", flush=True)
    return out


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runs", type=int, default=8, help="agent runs per server, concurrency and repeat"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="phases of --runs runs per server and concurrency (3 or more for headlines)",
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    p.add_argument(
        "--servers",
        nargs="+",
        default=list(SERVERS),
        choices=SERVERS,
        help=f"{RESPONSES_SERVER}: the SDK's default Responses model, server-side calculator",
    )
    p.add_argument("--model", default=None, help="model folder (default: the default model)")
    p.add_argument("--kv-cache-mib", type=int, default=512)
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--dtype", default="auto")
    p.add_argument(
        "--agentrt-args", default="", help='more agentrt serve flags, e.g. "--parallel-unset one"'
    )
    p.add_argument("--out", default=None, help="results folder (default: runs/frameworks-<time>)")


def main(args: argparse.Namespace) -> int:
    settings = ServerSettings(args.model, args.kv_cache_mib, args.max_model_len, args.dtype)
    folder = out_dir(args.out, "frameworks")
    results: dict[str, dict[str, Any]] = {}
    extra = shlex.split(args.agentrt_args)
    for server in args.servers:
        port = free_port()
        if server == "vllm":
            argv, env = vllm_argv(settings, port)
        elif server == RESPONSES_SERVER:
            argv, env = agentrt_argv(settings, port, [*extra, *responses_serve_flags()])
        else:
            argv, env = agentrt_argv(settings, port, extra)
        with launched(argv, env, port, log=folder / f"{server}.log") as url:
            for c in args.concurrency:
                reps = asyncio.run(_repeats(url, server, c, args.runs, args.repeats))
                pooled = [s for rep in reps for s in rep]
                results[f"{server}@{c}"] = summarize(pooled, reps)
    add_ratios(results)
    print(table(results))
    plot(Path(folder) / "frameworks.png", results)
    payload = {
        "settings": asdict(settings),
        "runs": args.runs,
        "repeats": args.repeats,
        "agentrt_args": extra,
        "results": results,
    }
    write_json(Path(folder) / "frameworks.json", payload)
    print(f"results: {folder}/frameworks.json, frameworks.png", flush=True)
    return 0
