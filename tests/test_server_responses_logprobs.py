"""``/v1/responses`` log-probabilities on ScriptedEngine through the official ``openai``
client: ``include: ["message.output_text.logprobs"]`` and ``top_logprobs`` reach the engine,
each token of a message's text is listed once (streamed: on the first delta after it), the
tool-call markup and the end of sequence are not, and bad values are 400s naming the field.

The scripted model is certain of every token: log-probability 0 and one alternative (its
own token), so the top lists are cut at one entry whatever ``top_logprobs`` asks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_server_responses_scripted import client, served

from agentrt.server._responses_plan import INCLUDE_LOGPROBS

pytestmark = pytest.mark.anyio


def tokens(lps: list[Any]) -> str:
    return "".join(lp.token for lp in lps)


async def test_include_lists_each_token_of_the_text_once() -> None:
    async with served() as (url, engine), client(url) as c:
        r = await c.responses.create(
            model="scripted", input="hi", include=[INCLUDE_LOGPROBS], top_logprobs=2
        )
    part = r.output[0].content[0]
    assert part.type == "output_text" and part.logprobs
    # Exactly the text's tokens: no end-of-sequence token, nothing twice.
    assert tokens(part.logprobs) == part.text == "Hello there."
    assert all(lp.logprob == 0.0 for lp in part.logprobs)
    assert all(len(lp.top_logprobs) == 1 for lp in part.logprobs)
    assert all(lp.bytes == list(lp.token.encode()) for lp in part.logprobs)
    assert engine.requests[-1].sampling.logprobs == 2
    assert r.top_logprobs == 2


async def test_without_include_nothing_is_asked_or_listed() -> None:
    async with served() as (url, engine), client(url) as c:
        r = await c.responses.create(model="scripted", input="hi")
        top0 = await c.responses.create(model="scripted", input="hi", top_logprobs=0)
    assert engine.requests[0].sampling.logprobs is None
    assert engine.requests[1].sampling.logprobs is None  # 0 alternatives and no include
    assert r.output[0].content[0].logprobs == []
    assert top0.output[0].content[0].logprobs == []


async def test_top_logprobs_alone_turns_them_on() -> None:
    async with served() as (url, engine), client(url) as c:
        r = await c.responses.create(model="scripted", input="hi", top_logprobs=3)
    assert engine.requests[-1].sampling.logprobs == 3
    assert tokens(r.output[0].content[0].logprobs) == r.output_text


async def test_streamed_deltas_carry_the_tokens_the_done_event_lists() -> None:
    async with served() as (url, _), client(url) as c:
        stream = await c.responses.create(
            model="scripted", input="hi", include=[INCLUDE_LOGPROBS], stream=True
        )
        events = [ev async for ev in stream]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    done = next(e for e in events if e.type == "response.output_text.done")
    streamed = [lp for d in deltas for lp in d.logprobs]
    assert [(lp.token, lp.logprob) for lp in streamed] == [
        (lp.token, lp.logprob) for lp in done.logprobs
    ]
    assert tokens(streamed) == done.text == "Hello there."
    final = events[-1].response.output[0].content[0]
    assert tokens(final.logprobs) == final.text


async def test_tool_call_markup_is_not_listed_on_the_answer() -> None:
    """A server-side call, then the answer: the call's tokens are not on the answer's
    text (they write no text), the answer's are, once."""
    async with served() as (url, engine), client(url) as c:
        r = await c.responses.create(
            model="scripted",
            input="calc",
            tools=[{"type": "calculator"}],
            include=[INCLUDE_LOGPROBS],
        )
    assert [o.type for o in r.output] == ["mcp_call", "message"]
    part = r.output[1].content[0]
    assert part.text == "Result: 42" and tokens(part.logprobs) == part.text
    assert all(req.sampling.logprobs == 0 for req in engine.requests)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"include": ["reasoning.encrypted_content"]}, "include[0]"),
        ({"include": [INCLUDE_LOGPROBS, "file_search_call.results"]}, "include[1]"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": -1}, "top_logprobs"),
        ({"top_logprobs": "2"}, "top_logprobs"),
    ],
)
async def test_bad_logprob_fields_name_the_field(body: dict[str, Any], param: str) -> None:
    async with served() as (url, _), httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/v1/responses", json={"model": "scripted", "input": "hi", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text
