"""Chat completions carry the co-design (issue 11) on ScriptedEngine: echoed turns are sent
as the tokens the model generated, requests join sessions (hints by role, priority,
release) and a ``tool_calls`` completion is followed by a split prefill."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import openai
import pytest

import agentrt.server._sessions
from agentrt._run_priority import RunPriorities
from agentrt.engine import (
    CacheHint,
    EngineLoad,
    EngineProxy,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    ScriptedEngine,
    SessionId,
    Tier,
    TimingModel,
)
from agentrt.server import ServerConfig, create_app, running_server
from agentrt.server._auth import KeyRing, make_key

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
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
SYSTEM = {"role": "system", "content": "You add numbers."}
USER = {"role": "user", "content": "What is 1 + 2?"}
# What the model writes: text before the call, compact JSON with keys in its own order.
# No client echoes this byte for byte, so a re-render cannot reproduce these tokens.
CALL_TEXT = 'Let me add.  \n<tool_call>\n{"name":"add","arguments":{"b":2,"a":1}}\n</tool_call>'
ANSWER = "1 + 2 = 3."


class Recorder(EngineProxy):
    """ScriptedEngine that records releases and split prefills, and signals each prefill."""

    def __init__(self, inner: ScriptedEngine) -> None:
        super().__init__(inner, owns_inner=True)
        self.inner: ScriptedEngine = inner
        self.releases: list[SessionId] = []
        self.prefills: list[PrefillRequest] = []
        self.prefilled = anyio.Event()

    async def prefill(self, request: PrefillRequest) -> PrefillStats:
        stats = await self.inner.prefill(request)
        self.prefills.append(request)
        self.prefilled.set()
        return stats

    async def release(self, session: SessionId) -> None:
        self.releases.append(session)
        await self.inner.release(session)


def engine(*replies: str) -> Recorder:
    return Recorder(ScriptedEngine(list(replies), timing=FAST))


@asynccontextmanager
async def served(eng: Recorder, **config: Any) -> AsyncIterator[str]:
    async with running_server(create_app(eng, agents=[], config=ServerConfig(**config))) as url:
        yield url


def turn_tokens(eng: Recorder, reply: str) -> tuple[int, ...]:
    """What the scripted model generated for ``reply``, closed as a turn."""
    tok = eng.tokenizer
    return (*tok.encode(reply), tok.im_end_id, *tok.turn_close)


def echoed(message: dict[str, Any], *, compact: bool) -> dict[str, Any]:
    """The assistant message as a client sends it back: arguments re-serialized."""
    out = {"role": "assistant", "content": message["content"], "tool_calls": []}
    for c in message["tool_calls"] or []:
        args = json.loads(c["function"]["arguments"])
        text = (
            json.dumps(dict(sorted(args.items())), separators=(",", ":"))
            if compact
            else json.dumps(args, indent=2)
        )
        out["tool_calls"].append(
            {"id": c["id"], "type": "function", "function": {"name": "add", "arguments": text}}
        )
    return out


async def post(
    c: httpx.AsyncClient, messages: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    headers = extra.pop("headers", None)
    body = {"model": "scripted", "messages": messages, "tools": [ADD], **extra}
    r = await c.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def tool_round(
    c: httpx.AsyncClient, *, compact: bool = True, **extra: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Call, tool result, answer: the two responses."""
    first = await post(c, [SYSTEM, USER], **extra)
    msg = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    result = {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "3"}
    second = await post(c, [SYSTEM, USER, echoed(msg, compact=compact), result], **extra)
    return first, second


def calls(eng: Recorder) -> list[GenerateRequest]:
    """The chat requests the engine received (split prefills are requests too)."""
    return [r for r in eng.inner.requests if r.forced_output is None]


def extends(later: Sequence[int], earlier: Sequence[int]) -> bool:
    return tuple(later[: len(earlier)]) == tuple(earlier)


@pytest.mark.parametrize("compact", [True, False])
async def test_an_echoed_turn_is_sent_as_the_generated_tokens(compact: bool) -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        await tool_round(c, compact=compact)
    first, second = calls(eng)
    assert extends(second.prompt, first.prompt + turn_tokens(eng, CALL_TEXT))
    assert len(second.prompt) > len(first.prompt) + len(turn_tokens(eng, CALL_TEXT))


async def test_without_session_reuse_the_turn_is_re_rendered_and_diverges() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng, session_reuse=False) as url, httpx.AsyncClient(base_url=url) as c:
        await tool_round(c)
    first, second = calls(eng)
    assert extends(second.prompt, first.prompt)
    assert not extends(second.prompt, first.prompt + turn_tokens(eng, CALL_TEXT))


async def test_an_edited_turn_is_re_rendered_as_the_client_wrote_it() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        first = await post(c, [SYSTEM, USER])
        msg = echoed(first["choices"][0]["message"], compact=True)
        msg["tool_calls"][0]["function"]["arguments"] = '{"a":1,"b":5}'
        result = {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "6"}
        await post(c, [SYSTEM, USER, msg, result])
    second = calls(eng)[1]
    assert not extends(second.prompt, calls(eng)[0].prompt + turn_tokens(eng, CALL_TEXT))
    assert '{"a":1,"b":5}' in eng.tokenizer.decode(second.prompt)


async def test_another_keys_echo_gets_no_reuse() -> None:
    keys = KeyRing([make_key("key-a"), make_key("key-b")])
    eng = engine(CALL_TEXT, ANSWER, ANSWER)
    async with served(eng, keys=keys) as url:
        a = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer key-a"})
        b = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer key-b"})
        async with a, b:
            first = await post(a, [SYSTEM, USER])
            msg = echoed(first["choices"][0]["message"], compact=True)
            result = {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "3"}
            await post(b, [SYSTEM, USER, msg, result])
            await post(a, [SYSTEM, USER, msg, result])
    first_req, other_key, same_key = calls(eng)
    generated = first_req.prompt + turn_tokens(eng, CALL_TEXT)
    assert not extends(other_key.prompt, generated)
    assert extends(same_key.prompt, generated)


async def test_a_final_answer_echoed_as_content_is_reused() -> None:
    spaced = "  It is  3.\n\n"
    eng = engine(spaced, ANSWER)
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        first = await post(c, [USER])
        content = first["choices"][0]["message"]["content"]
        follow = {"role": "user", "content": "And 2 + 2?"}
        await post(c, [USER, {"role": "assistant", "content": content.strip()}, follow])
    one, two = calls(eng)
    assert extends(two.prompt, one.prompt + turn_tokens(eng, spaced))


async def test_streamed_completions_are_remembered_too() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with (
        served(eng) as url,
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="none") as client,
    ):
        stream = await client.chat.completions.create(
            model="scripted",
            messages=[SYSTEM, USER],
            tools=[ADD],
            stream=True,  # type: ignore[list-item]
        )
        parts: dict[int, dict[str, str]] = {}
        async for chunk in stream:
            for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                slot = parts.setdefault(tc.index, {"id": "", "args": ""})
                slot["id"] = tc.id or slot["id"]
                slot["args"] += (tc.function.arguments or "") if tc.function else ""
        call = parts[0]
        history: list[Any] = [
            SYSTEM,
            USER,
            {
                "role": "assistant",
                "content": "Let me add.",
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": "add", "arguments": call["args"]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call["id"], "content": "3"},
        ]
        done = await client.chat.completions.create(model="scripted", messages=history, tools=[ADD])  # type: ignore[list-item]
    assert done.choices[0].message.content == ANSWER
    one, two = calls(eng)
    assert extends(two.prompt, one.prompt + turn_tokens(eng, CALL_TEXT))


async def test_session_inferred_from_the_echo_keeps_session_and_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ranks of its own: other tests' runs in this process must not cap these priorities.
    monkeypatch.setattr(agentrt.server._sessions, "RUN_PRIORITIES", RunPriorities())
    eng = engine(CALL_TEXT, ANSWER, ANSWER)
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        await tool_round(c)
        await post(c, [{"role": "user", "content": "Another conversation"}])
    first, second, other = calls(eng)
    assert first.session is not None and first.session == second.session
    assert first.priority == second.priority
    assert other.session not in (None, first.session)
    assert other.priority > first.priority


@pytest.mark.parametrize(
    ("extra", "header"),
    [({"prompt_cache_key": "conv-1"}, None), ({"user": "alice"}, None), ({}, "conv-9")],
)
async def test_a_client_key_names_the_session(extra: dict[str, Any], header: str | None) -> None:
    eng = engine(ANSWER, ANSWER)
    headers = {"X-Session-Id": header} if header else None
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        await post(c, [USER], headers=headers, **extra)
        await post(c, [{"role": "user", "content": "unrelated"}], headers=headers, **extra)
    one, two = calls(eng)
    assert one.session is not None and one.session == two.session


async def test_hints_by_role_in_a_session() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        await tool_round(c)
    second = calls(eng)[1]
    tiers = [h.tier for h in second.hints]
    assert tiers == [Tier.SYSTEM, Tier.USER_QUERY, Tier.DEFAULT, Tier.TOOL_OUTPUT, Tier.DEFAULT]
    assert second.hints[-1].end == len(second.prompt)
    assert all(a.end == b.start for a, b in zip(second.hints, second.hints[1:], strict=False))


async def test_without_sessions_the_two_coarse_tiers_and_no_session() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng, chat_sessions=False) as url, httpx.AsyncClient(base_url=url) as c:
        await tool_round(c)
    second = calls(eng)[1]
    assert second.session is None
    assert [h.tier for h in second.hints] == [Tier.SYSTEM, Tier.DEFAULT]
    assert eng.releases == [] and eng.prefills == []


async def test_a_final_answer_releases_the_session() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        first = await post(c, [SYSTEM, USER])
        assert eng.releases == []  # tools are running: the session lives on
        msg = echoed(first["choices"][0]["message"], compact=True)
        result = {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "3"}
        await post(c, [SYSTEM, USER, msg, result])
    assert eng.releases == [calls(eng)[1].session]


async def test_a_tool_calls_completion_is_followed_by_split_prefill_that_the_next_hits() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        first = await post(c, [SYSTEM, USER])
        with anyio.fail_after(10):
            await eng.prefilled.wait()
        msg = echoed(first["choices"][0]["message"], compact=True)
        result = {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "3"}
        second = await post(c, [SYSTEM, USER, msg, result])
    req = calls(eng)[0]
    (split,) = eng.prefills
    opening = eng.tokenizer.encode("<|im_start|>user\n<tool_response>\n")
    split_a = req.prompt + turn_tokens(eng, CALL_TEXT) + tuple(opening)
    assert split.prompt == split_a
    assert split.session == req.session
    assert all(h.tier == Tier.SPLIT_PENDING and h.ttl_s for h in split.hints)
    assert split.hints[-1] == CacheHint(
        len(req.prompt), len(split_a), Tier.SPLIT_PENDING, split.hints[-1].ttl_s, Tier.DEFAULT
    )
    block = eng.info.block_size
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached == len(split_a) // block * block


async def test_split_prefill_switch_off() -> None:
    eng = engine(CALL_TEXT, ANSWER)
    async with served(eng, chat_split_prefill=False) as url, httpx.AsyncClient(base_url=url) as c:
        await tool_round(c)
    assert eng.prefills == []
    assert calls(eng)[0].session == calls(eng)[1].session


class Busy(Recorder):
    """An engine reporting a request waiting: split prefills must stay out of its way."""

    def __init__(self, inner: ScriptedEngine) -> None:
        super().__init__(inner)
        self.asked = anyio.Event()

    async def load(self) -> EngineLoad:
        self.asked.set()
        return dataclasses.replace(await self.inner.load(), waiting=1)


async def test_no_split_prefill_while_requests_wait() -> None:
    eng = Busy(ScriptedEngine([CALL_TEXT, ANSWER], timing=FAST))
    async with served(eng) as url, httpx.AsyncClient(base_url=url) as c:
        first = await post(c, [SYSTEM, USER])
        with anyio.fail_after(10):
            await eng.asked.wait()
        msg = echoed(first["choices"][0]["message"], compact=True)
        result = {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "3"}
        await post(c, [SYSTEM, USER, msg, result])
    assert eng.prefills == []
    assert len(calls(eng)) == 2
