"""No sampling parameter is accepted and dropped (issue 11.5): each one reaches the engine
as vLLM's ``SamplingParams`` means it, or (``n > 1``) is refused with a 400 naming it;
values out of range and of the wrong JSON type are a 400 naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import SamplingOptions, ScriptedEngine, TimingModel
from agentrt.server import create_app, running_server
from agentrt.server._chat import parse_json
from agentrt.server._errors import APIError
from agentrt.server._openai_models import ChatCompletionRequest

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
USER = [{"role": "user", "content": "Hi"}]

# (request field, value, what reaches the engine: SamplingOptions field -> value)
PASSED: list[tuple[str, Any, dict[str, Any]]] = [
    ("presence_penalty", 0.5, {"presence_penalty": 0.5}),
    ("frequency_penalty", -1.0, {"frequency_penalty": -1.0}),
    ("repetition_penalty", 1.2, {"repetition_penalty": 1.2}),
    ("top_k", 40, {"top_k": 40}),
    ("top_k", -1, {}),  # vLLM's old spelling of "off"
    ("min_p", 0.1, {"min_p": 0.1}),
    ("logit_bias", {"65": -100, "66": 5}, {"logit_bias": ((65, -100.0), (66, 5.0))}),
    ("stop_token_ids", [2, 7], {"stop_token_ids": (2, 7)}),
    ("seed", 11, {"seed": 11}),
    ("logprobs", True, {"logprobs": 0}),
    ("n", 1, {}),
]
# (request fields, the field the 400 names)
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"n": 2}, "n"),
    ({"top_logprobs": 3}, "top_logprobs"),  # needs logprobs: true
    ({"logprobs": False, "top_logprobs": 1}, "top_logprobs"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"logit_bias": {"99999999": 1}}, "logit_bias"),  # no such token
    ({"logit_bias": {"5": 101}}, "logit_bias"),
    ({"stop_token_ids": [99999999]}, "stop_token_ids"),
    ({"stop_token_ids": [-1]}, "stop_token_ids"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"top_k": -2}, "top_k"),
    ({"min_p": 1.5}, "min_p"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
]


async def post(body: dict[str, Any], reply: str = "ok") -> tuple[httpx.Response, ScriptedEngine]:
    engine = ScriptedEngine([reply], timing=FAST)
    async with (
        running_server(create_app(engine, agents=[])) as url,
        httpx.AsyncClient(base_url=url) as c,
    ):
        r = await c.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": USER, **body}
        )
    await engine.aclose()
    return r, engine


@pytest.mark.parametrize(("name", "value", "expected"), PASSED, ids=[p[0] for p in PASSED])
async def test_each_parameter_reaches_the_engine(
    name: str, value: Any, expected: dict[str, Any]
) -> None:
    r, engine = await post({name: value})
    assert r.status_code == 200, r.text
    got = engine.requests[0].sampling
    defaults = SamplingOptions(max_tokens=got.max_tokens, temperature=got.temperature)
    for field, want in expected.items():
        assert getattr(got, field) == want, field
        assert getattr(defaults, field) != want, f"{field}: the test value is the default"
    # Nothing else moved off its default.
    for field in SamplingOptions.__slots__:
        if field not in expected and field not in ("max_tokens", "temperature"):
            assert getattr(got, field) == getattr(defaults, field), field


@pytest.mark.parametrize(("body", "param"), REFUSED, ids=[f"{p}={b}" for b, p in REFUSED])
async def test_refused_or_out_of_range_values_are_a_400_naming_the_field(
    body: dict[str, Any], param: str
) -> None:
    r, engine = await post(body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"].split("[")[0].split(".")[0] == param, err
    assert param in err["message"]
    assert engine.requests == []


async def test_stop_token_ids_end_the_output_without_showing_the_token() -> None:
    stop = ord("l")  # the scripted engine's byte tokenizer: one token per byte
    r, _ = await post({"stop_token_ids": [stop]}, reply="hello")
    choice = r.json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("he", "stop")
    assert r.json()["usage"]["completion_tokens"] == 3  # h, e and the stop token


async def test_logprobs_come_back_in_openais_shape() -> None:
    r, _ = await post({"logprobs": True, "top_logprobs": 2}, reply="hey")
    body = r.json()
    entries = body["choices"][0]["logprobs"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"]
    assert "".join(e["token"] for e in entries).startswith("hey")
    for e in entries:
        assert e["logprob"] == 0.0 and bytes(e["bytes"]).decode() == e["token"]
        assert [t["token"] for t in e["top_logprobs"]] == [e["token"]]
    r2, _ = await post({}, reply="hey")
    assert r2.json()["choices"][0]["logprobs"] is None


async def test_streamed_logprobs_list_every_token_once() -> None:
    engine = ScriptedEngine(["hey there"] * 2, timing=FAST)
    body = {"model": "scripted", "messages": USER, "logprobs": True, "top_logprobs": 1}
    async with (
        running_server(create_app(engine, agents=[])) as url,
        httpx.AsyncClient(base_url=url) as c,
    ):
        whole = (await c.post("/v1/chat/completions", json=body)).json()
        streamed: list[dict[str, Any]] = []
        content = ""
        async with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:])["choices"]:
                        streamed += (choice["logprobs"] or {}).get("content") or []
                        content += choice["delta"].get("content") or ""
    await engine.aclose()
    assert streamed == whole["choices"][0]["logprobs"]["content"]
    assert content == whole["choices"][0]["message"]["content"] == "hey there"


# ---- strict types at the JSON edge ------------------------------------------------

INTEGERS = ["n", "top_logprobs", "top_k", "seed", "max_tokens", "max_completion_tokens"]
NUMBERS = [
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "min_p",
]
BOOLEANS = ["logprobs", "stream", "ignore_eos", "parallel_tool_calls"]
_numeral = st.integers(0, 50).map(str) | st.floats(0, 1, allow_nan=False).map(str)


def wrong_for(kind: str) -> st.SearchStrategy[Any]:
    """JSON values of another type than ``kind`` (numerals as strings among them)."""
    others: dict[str, st.SearchStrategy[Any]] = {
        "integer": _numeral | st.booleans() | st.floats(0.5, 9.5) | st.lists(st.integers(0, 3)),
        "number": _numeral | st.booleans() | st.just({"v": 1}),
        "boolean": st.sampled_from(["yes", "true", "false", "1"]) | st.integers(0, 1),
    }
    return others[kind]


def field_error(body: dict[str, Any]) -> APIError:
    raw = json.dumps({"model": "m", "messages": USER, **body}).encode()
    with pytest.raises(APIError) as caught:
        parse_json(raw, ChatCompletionRequest)
    return caught.value


@pytest.mark.parametrize(
    ("name", "kind"),
    [(n, "integer") for n in INTEGERS]
    + [(n, "number") for n in NUMBERS]
    + [(n, "boolean") for n in BOOLEANS],
)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_a_value_of_another_json_type_is_a_400_naming_the_field(
    name: str, kind: str, data: st.DataObject
) -> None:
    value = data.draw(wrong_for(kind))
    err = field_error({name: value})
    assert err.status == 400 and re.split(r"[.[]", err.param or "")[0] == name, err


@settings(max_examples=25, deadline=None)
@given(
    field=st.sampled_from(["logit_bias", "stop_token_ids"]),
    value=st.sampled_from(["1", "yes", 1.5, True]),
)
def test_container_items_are_strict_too(field: str, value: Any) -> None:
    body = {field: {"5": value}} if field == "logit_bias" else {field: [value]}
    if field == "logit_bias" and value == 1.5:
        return  # a number is the right type for a bias
    err = field_error(body)
    assert re.split(r"[.[]", err.param or "")[0] == field, err
