"""``parallel_tool_calls`` left unset: the server's policy, and the grammar that offers
the end of the response after each call (``end_after_call``)."""

from __future__ import annotations

import json

import pytest

from agentrt._tool_choice import parallel_calls, tool_constraint
from agentrt.engine import ScriptedEngine, ToolCallConstraint, ToolCallPart, tool_format
from agentrt.server import ServerConfig
from tests.test_tool_call_parity_scripted import ADD, FAST, FIRST, USER, post, served
from tests.test_tool_formats import CALC, accepts, rendered

ONE = ToolCallPart("c", "calc", json.dumps({"expr": "1+1"}))
TWO = ToolCallPart("c", "calc", json.dumps({"expr": "2+2"}))


@pytest.mark.parametrize("fmt", ["hermes", "json"])
def test_end_after_call_also_accepts_a_separator_before_the_end(fmt: str) -> None:
    c = ToolCallConstraint((CALC,), required=True, parallel=True, format=fmt, end_after_call=True)
    one, two = rendered(fmt, [ONE]), rendered(fmt, [ONE, TWO])
    assert accepts(c, one) and accepts(c, one + "\n") and accepts(c, two)
    assert accepts(c, two + "\n")
    assert not accepts(c, one + "\n\n") and not accepts(c, one + "\nx")
    plain = ToolCallConstraint((CALC,), required=True, parallel=True, format=fmt)
    assert not accepts(plain, one + "\n")


def test_end_after_call_changes_nothing_for_one_call_or_auto() -> None:
    for required, parallel in ((True, False), (False, True)):
        on = ToolCallConstraint((CALC,), required, parallel, end_after_call=True)
        off = ToolCallConstraint((CALC,), required, parallel)
        assert tool_format("hermes").structural_tag(on) == tool_format("hermes").structural_tag(off)


@pytest.mark.parametrize(
    ("requested", "unset", "expected"),
    [
        (True, "one", (True, False)),
        (False, "allow", (False, False)),
        (None, "allow", (True, False)),
        (None, "end_first", (True, True)),
        (None, "one", (False, False)),
    ],
)
def test_the_client_wins_and_unset_follows_the_policy(
    requested: bool | None, unset: str, expected: tuple[bool, bool]
) -> None:
    assert parallel_calls(requested, unset) == expected  # type: ignore[arg-type]


def test_tool_constraint_carries_end_after_call() -> None:
    c = tool_constraint("required", [CALC], parallel=True, end_after_call=True)
    assert c is not None and c.end_after_call


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("policy", "body", "parallel", "end_after_call"),
    [
        ("end_first", {}, True, True),
        ("one", {}, False, False),
        ("one", {"parallel_tool_calls": True}, True, False),
        ("allow", {}, True, False),
    ],
)
async def test_the_server_policy_reaches_the_constraint(
    policy: str, body: dict[str, bool], parallel: bool, end_after_call: bool
) -> None:
    engine = ScriptedEngine([FIRST], timing=FAST)
    async with served(engine, parallel_unset=policy) as c:
        await post(c, messages=USER, tools=[ADD], tool_choice="required", **body)
    constraint = engine.requests[0].constraint
    assert isinstance(constraint, ToolCallConstraint)
    assert (constraint.parallel, constraint.end_after_call) == (parallel, end_after_call)
    await engine.aclose()


def test_an_unknown_policy_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="parallel_unset"):
        ServerConfig(parallel_unset="some")  # type: ignore[arg-type]


RESPONSES_ADD = {
    "type": "function",
    "name": ADD["function"]["name"],
    "parameters": ADD["function"]["parameters"],
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("policy", "body", "parallel"),
    [
        ("one", {}, False),
        ("one", {"parallel_tool_calls": True}, True),
        ("allow", {}, True),
        ("allow", {"parallel_tool_calls": False}, False),
    ],
)
async def test_responses_follow_the_same_policy_as_chat(
    policy: str, body: dict[str, bool], parallel: bool
) -> None:
    engine = ScriptedEngine(["It is 3."], timing=FAST)
    async with served(engine, parallel_unset=policy) as c:
        r = await c.post(
            "/v1/responses",
            json={
                "model": "scripted",
                "input": "add 1 and 2",
                "tools": [RESPONSES_ADD],
                "tool_choice": "required",
                **body,
            },
        )
        assert r.status_code == 200, r.text
    constraint = engine.requests[0].constraint
    assert isinstance(constraint, ToolCallConstraint) and constraint.parallel == parallel
    assert r.json()["parallel_tool_calls"] == parallel  # the response says what was applied
    await engine.aclose()
