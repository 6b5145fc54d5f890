"""``/v1/chat/completions`` on ScriptedEngine: shapes, tool calls, constraints, errors, aborts."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import openai
import pytest

from agentrt.engine import (
    EngineError,
    EngineProxy,
    GenerateRequest,
    JsonSchemaConstraint,
    ScriptedEngine,
    TimingModel,
    TokenDelta,
    ToolCallConstraint,
)
from agentrt.server import create_app, running_server

pytestmark = pytest.mark.anyio

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
MUL = {
    "type": "function",
    "function": {
        "name": "mul",
        "parameters": {"type": "object", "properties": {"x": {"type": "number"}}},
    },
}
USER = [{"role": "user", "content": "What is 1 + 2?"}]
FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)


def call(name: str, args: dict[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


@asynccontextmanager
async def served(engine: Any, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_server(create_app(engine, agents=[], **kw)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


async def post(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v1/chat/completions", json={"model": "scripted", **body})


async def sse(client: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    """The data events of a streamed completion ([DONE] excluded)."""
    out = []
    async with client.stream(
        "POST", "/v1/chat/completions", json={"model": "scripted", "stream": True, **body}
    ) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


class OneChunk(EngineProxy):
    """Test seam: a scripted engine whose whole reply arrives as a single delta."""

    def __init__(self, inner: ScriptedEngine) -> None:
        super().__init__(inner, owns_inner=True)
        self.inner: ScriptedEngine = inner

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        deltas = [d async for d in self.inner.generate(request)]
        ids = tuple(t for d in deltas for t in d.token_ids)
        yield TokenDelta(ids, "".join(d.text for d in deltas), deltas[-1].t, deltas[-1].stats)


class FailsAt(OneChunk):
    """Test seam: raises ``EngineError`` before the first delta, or after ``after`` deltas."""

    def __init__(self, inner: ScriptedEngine, after: int | None) -> None:
        super().__init__(inner)
        self.after = after

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        if self.after is None:
            raise EngineError("engine core died")
        n = 0
        async for d in self.inner.generate(request):
            if n == self.after:
                raise EngineError("engine core died")
            n += 1
            yield d


async def test_plain_completion_reports_text_finish_and_usage() -> None:
    engine = ScriptedEngine(["Three."], timing=FAST)
    async with served(engine) as c:
        r = await post(c, messages=USER, max_tokens=50)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Three.",
        "refusal": None,
        "tool_calls": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(engine.requests[0].prompt)
    assert usage["completion_tokens"] == len("Three.") + 1  # + <|im_end|>
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    await engine.aclose()


async def test_prompt_is_the_chat_tokenizers_rendering_with_tools_and_header_hint() -> None:
    engine = ScriptedEngine(["ok"], timing=FAST)
    msgs = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "1+2"}, {"type": "text", "text": "?"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
    ]
    async with served(engine) as c:
        assert (await post(c, messages=msgs, tools=[ADD], tool_choice="none")).status_code == 200
    req = engine.requests[0]
    text = engine.tokenizer.decode(req.prompt)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert "<|im_start|>user\n1+2?<|im_end|>" in text
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>' in text
    assert text.endswith("<tool_response>\n3\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    header_end = text.index("<|im_end|>") + len("<|im_end|>\n")
    assert req.hints[0].start == 0 and req.hints[0].end == len(
        engine.tokenizer.encode(text[:header_end])
    )
    assert req.constraint is None
    await engine.aclose()


@pytest.mark.parametrize(
    ("choice", "required", "names"),
    [
        ("auto", False, ["add", "mul"]),
        ("required", True, ["add", "mul"]),
        ({"type": "function", "function": {"name": "mul"}}, True, ["mul"]),
    ],
)
async def test_tool_choice_maps_to_the_tool_call_constraint(
    choice: Any, required: bool, names: list[str]
) -> None:
    engine = ScriptedEngine([call(names[0], {})], timing=FAST)
    async with served(engine) as c:
        r = await post(
            c, messages=USER, tools=[ADD, MUL], tool_choice=choice, parallel_tool_calls=False
        )
    assert r.status_code == 200, r.text
    constraint = engine.requests[0].constraint
    assert isinstance(constraint, ToolCallConstraint)
    assert (constraint.required, constraint.parallel) == (required, False)
    assert [t.name for t in constraint.tools] == names
    await engine.aclose()


async def test_non_streamed_tool_calls_come_back_with_ids_and_json_arguments() -> None:
    reply = "Let me add.\n" + call("add", {"a": 1, "b": 2}) + "\n" + call("mul", {"x": 2.5})
    engine = ScriptedEngine([reply], timing=FAST)
    async with served(engine) as c:
        body = (await post(c, messages=USER, tools=[ADD, MUL])).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me add."
    calls = choice["message"]["tool_calls"]
    assert [(tc["function"]["name"], json.loads(tc["function"]["arguments"])) for tc in calls] == [
        ("add", {"a": 1, "b": 2}),
        ("mul", {"x": 2.5}),
    ]
    assert len({tc["id"] for tc in calls}) == 2
    await engine.aclose()


@pytest.mark.parametrize("one_chunk", [False, True])
async def test_streamed_calls_arrive_once_each_in_order_ending_with_tool_calls(
    one_chunk: bool,
) -> None:
    reply = call("add", {"a": 1, "b": 2}) + "\n" + call("mul", {"x": 3})
    inner = ScriptedEngine([reply], timing=FAST)
    engine = OneChunk(inner) if one_chunk else inner
    async with served(engine) as c:
        events = await sse(c, messages=USER, tools=[ADD, MUL], tool_choice="required")
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [e["choices"][0]["delta"] for e in events[1:-1]]
    assert all("content" not in d for d in deltas)  # the newline between calls is not content
    frags = [tc for d in deltas for tc in d["tool_calls"]]
    assert [f["index"] for f in frags] == [0, 0, 1, 1]
    assert [f["function"].get("name") for f in frags] == ["add", None, "mul", None]
    assert frags[0]["id"].startswith("call_") and "id" not in frags[1]
    args = ["".join(f["function"]["arguments"] for f in frags if f["index"] == i) for i in (0, 1)]
    assert [json.loads(a) for a in args] == [{"a": 1, "b": 2}, {"x": 3}]
    assert events[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    await engine.aclose()


async def test_openai_client_accumulates_streamed_calls_and_usage() -> None:
    engine = ScriptedEngine([call("add", {"a": 4, "b": 5})], timing=FAST)
    async with running_server(create_app(engine, agents=[])) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused")
        stream = await client.chat.completions.create(
            model="scripted",
            messages=USER,
            tools=[ADD],
            tool_choice="required",  # type: ignore[list-item]
            stream=True,
            stream_options={"include_usage": True},
        )
        names, args, finish, usage = [], "", None, None
        async for chunk in stream:
            usage = chunk.usage or usage
            for ch in chunk.choices:
                finish = ch.finish_reason or finish
                for tc in ch.delta.tool_calls or []:
                    if tc.function and tc.function.name:
                        names.append(tc.function.name)
                    args += (tc.function.arguments or "") if tc.function else ""
        await client.close()
    assert names == ["add"] and json.loads(args) == {"a": 4, "b": 5} and finish == "tool_calls"
    assert usage is not None and usage.prompt_tokens == len(engine.requests[0].prompt)
    assert (
        usage.completion_tokens == len(engine.tokenizer.encode(call("add", {"a": 4, "b": 5}))) + 1
    )
    await engine.aclose()


async def test_streamed_text_drops_edge_whitespace_and_keeps_inner_whitespace() -> None:
    engine = ScriptedEngine(["\n\nHello,\n\nworld \n"], timing=FAST)
    async with served(engine) as c:
        events = await sse(c, messages=USER)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text == "Hello,\n\nworld"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    await engine.aclose()


async def test_sampling_fields_reach_the_engine() -> None:
    engine = ScriptedEngine(["x"], timing=FAST)
    async with served(engine) as c:
        await post(
            c,
            messages=USER,
            max_completion_tokens=7,
            temperature=0.3,
            top_p=0.9,
            seed=11,
            stop=["END"],
            ignore_eos=True,
        )
        await post(c, messages=USER, stop="STOP")
    s = engine.requests[0].sampling
    assert (s.max_tokens, s.temperature, s.top_p, s.seed, s.stop, s.ignore_eos) == (
        7,
        0.3,
        0.9,
        11,
        ("END",),
        True,
    )
    s2 = engine.requests[1].sampling
    assert s2.stop == ("STOP",) and s2.temperature == 1.0  # OpenAI's default
    assert s2.max_tokens == engine.info.max_model_len - len(engine.requests[1].prompt)
    await engine.aclose()


async def test_response_format_json_schema_and_json_object_constrain_the_output() -> None:
    engine = ScriptedEngine(['{"answer": 3}', "{}"], timing=FAST)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
    }
    async with served(engine) as c:
        r = await post(
            c,
            messages=USER,
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        )
        await post(c, messages=USER, response_format={"type": "json_object"})
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"answer": 3}
    assert engine.requests[0].constraint == JsonSchemaConstraint(schema)
    assert engine.requests[1].constraint == JsonSchemaConstraint({"type": "object"})
    await engine.aclose()


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (
            {
                "messages": USER,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {"a": {"type": 7}}},
                        },
                    }
                ],
            },
            400,
            "tools[0].function.parameters",
            "invalid_function_parameters",
        ),
        (
            {
                "messages": USER,
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
                ],
            },
            400,
            "tools[0].function.parameters",
            "invalid_function_parameters",
        ),
        (
            {"messages": USER, "tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            400,
            "tools[0].function.name",
            "invalid_value",
        ),
        ({"messages": USER, "tool_choice": "required"}, 400, "tool_choice", "invalid_value"),
        (
            {
                "messages": USER,
                "tools": [ADD],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            400,
            "tool_choice.function.name",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "wizard", "content": "hi"}]},
            400,
            "messages[0].role",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "messages[0].content[0].type",
            "unsupported_value",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "add", "arguments": "[1]"},
                            }
                        ],
                    }
                ]
            },
            400,
            "messages[0].tool_calls[0].function.arguments",
            "invalid_value",
        ),
        ({"messages": []}, 400, "messages", "invalid_value"),
        ({"messages": USER, "n": 2}, 400, "n", "unsupported_value"),
        ({"messages": USER, "temperature": -1}, 400, "temperature", "invalid_value"),
        ({"model": "gpt-4o", "messages": USER}, 404, "model", "model_not_found"),
    ],
)
async def test_invalid_requests_get_openai_errors_naming_the_field(
    body: dict[str, Any], status: int, param: str, code: str
) -> None:
    engine = ScriptedEngine(["x"], timing=FAST)
    async with served(engine) as c:
        r = await post(c, **body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["param"], err["code"]) == (param, code)
    assert err["type"] == ("invalid_request_error") and err["message"]
    assert engine.requests == []
    await engine.aclose()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_a_400(raw: bytes) -> None:
    engine = ScriptedEngine(["x"], timing=FAST)
    async with served(engine) as c:
        r = await c.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    await engine.aclose()


async def test_prompt_over_the_context_length_is_a_400() -> None:
    engine = ScriptedEngine(["x"], timing=FAST, max_model_len=64)
    async with served(engine) as c:
        r = await post(c, messages=[{"role": "user", "content": "word " * 40}])
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("context_length_exceeded", "messages")
    assert "64" in err["message"]
    await engine.aclose()


async def test_engine_failure_before_the_first_token_is_an_http_error_even_when_streamed() -> None:
    engine = FailsAt(ScriptedEngine(["x"], timing=FAST), after=None)
    async with served(engine) as c:
        r = await post(c, messages=USER, stream=True)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "engine_unavailable"
    await engine.aclose()


async def test_engine_failure_mid_stream_is_an_error_event_the_openai_client_raises() -> None:
    engine = FailsAt(ScriptedEngine(["Hello world"], timing=FAST), after=3)
    async with running_server(create_app(engine, agents=[])) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(model="scripted", messages=USER, stream=True)  # type: ignore[arg-type]
        got = ""
        with pytest.raises(openai.APIError, match="engine"):
            async for chunk in stream:
                got += chunk.choices[0].delta.content or ""
        await client.close()
    assert got == "Hel"
    await engine.aclose()


async def wait_idle(engine: Any, timeout_s: float = 10.0) -> None:
    """Until the engine runs and queues nothing (bounded)."""
    with anyio.fail_after(timeout_s):
        while (s := await engine.stats()).num_running or s.num_waiting:
            await anyio.sleep(0.01)


async def test_client_leaving_a_stream_aborts_its_engine_request() -> None:
    engine = ScriptedEngine(
        ["z" * 5000], timing=TimingModel(prefill_s_per_token=0.0, decode_step_s=0.002)
    )
    async with served(engine) as c:
        async with c.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "scripted", "stream": True, "messages": USER},
        ) as r:
            lines = r.aiter_lines()
            for _ in range(3):
                await anext(lines)
            assert (await engine.stats()).num_running == 1
        await wait_idle(engine)
        assert (await c.get("/health")).status_code == 200
    await engine.aclose()


async def test_client_leaving_a_non_streamed_request_aborts_it() -> None:
    engine = ScriptedEngine(
        ["z" * 5000], timing=TimingModel(prefill_s_per_token=0.0, decode_step_s=0.002)
    )
    async with served(engine) as c:
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(post, c, messages=USER))
            with anyio.fail_after(10):
                while (await engine.stats()).num_running == 0:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()  # the client gives up and closes its connection
        await wait_idle(engine)
    await engine.aclose()


async def test_models_lists_the_served_name_and_unknown_routes_are_openai_errors() -> None:
    engine = ScriptedEngine([], timing=FAST)
    async with served(engine) as c:
        models = (await c.get("/v1/models")).json()
        one = await c.get("/v1/models/scripted")
        missing = await c.get("/v1/models/other")
        nowhere = await c.get("/v1/nowhere")
    assert [m["id"] for m in models["data"]] == ["scripted"]
    assert one.json()["max_model_len"] == engine.info.max_model_len
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    await engine.aclose()
