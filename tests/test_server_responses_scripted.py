"""``/v1/responses`` on ScriptedEngine through the official ``openai`` client: events, items,
function tools with and without ``previous_response_id``, server-side tools (built-in and
MCP) dispatched during decode, GET/DELETE, per-key isolation, 400s naming the field, and
a disconnect cancelling a running server-side tool."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import JsonSchemaConstraint, ScriptContext, ScriptedEngine, Tier, TimingModel
from agentrt.server import ServerConfig, create_app, running_server
from agentrt.server._auth import KeyRing, make_key
from agentrt.server._errors import APIError
from agentrt.server._limits import SchemaBudget
from agentrt.server._responses_models import ResponsesRequest
from agentrt.server._responses_plan import plan_responses
from agentrt.server._responses_tools import HostedTools, McpServerSpec
from agentrt.tools import tool

pytestmark = pytest.mark.anyio

FIXTURE = str(Path(__file__).with_name("mcp_server_fixture.py"))
ADD = {
    "type": "function",
    "name": "add",
    "description": "Add two integers.",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}
MCP = {"type": "mcp", "server_label": "fixture", "require_approval": "never"}


def call(name: str, args: dict[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def reply(ctx: ScriptContext) -> str:
    """Scenario by keyword of the last user turn; after tool results, echo them."""
    last = ctx.prompt_text.rsplit("<|im_start|>user\n", 1)[-1]
    if last.startswith("<tool_response>"):
        results = [
            p.split("</tool_response>")[0].strip()
            for p in ctx.prompt_text.rsplit("</tool_call>", 1)[-1].split("<tool_response>")[1:]
        ]
        return "Result: " + " | ".join(results)
    if "json" in last:
        return '{"answer": 42}'
    if "mcp" in last:
        # A fast call, then a long one (the first runs while the second decodes), then a
        # slow tool, never measured: split A is worth prefilling while it runs.
        return (
            call("add", {"a": 2, "b": 3})
            + "\n"
            + call("echo", {"text": "z" * 300})
            + "\n"
            + call("slow", {"seconds": 0.5})
        )
    if "calc" in last:
        return call("calculator", {"expression": "6*7"})
    if "wait" in last:
        return call("wait", {})
    if "add" in last:
        return call("add", {"a": 1, "b": 2})
    return "Hello there."


@asynccontextmanager
async def served(
    engine: ScriptedEngine | None = None, **kw: Any
) -> AsyncIterator[tuple[str, ScriptedEngine]]:
    eng = engine or ScriptedEngine(reply, timing=TimingModel(0.0, 0.0005))
    async with running_server(create_app(eng, agents=[], **kw)) as url:
        yield url, eng


def client(url: str, key: str = "none") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def test_text_response_and_its_usage() -> None:
    async with served() as (url, _), client(url) as c:
        r = await c.responses.create(model="scripted", input="hi", instructions="Be brief.")
    assert r.status == "completed"
    assert r.output_text == "Hello there."
    assert r.output[0].type == "message"
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.instructions == "Be brief."


async def test_stream_follows_the_documented_event_sequence() -> None:
    async with served() as (url, _), client(url) as c:
        stream = await c.responses.create(model="scripted", input="hi", stream=True)
        events = [ev async for ev in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello there." == events[-1].response.output_text
    seqs = [e.sequence_number for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_function_tool_round_trip_with_previous_response_id() -> None:
    async with served() as (url, engine), client(url) as c:
        r1 = await c.responses.create(model="scripted", input="add them", tools=[ADD])
        fc = r1.output[0]
        assert fc.type == "function_call" and fc.name == "add"
        assert json.loads(fc.arguments) == {"a": 1, "b": 2}
        r2 = await c.responses.create(
            model="scripted",
            previous_response_id=r1.id,
            tools=[ADD],
            input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "3"}],
        )
        got = await c.responses.retrieve(r2.id)
    assert r2.output_text == "Result: 3"
    assert got.output_text == "Result: 3" and got.previous_response_id == r1.id
    first, second = engine.requests[0].prompt, engine.requests[-1].prompt
    # The token log: the continuation's prompt extends the first one token for token.
    assert second[: len(first)] == first and len(second) > len(first)
    assert r2.usage is not None and r2.usage.input_tokens_details.cached_tokens > 0


async def test_function_tool_round_trip_with_full_history() -> None:
    async with served() as (url, _), client(url) as c:
        r1 = await c.responses.create(model="scripted", input="add them", tools=[ADD], store=False)
        fc = r1.output[0]
        history = [
            {"role": "user", "content": "add them"},
            fc.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": fc.call_id, "output": "3"},
        ]
        r2 = await c.responses.create(model="scripted", input=history, tools=[ADD])
        with pytest.raises(openai.NotFoundError):
            await c.responses.retrieve(r1.id)  # store=False keeps nothing
    assert r2.output_text == "Result: 3"


async def test_builtin_tool_runs_in_the_server() -> None:
    async with served() as (url, _), client(url) as c:
        r = await c.responses.create(model="scripted", input="calc", tools=[{"type": "calculator"}])
        async with httpx.AsyncClient(base_url=url) as http:
            metrics = (await http.get("/metrics")).text
    call_item, answer = r.output
    assert call_item.type == "mcp_call" and call_item.server_label == "calculator"
    assert answer.type == "message"
    assert call_item.output == "42"
    assert r.output_text == "Result: 42"
    assert 'agentrt_agent_runs_total{agent="responses",status="completed"} 1.0' in metrics


async def test_mcp_tool_starts_while_the_response_decodes_and_split_a_is_prefilled() -> None:
    cfg = ServerConfig(mcp_servers=(McpServerSpec("fixture", sys.executable, (FIXTURE,)),))
    engine = ScriptedEngine(reply, timing=TimingModel(0.0, 0.003))
    async with served(engine, config=cfg) as (url, _), client(url) as c:
        stream = await c.responses.create(
            model="scripted", input="mcp please", tools=[MCP], stream=True
        )
        events = [ev async for ev in stream]
    kinds = [(e.type, getattr(e, "output_index", None)) for e in events]
    # The first call's result came back before the second call had even closed.
    assert kinds.index(("response.mcp_call.completed", 0)) < kinds.index(
        ("response.output_item.added", 1)
    )
    final = events[-1].response
    assert [o.type for o in final.output] == ["mcp_call", "mcp_call", "mcp_call", "message"]
    assert final.output[0].output == "5" and final.output[0].server_label == "fixture"
    assert final.output_text == "Result: 5 | " + "z" * 300 + " | done"
    split = [r for r in engine.requests if any(h.tier == Tier.SPLIT_PENDING for h in r.hints)]
    assert len(split) == 1
    after = engine.requests[-1].prompt
    assert after[: len(split[0].prompt)] == split[0].prompt


async def test_json_schema_format_constrains_the_answer() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    async with served() as (url, engine), client(url) as c:
        r = await c.responses.create(
            model="scripted",
            input="json please",
            text={"format": {"type": "json_schema", "name": "a", "schema": schema}},
            max_output_tokens=50,
            temperature=0.0,
        )
    assert json.loads(r.output_text) == {"answer": 42}
    req = engine.requests[-1]
    assert req.constraint == JsonSchemaConstraint(schema)
    assert req.sampling.max_tokens == 50 and req.sampling.temperature == 0.0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"input": "hi", "tools": [{**MCP, "server_label": "nope"}]}, "tools[0].server_label"),
        ({"input": "hi", "tools": [{**MCP, "server_url": "http://x"}]}, "tools[0].server_url"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c9", "output": "1"}]},
            "input[0].call_id",
        ),
        (
            {"input": "hi", "tools": [ADD], "tool_choice": {"type": "function", "name": "x"}},
            "tool_choice",
        ),
        ({"input": "hi", "previous_response_id": "resp_nope"}, "previous_response_id"),
    ],
)
async def test_bad_input_names_the_field(body: dict[str, Any], param: str) -> None:
    async with served() as (url, _), httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/v1/responses", json={"model": "scripted", **body})
    assert r.status_code in (400, 404), r.text
    assert r.json()["error"]["param"] == param, r.text
    assert (r.status_code == 404) == (param == "previous_response_id")


async def test_missing_output_of_a_waiting_call_is_a_400() -> None:
    async with served() as (url, _), client(url) as c:
        r1 = await c.responses.create(model="scripted", input="add", tools=[ADD])
        with pytest.raises(openai.BadRequestError, match="waiting for function_call_output"):
            await c.responses.create(
                model="scripted", previous_response_id=r1.id, tools=[ADD], input="go on"
            )


async def test_stored_responses_belong_to_their_key() -> None:
    cfg = ServerConfig(keys=KeyRing([make_key("sk-a", "a"), make_key("sk-b", "b")]))
    async with (
        served(config=cfg) as (url, engine),
        client(url, "sk-a") as a,
        client(url, "sk-b") as b,
    ):
        r = await a.responses.create(model="scripted", input="hi")
        with pytest.raises(openai.NotFoundError):
            await b.responses.retrieve(r.id)
        with pytest.raises(openai.NotFoundError):
            await b.responses.create(model="scripted", input="hi", previous_response_id=r.id)
        with pytest.raises(openai.NotFoundError):
            await b.responses.delete(r.id)
        assert (await a.responses.retrieve(r.id)).output_text == "Hello there."
        await a.responses.delete(r.id)
        with pytest.raises(openai.NotFoundError):
            await a.responses.retrieve(r.id)
    salts = {req.cache_salt for req in engine.requests}
    assert len(salts) == 1 and None not in salts  # key a's salt, never none


async def test_disconnect_cancels_a_running_server_side_tool() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    @tool
    async def wait() -> str:
        """Wait for ever."""
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return ""

    body = {
        "model": "scripted",
        "input": "wait",
        "stream": True,
        "tools": [{**MCP, "server_label": "slow"}],
    }
    async with (
        served(hosted_tools={"slow": [wait]}) as (url, _),
        httpx.AsyncClient(base_url=url) as http,
    ):
        async with http.stream("POST", "/v1/responses", json=body) as r:
            async for line in r.aiter_lines():
                if "response.mcp_call.in_progress" in line:
                    break
        with anyio.fail_after(10):
            await started.wait()
            await cancelled.wait()


def test_cli_reads_server_side_tools() -> None:
    import argparse

    from agentrt.server._cli import add_arguments, build

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(
        ["--hosted-tools", "calculator,python", "--mcp", "fs=python -m srv --x 'a b'"]
    )
    _, cfg = build(args)
    assert cfg.hosted_tools == ("calculator", "python")
    assert cfg.mcp_servers == (McpServerSpec("fs", "python", ("-m", "srv", "--x", "a b")),)
    with pytest.raises(ValueError, match="--hosted-tools"):
        build(p.parse_args(["--hosted-tools", "shell"]))
    with pytest.raises(ValueError, match="--mcp"):
        build(p.parse_args(["--mcp", "nocommand"]))


async def test_streamed_function_call_events() -> None:
    async with served() as (url, _), client(url) as c:
        stream = await c.responses.create(model="scripted", input="add", tools=[ADD], stream=True)
        events = [ev async for ev in stream]
    kinds = [e.type for e in events]
    assert kinds[2:6] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    done = events[5].item
    assert done.type == "function_call" and json.loads(done.arguments) == {"a": 1, "b": 2}
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].call_id == done.call_id


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["message", "function_call", "function_call_output", "mcp_call", "reasoning", "x"]
        ),
        "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
        "content": st.text(max_size=8)
        | st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["input_text", "input_image"]),
                    "text": st.text(max_size=4),
                }
            ),
            max_size=2,
        ),
        "call_id": st.sampled_from(["c1", "c2"]),
        "id": st.sampled_from(["c1", "m1"]),
        "name": st.sampled_from(["add", "bad name", ""]),
        "arguments": st.sampled_from(["{}", '{"a": 1}', "[1]", "nope", ""]),
        "output": st.text(max_size=8) | _JSON,
    },
)


@given(items=st.lists(_ITEM | _JSON, max_size=5))
@settings(max_examples=300, deadline=None)
def test_any_input_items_are_read_or_refused_naming_a_field(items: list[Any]) -> None:
    """The input reader never fails otherwise: a plan, or a 400 whose param is a field."""
    body = ResponsesRequest.model_validate(
        {"model": "m", "input": [i for i in items if isinstance(i, dict)]}
    )
    try:
        plan = plan_responses(
            body,
            HostedTools({}),
            budget=SchemaBudget(32, 10_000),
            default_temperature=1.0,
            parallel_unset="allow",
        )
    except APIError as exc:
        assert exc.status == 400 and exc.param and exc.param.startswith("input[")
        return
    for m in plan.input:
        assert m.message.role in ("user", "assistant", "tool", "system")


async def test_a_running_response_holds_a_concurrency_slot() -> None:
    release = anyio.Event()

    @tool
    async def wait() -> str:
        """Wait until released."""
        await release.wait()
        return "ok"

    body = {
        "model": "scripted",
        "input": "wait",
        "stream": True,
        "tools": [{**MCP, "server_label": "slow"}],
    }
    cfg = ServerConfig(max_concurrency=1)
    async with (
        served(config=cfg, hosted_tools={"slow": [wait]}) as (url, _),
        httpx.AsyncClient(base_url=url) as http,
        http.stream("POST", "/v1/responses", json=body) as r,
    ):
        lines = r.aiter_lines()  # one iterator: read up to the tool, then the rest
        async for line in lines:
            if "response.mcp_call.in_progress" in line:
                break
        second = await http.post("/v1/responses", json={"model": "scripted", "input": "hi"})
        assert second.status_code == 429, second.text
        release.set()
        rest = [line async for line in lines]
    assert any("response.completed" in line for line in rest)
    # The conversation continued after the tool: its result reached the model.
    assert any("Result: ok" in line for line in rest)
