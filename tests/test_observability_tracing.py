"""OpenTelemetry traces of agent runs: the span tree of a scripted run (SDK in-memory
exporter), REST requests continuing an incoming ``traceparent``, and nothing at all when
no provider is set or the SDK is missing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from test_orchestrator_scripted import TOOL_S, search  # the same half-second search tool

from agentrt import Agent, RunResult, Switches
from agentrt._tracing import use_tracer_provider
from agentrt.engine import ScriptContext, ScriptedEngine, TimingModel
from agentrt.server import calculator_agent, create_app, running_server
from agentrt.testing import run_virtual

P, D = 0.001, 0.01
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def call(name: str, args: dict[str, object]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


TWO_CALLS = [call("search", {"q": "a"}) + "\n" + call("search", {"q": "b"}), "Both found."]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with use_tracer_provider(provider):
        yield exporter


def scripted_run(replies: list[str], switches: Switches | None = None) -> RunResult:
    async def main() -> RunResult:
        engine = ScriptedEngine(
            replies, timing=TimingModel(prefill_s_per_token=P, decode_step_s=D), block_size=16
        )
        agent = Agent(
            name="searcher",
            tools=[search],
            engine=engine,
            switches=switches or Switches(),
            constrain_calls=False,
        )
        try:
            return await agent.run("Find a and b.")
        finally:
            await engine.aclose()

    return run_virtual(main)


def by_start(found: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return sorted(found, key=lambda s: (s.start_time or 0, s.name != "invoke_agent searcher"))


def seconds(span: ReadableSpan) -> float:
    assert span.start_time is not None and span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


def test_a_run_with_two_tool_calls_yields_the_genai_span_tree(
    spans: InMemorySpanExporter,
) -> None:
    result = scripted_run(TWO_CALLS)
    root, *children = by_start(spans.get_finished_spans())
    assert [s.name for s in children] == [
        "chat scripted",
        "execute_tool search",
        "execute_tool search",
        "split_prefill scripted",
        "chat scripted",
    ]
    # One trace, one root, every other span its child.
    assert root.name == "invoke_agent searcher" and root.parent is None
    assert root.kind == SpanKind.INTERNAL
    assert format_trace_id(root.context.trace_id) == result.trace_id
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in children)
    assert {s.context.trace_id for s in children} == {root.context.trace_id}
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "searcher"
    assert root.attributes["agentrt.run.id"] == result.run_id
    assert root.attributes["agentrt.run.status"] == "completed"
    assert root.attributes["agentrt.run.ftr_s"] == pytest.approx(result.ftr_s)
    assert seconds(root) == pytest.approx(result.e2e_s)

    chat0, tool_a, tool_b, prefill, chat1 = children
    for span, it in ((chat0, result.iterations[0]), (chat1, result.iterations[1])):
        a = span.attributes
        assert a is not None and span.kind == SpanKind.CLIENT
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == "scripted"
        assert a["gen_ai.usage.input_tokens"] == it.prompt_tokens
        assert a["gen_ai.usage.cache_read.input_tokens"] == it.cached_tokens
        assert a["gen_ai.usage.output_tokens"] == it.output_tokens
        assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(it.ttft_s)
        assert a["gen_ai.response.finish_reasons"] == ("stop",)
        assert seconds(span) == pytest.approx(it.end_t - it.sent_t)
        assert [e.name for e in span.events] == ["first_token"]
    assert chat0.attributes is not None and chat0.attributes["agentrt.tool_calls"] == 2

    records = result.iterations[0].tools
    for span, record in zip((tool_a, tool_b), records, strict=True):
        a = span.attributes
        assert a is not None and span.kind == SpanKind.INTERNAL
        assert a["gen_ai.operation.name"] == "execute_tool"
        assert a["gen_ai.tool.name"] == "search"
        assert a["gen_ai.tool.call.id"] == record.call_id
        assert seconds(span) == pytest.approx(TOOL_S)
        assert span.status.status_code == StatusCode.UNSET
    # The first call closes early and runs wholly under the decode; the overlap the
    # spans report adds up to the run's.
    assert tool_a.attributes is not None and tool_b.attributes is not None
    assert tool_a.attributes["agentrt.tool.overlap.decode_s"] == pytest.approx(TOOL_S)
    hidden = sum(
        float(s.attributes["agentrt.tool.overlap.decode_s"])
        + float(s.attributes["agentrt.tool.overlap.split_prefill_s"])
        for s in (tool_a, tool_b)
        if s.attributes is not None
    )
    assert hidden == pytest.approx(result.tool_overlap_s)

    split = result.iterations[0].split_prefill
    assert split is not None and prefill.attributes is not None
    assert prefill.attributes["gen_ai.usage.input_tokens"] == split.prompt_tokens
    assert prefill.attributes["agentrt.split_prefill.outcome"] == "done"


def test_a_failing_tool_marks_its_span_with_the_error_reason(spans: InMemorySpanExporter) -> None:
    scripted_run([call("nope", {}), "Sorry."])
    (tool_span,) = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")]
    assert tool_span.attributes is not None
    assert tool_span.attributes["error.type"] == "unknown_tool"
    assert tool_span.status.status_code == StatusCode.ERROR


def test_spans_follow_the_switches(spans: InMemorySpanExporter) -> None:
    scripted_run(TWO_CALLS, Switches.baseline())
    names = [s.name for s in by_start(spans.get_finished_spans())]
    assert "split_prefill scripted" not in names
    tools = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")]
    # Without streamed dispatch the tools start after the decode: nothing hidden under it.
    assert [s.attributes and s.attributes["agentrt.tool.overlap.decode_s"] for s in tools] == [
        0.0,
        0.0,
    ]


def calculator_script(ctx: ScriptContext) -> str:
    last = ctx.prompt_text.rsplit("<|im_start|>user\n", 1)[-1]
    if last.startswith("<tool_response>"):
        return f"The result is {last.split(chr(10))[1]}."
    return call("calculator", {"expression": "6*7"})


@asynccontextmanager
async def served(engine: ScriptedEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, agents=[calculator_agent()])
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_a_chat_completion_continues_the_incoming_traceparent(
    spans: InMemorySpanExporter, stream: bool
) -> None:
    engine = ScriptedEngine(["Hello there."], timing=TimingModel(decode_step_s=0.0005))
    body = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    async with served(engine) as client:
        headers = {"traceparent": TRACEPARENT}
        r = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 200
    await engine.aclose()
    (span,) = spans.get_finished_spans()
    assert span.name == "chat scripted" and span.kind == SpanKind.SERVER
    assert format_trace_id(span.context.trace_id) == TRACE_ID
    assert span.parent is not None and format_span_id(span.parent.span_id) == PARENT_ID
    assert span.attributes is not None
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)


@pytest.mark.anyio
async def test_an_agent_run_continues_the_incoming_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    engine = ScriptedEngine(calculator_script, timing=TimingModel(decode_step_s=0.0005))
    async with served(engine) as client:
        r = await client.post(
            "/v1/agents/calculator/runs",
            json={"input": "6*7?", "stream": True},
            headers={"traceparent": TRACEPARENT},
        )
        run_id = r.headers["x-agentrt-run-id"]
        run: dict[str, Any] = (await client.get(f"/v1/runs/{run_id}")).json()
    await engine.aclose()
    assert run["status"] == "completed"
    assert run["result"]["trace_id"] == TRACE_ID
    found = spans.get_finished_spans()
    (root,) = [s for s in found if s.name == "invoke_agent calculator"]
    assert root.parent is not None and format_span_id(root.parent.span_id) == PARENT_ID
    assert {format_trace_id(s.context.trace_id) for s in found} == {TRACE_ID}
    children = [s for s in found if s is not root]
    assert sorted(s.name for s in children) == [
        "chat scripted",
        "chat scripted",
        "execute_tool calculator",
        "split_prefill scripted",
    ]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in children)


@pytest.mark.parametrize(
    ("model", "name"),
    [("/root/.cache/models/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct"), ("gpt-x", "gpt-x")],
)
def test_spans_name_a_local_model_by_its_folder_as_the_server_does(model: str, name: str) -> None:
    from agentrt._otel import model_name
    from agentrt.engine import EngineInfo

    assert model_name(EngineInfo(model, 2048, 16, True, "vllm")) == name


def test_replay_records_name_the_run_and_traces_of_each_request(
    spans: InMemorySpanExporter,
) -> None:
    from agentrt.engine import ByteCodec, ChatTokenizer
    from agentrt.replay import SyntheticConfig, generate_synthetic
    from agentrt.replay.report._report import _jsonable
    from agentrt.replay.run._driver import replay_run
    from agentrt.replay.run._plan import build_plan
    from agentrt.replay.run._sources import PoissonLoad, ScriptedSource, mode_switches

    trace = generate_synthetic(SyntheticConfig(n_requests=3, token_scale=0.2))
    plan = build_plan(trace, ChatTokenizer(ByteCodec()))
    source = ScriptedSource(TimingModel(prefill_s_per_token=P, decode_step_s=D))

    async def go() -> list[Any]:
        async with source.run_engine() as engine:
            run = await replay_run(plan, mode_switches("all"), PoissonLoad(2.0, 0), engine)
            return list(run.records)

    records = run_virtual(go)
    traces_of: dict[str, set[str]] = {}
    for s in spans.get_finished_spans():
        if s.name == "invoke_agent replay" and s.attributes is not None:
            run_id = str(s.attributes["agentrt.run.id"])
            traces_of.setdefault(run_id, set()).add(format_trace_id(s.context.trace_id))
    assert len(records) == 3 and all(r.error is None for r in records)
    for rec in records:
        turns = len(next(q for q in plan.requests if q.request_id == rec.request_id).turns)
        assert rec.run_id is not None and len(rec.trace_ids) == turns
        assert set(rec.trace_ids) == traces_of[rec.run_id]
        row = _jsonable(rec)
        assert (row["run_id"], row["trace_ids"]) == (rec.run_id, list(rec.trace_ids))
