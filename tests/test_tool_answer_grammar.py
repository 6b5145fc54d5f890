"""Tools beside a structured answer (issue 11.4): one grammar allows either calls in the
model's format or one JSON answer matching the schema, in every tool format."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import TOOL_FORMAT_NAMES, ToolCallConstraint, ToolCallPart
from agentrt.engine._constraints import tool_call_structural_tag
from agentrt.engine._formats import tool_format
from agentrt.engine._messages import pieces_text
from agentrt.server._chat_output import ChoiceAssembler
from tests.test_tool_formats import CALC, accepts

ANSWER = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def combined(fmt: str, *, parallel: bool = False) -> ToolCallConstraint:
    return ToolCallConstraint(
        (CALC,),
        required=False,
        parallel=parallel,
        format=fmt,  # type: ignore[arg-type]
        answer_schema=ANSWER,
    )


def call_text(fmt: str, *exprs: str) -> str:
    calls = [ToolCallPart(f"c{i}", "calc", json.dumps({"expr": e})) for i, e in enumerate(exprs)]
    return pieces_text(tool_format(fmt).call_pieces(calls))


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
@settings(max_examples=25, deadline=None)
@given(expr=st.text(max_size=10), answer=st.integers(-(10**6), 10**6))
def test_either_a_call_or_an_answer_in_the_schema(fmt: str, expr: str, answer: int) -> None:
    c = combined(fmt)
    assert accepts(c, call_text(fmt, expr))
    assert accepts(c, json.dumps({"answer": answer}))


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
def test_nothing_else(fmt: str) -> None:
    c = combined(fmt)
    assert not accepts(c, "The answer is 4.")
    assert not accepts(c, '{"answer": "four"}')  # not the schema
    assert not accepts(c, '{"answer": 4, "extra": 1}')
    # One branch only: no answer after a call, no call after an answer.
    assert not accepts(c, call_text(fmt, "1") + '\n{"answer": 4}')
    assert not accepts(c, '{"answer": 4}\n' + call_text(fmt, "1"))


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
def test_the_call_branch_keeps_the_parallel_setting(fmt: str) -> None:
    two = call_text(fmt, "1", "2")
    assert accepts(combined(fmt, parallel=True), two)
    assert not accepts(combined(fmt, parallel=False), two)


def test_the_call_branch_is_the_formats_own_required_grammar() -> None:
    c = combined("hermes", parallel=True)
    calls_only = ToolCallConstraint((CALC,), required=True, parallel=True, format="hermes")
    tag = tool_call_structural_tag(c)
    assert tag["format"]["type"] == "or"
    calls, answer = tag["format"]["elements"]
    assert calls == tool_call_structural_tag(calls_only)["format"]
    assert answer == {"type": "json_schema", "json_schema": ANSWER}


def test_required_ignores_the_answer_schema() -> None:
    """With ``required`` the response is calls only: there is no answer to shape."""
    forced = ToolCallConstraint((CALC,), required=True, format="hermes", answer_schema=ANSWER)
    assert tool_call_structural_tag(forced) == tool_call_structural_tag(
        ToolCallConstraint((CALC,), required=True, format="hermes")
    )
    assert not accepts(forced, '{"answer": 4}')


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
def test_each_formats_parser_tells_the_answer_from_a_call(fmt: str) -> None:
    """What the server's assembler makes of either branch: content, or one call."""
    answer = ChoiceAssembler(tool_format(fmt))
    answer.feed_text('{"answer": 4}')
    answer.finish()
    assert ("".join(answer.content), answer.calls) == ('{"answer": 4}', [])
    called = ChoiceAssembler(tool_format(fmt))
    called.feed_text(call_text(fmt, "2+2"))
    called.finish()
    assert [(c.name, json.loads(c.arguments)) for c in called.calls] == [("calc", {"expr": "2+2"})]
    assert called.content == []
