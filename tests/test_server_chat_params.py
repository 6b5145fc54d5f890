"""No sampling parameter is accepted and dropped (issue 11.5): each one this server does
not implement is refused with a 400 naming it unless its value changes nothing, and each
is type-checked strictly."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from agentrt.engine import ScriptedEngine, TimingModel
from agentrt.server import create_app, running_server

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
USER = [{"role": "user", "content": "Hi"}]
REFUSED: list[tuple[str, Any]] = [
    ("n", 2),
    ("logprobs", True),
    ("top_logprobs", 3),
    ("presence_penalty", 0.5),
    ("frequency_penalty", -1.0),
    ("repetition_penalty", 1.2),
    ("logit_bias", {"50256": -100}),
    ("top_k", 40),
    ("min_p", 0.1),
    ("stop_token_ids", [2]),
]
NO_OPS: dict[str, Any] = {
    "n": 1,
    "logprobs": False,
    "top_logprobs": 0,
    "presence_penalty": 0,
    "frequency_penalty": 0.0,
    "repetition_penalty": 1.0,
    "logit_bias": {},
    "top_k": -1,
    "min_p": 0,
    "stop_token_ids": [],
}
WRONG_TYPES: list[tuple[str, Any]] = [
    ("top_k", "10"),
    ("presence_penalty", "0.5"),
    ("logit_bias", {"1": "yes"}),
    ("stop_token_ids", ["2"]),
    ("top_logprobs", 1.5),
]


async def post(body: dict[str, Any], replies: int = 1) -> tuple[httpx.Response, ScriptedEngine]:
    engine = ScriptedEngine(["ok"] * replies, timing=FAST)
    async with (
        running_server(create_app(engine, agents=[])) as url,
        httpx.AsyncClient(base_url=url) as c,
    ):
        r = await c.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": USER, **body}
        )
    return r, engine


async def test_unimplemented_parameters_are_refused_by_name() -> None:
    for name, value in REFUSED:
        r, engine = await post({name: value})
        assert r.status_code == 400, (name, r.text)
        err = r.json()["error"]
        assert (err["param"], err["code"]) == (name, "unsupported_value")
        assert name in err["message"]
        assert engine.requests == []


async def test_their_no_op_values_are_accepted() -> None:
    r, engine = await post(NO_OPS)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "ok"
    assert len(engine.requests) == 1


async def test_wrong_types_are_a_400_naming_the_field() -> None:
    for name, value in WRONG_TYPES:
        r, _ = await post({name: value})
        assert r.status_code == 400, (name, r.text)
        assert re.split(r"[.[]", r.json()["error"]["param"])[0] == name, r.text
