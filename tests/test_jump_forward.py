"""Jump-forward (``engine._jump_forward``): the fixed head of a forced call is split off the
grammar exactly — head + anything the rest accepts is what the whole grammar accepts —
for every tool format, and requests whose sampling reads generated tokens keep decoding."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import xgrammar
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tool_formats import CALC, TOOLS, accepts, rendered

from agentrt.engine import (
    CacheHint,
    GenerateRequest,
    SamplingOptions,
    Tier,
    ToolCallConstraint,
    ToolCallPart,
)
from agentrt.engine._formats import TOOL_FORMAT_NAMES
from agentrt.engine._jump_forward import plan_jump, split_head

_COMPILER = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo([]), cache_enabled=False)


def encode(text: str) -> list[int]:
    """A byte tokenizer: one token per UTF-8 byte (ScriptedEngine's)."""
    return list(text.encode())


def rest_accepts(rest: dict[str, object], text: str) -> bool:
    grammar = _COMPILER.compile_grammar(xgrammar.Grammar.from_structural_tag(json.dumps(rest)))
    matcher = xgrammar.GrammarMatcher(grammar, terminate_without_stop_token=True)
    return bool(matcher.accept_string(text)) and bool(matcher.is_terminated())


def request(c: ToolCallConstraint, **sampling: object) -> GenerateRequest:
    return GenerateRequest((1, 2, 3), SamplingOptions(max_tokens=200, **sampling), c)  # type: ignore[arg-type]


def test_hermes_one_tool_jumps_over_the_call_head() -> None:
    c = ToolCallConstraint((CALC,), required=True, parallel=False)
    jump = plan_jump(request(c), encode)
    assert jump is not None
    assert jump.head_text == '<tool_call>\n{"name": "calc", "arguments":'
    assert jump.head == tuple(encode(jump.head_text))
    assert rest_accepts(jump.rest, ' {"expr": "1+1"}}\n</tool_call>')
    assert not rest_accepts(jump.rest, ' {"expr": 1}}\n</tool_call>')  # off-schema
    assert not rest_accepts(jump.rest, ' {"expr": "1"}}\n</tool_call>\n<tool_call>')


def test_several_tools_jump_over_the_common_head_for_one_call_only() -> None:
    one = plan_jump(request(ToolCallConstraint(TOOLS, required=True, parallel=False)), encode)
    assert one is not None and one.head_text == '<tool_call>\n{"name": "'
    assert rest_accepts(one.rest, 'fs.read", "arguments": {}}\n</tool_call>')
    assert rest_accepts(one.rest, 'calc", "arguments": {"expr": "x"}}\n</tool_call>')
    assert not rest_accepts(one.rest, 'nope", "arguments": {}}\n</tool_call>')
    many = ToolCallConstraint(TOOLS, required=True, parallel=True)
    assert plan_jump(request(many), encode) is None


@pytest.mark.parametrize(
    ("constraint", "sampling"),
    [
        (ToolCallConstraint((CALC,), required=False), {}),  # auto: text may come first
        (ToolCallConstraint((CALC,)), {"logprobs": 2}),
        (ToolCallConstraint((CALC,)), {"presence_penalty": 0.5}),
        (ToolCallConstraint((CALC,)), {"frequency_penalty": 0.5}),
        (ToolCallConstraint((CALC,)), {"stop": ("name",)}),
        (ToolCallConstraint((CALC,)), {"stop_token_ids": (ord("<"),)}),
        (ToolCallConstraint((CALC,)), {"max_tokens": 10}),  # the budget ends in the head
    ],
)
def test_no_jump_where_generated_tokens_matter(
    constraint: ToolCallConstraint, sampling: dict[str, object]
) -> None:
    base = {"max_tokens": 200, **sampling}
    req = GenerateRequest((1, 2, 3), SamplingOptions(**base), constraint)  # type: ignore[arg-type]
    assert plan_jump(req, encode) is None


def test_a_forced_output_is_never_jumped() -> None:
    c = ToolCallConstraint((CALC,), required=True, parallel=False)
    assert plan_jump(replace(request(c), forced_output=(5, 6)), encode) is None


def test_the_engine_request_moves_the_head_into_the_prompt() -> None:
    c = ToolCallConstraint((CALC,), required=True, parallel=False)
    hint = CacheHint(0, 3, Tier.SYSTEM)
    req = replace(request(c), hints=(hint,))
    jump = plan_jump(req, encode)
    assert jump is not None
    sent = jump.engine_request(req)
    assert sent.prompt == (1, 2, 3, *jump.head)
    assert sent.sampling.max_tokens == 200 - len(jump.head)
    assert sent.hints == (hint,) and sent.constraint == c


_exprs = st.text(max_size=10)


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
@pytest.mark.parametrize("parallel", [False, True])
@settings(max_examples=25, deadline=None)
@given(exprs=st.lists(_exprs, min_size=1, max_size=3), noise=st.text(max_size=6))
def test_head_plus_rest_is_the_whole_grammar(
    fmt: str, parallel: bool, exprs: list[str], noise: str
) -> None:
    """What the renderer writes splits into the head and a string the rest accepts; and
    the rest accepts nothing the whole grammar would refuse."""
    c = ToolCallConstraint((CALC,), required=True, parallel=parallel, format=fmt)  # type: ignore[arg-type]
    jump = plan_jump(request(c), encode)
    assert jump is not None, fmt
    calls = [ToolCallPart("c", "calc", json.dumps({"expr": e})) for e in exprs]
    text = rendered(fmt, calls if parallel else calls[:1])
    assert text.startswith(jump.head_text)
    tail = text[len(jump.head_text) :]
    assert rest_accepts(jump.rest, tail) == accepts(c, text)
    assert accepts(c, text)
    for other in (tail + noise, tail[: len(tail) // 2] + noise, noise):
        if rest_accepts(jump.rest, other):
            assert accepts(c, jump.head_text + other)


def test_split_head_leaves_unknown_shapes_alone() -> None:
    fmt = {"type": "any_text"}
    assert split_head(fmt) == ("", fmt)
