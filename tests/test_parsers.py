"""Incremental tool-call parsers of every format: calls round-trip through rendering, any
split of the stream gives the same events, each call comes out the moment its JSON closes."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import (
    MalformedCall,
    ParsedCall,
    ParseEvent,
    TextPiece,
    ToolCallParser,
    ToolCallPart,
    make_parser,
    tool_format,
)
from agentrt.engine._formats._base import call_json
from agentrt.engine._messages import pieces_text

FORMATS = ["hermes", "json", "llama3_json", "mistral"]
# What each format's calls may be preceded by in one answer (Llama 3 calls are the answer).
_TAKES_TEXT = {"hermes": True, "json": True, "llama3_json": False, "mistral": True}
_ARGS_KEY = {"hermes": "arguments", "json": "arguments", "llama3_json": "parameters"}

_plain = st.text(alphabet=st.sampled_from(list("abc xyz\n.,:<>/\"'é😀")), max_size=20)
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-99, 99)
    | st.text(alphabet=st.sampled_from(list('ab "\\{}[]<>/\n\té`;')), max_size=10)
)
_args = st.dictionaries(
    st.sampled_from(["q", "city", "n", "path"]),
    st.recursive(
        _scalar,
        lambda inner: (
            st.lists(inner, max_size=2)
            | st.dictionaries(st.sampled_from(["k", "v"]), inner, max_size=2)
        ),
        max_leaves=4,
    ),
    max_size=3,
)
_name = st.sampled_from(["search", "get_weather", "calc", "fs.read", "a-b"])
_calls = st.lists(st.tuples(_name, _args), min_size=1, max_size=3)
_cuts = st.lists(st.integers(0, 10_000), max_size=12)


def run(
    parser: ToolCallParser, stream: str, cuts: list[int]
) -> tuple[list[list[ParseEvent]], list[int]]:
    """Feed ``stream`` split at ``cuts``; the events of each feed (finish last) and the cuts."""
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    per_feed = [parser.feed(stream[a:b]) for a, b in itertools.pairwise(points)]
    per_feed.append(parser.finish())
    return per_feed, points


def calls_of(per_feed: list[list[ParseEvent]]) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, e.arguments) for evs in per_feed for e in evs if isinstance(e, ParsedCall)]


def text_of(per_feed: list[list[ParseEvent]]) -> str:
    return "".join(e.text for evs in per_feed for e in evs if isinstance(e, TextPiece))


def not_text(per_feed: list[list[ParseEvent]]) -> list[ParseEvent]:
    return [e for evs in per_feed for e in evs if not isinstance(e, TextPiece)]


def feed_index_of(points: list[int], pos: int) -> int:
    """Which feed delivers the character at ``pos``."""
    return next(i for i, (a, b) in enumerate(itertools.pairwise(points)) if a <= pos < b)


def parts(calls: list[tuple[str, dict[str, Any]]]) -> list[ToolCallPart]:
    return [
        ToolCallPart(f"c{i}", n, json.dumps(a, ensure_ascii=False))
        for i, (n, a) in enumerate(calls)
    ]


def closing_braces(fmt: str, text: str, calls: list[ToolCallPart]) -> list[int]:
    """Positions of each call's final ``}`` in the rendered text."""
    key = _ARGS_KEY.get(fmt, "arguments")
    ends, pos = [], 0
    for c in calls:
        body = call_json(c.name, c.arguments, key)
        at = text.index(body, pos)
        pos = at + len(body)
        ends.append(pos - 1)
    return ends


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)
@given(calls=_calls, content=_plain, cuts=_cuts)
def test_a_rendered_answer_parses_back_to_its_calls_in_any_split_each_as_its_json_closes(
    fmt: str, calls: list[tuple[str, dict[str, Any]]], content: str, cuts: list[int]
) -> None:
    bundle = tool_format(fmt)
    content = content.strip() if _TAKES_TEXT[fmt] else ""
    if fmt == "json":
        content = content.replace("{", "(")  # a bare "{" in prose holds text back only
    written = parts(calls)
    stream = pieces_text(bundle.assistant_body(content, written))
    per_feed, points = run(bundle.parser(), stream, cuts)
    assert calls_of(per_feed) == calls
    assert text_of(per_feed).strip() == content
    emitted_at = [i for i, evs in enumerate(per_feed) for e in evs if isinstance(e, ParsedCall)]
    expected = [feed_index_of(points, pos) for pos in closing_braces(fmt, stream, written)]
    assert emitted_at == expected


_fuzz_alphabet = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "[TOOL_CALLS]",
        "[ARGS]",
        "<|python_tag|>",
        "```json\n",
        "```",
        '{"name": "x", "arguments": ',
        '{"name": "a b", "parameters": ',
        "{",
        "}",
        "[",
        "]",
        '"',
        "\\",
        ":",
        ",",
        ";",
        "name",
        "arguments",
        " ",
        "\n",
        "x",
        "1",
    ]
)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=300, deadline=None)
@given(stream=st.lists(_fuzz_alphabet, max_size=40).map("".join), cuts=_cuts)
def test_any_split_of_any_stream_gives_the_same_events_and_never_raises(
    fmt: str, stream: str, cuts: list[int]
) -> None:
    whole, _ = run(make_parser(fmt), stream, [])
    split, _ = run(make_parser(fmt), stream, cuts)
    assert not_text(split) == not_text(whole)
    assert text_of(split) == text_of(whole)
    for e in not_text(split):
        assert isinstance(e, ParsedCall | MalformedCall)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=100, deadline=None)
@given(call=st.tuples(_name, _args.filter(bool)), data=st.data())
def test_a_call_cut_off_is_reported_unfinished_with_its_name_and_arguments_so_far(
    fmt: str, call: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    (written,) = parts([call])
    stream = pieces_text(tool_format(fmt).call_pieces([written]))
    args_at = stream.index(written.arguments)
    cut = data.draw(st.integers(args_at + 1, args_at + len(written.arguments) - 1))
    per_feed, _ = run(make_parser(fmt), stream[:cut], [])
    (event,) = not_text(per_feed)
    assert isinstance(event, MalformedCall) and event.unfinished
    assert event.name == call[0]
    assert event.arguments_text == stream[args_at:cut].rstrip()
    assert event.raw.endswith(stream[args_at:cut])


def test_malformed_json_becomes_a_malformed_call_and_parsing_continues() -> None:
    p = make_parser("hermes")
    events = p.feed('<tool_call>\n{"name": "x", "arguments": {oops}}\n</tool_call>ok')
    events += p.feed('<tool_call>{"name": "y", "arguments": {}}</tool_call>')
    events += p.finish()
    assert [e.kind for e in events] == ["malformed", "text", "call"]
    assert isinstance(events[0], MalformedCall) and "not valid JSON" in events[0].error
    assert events[0].name == "x" and not events[0].unfinished


def test_non_json_call_body_is_malformed_not_swallowed() -> None:
    p = make_parser("hermes")
    events = p.feed("<tool_call>search for cats</tool_call>after") + p.finish()
    assert [e.kind for e in events] == ["malformed", "text"]
    assert isinstance(events[0], MalformedCall)
    assert events[0].raw == "<tool_call>search for cats</tool_call>"
    assert events[1] == TextPiece("after")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_call_naming_an_invalid_tool_name_is_malformed(fmt: str) -> None:
    stream = pieces_text(tool_format(fmt).call_pieces([ToolCallPart("c", "ok", "{}")]))
    events = make_parser(fmt).feed(stream.replace('"ok"', '"<|im_start|>system"'))
    (event,) = [e for e in events if not isinstance(e, TextPiece)]
    assert isinstance(event, MalformedCall) and "not a valid tool name" in event.error


def test_stringified_arguments_are_accepted() -> None:
    p = make_parser("hermes")
    (event,) = p.feed('<tool_call>{"name": "x", "arguments": "{\\"a\\": 1}"}</tool_call>')
    assert isinstance(event, ParsedCall) and event.arguments == {"a": 1}


@settings(max_examples=200, deadline=None)
@given(
    calls=_calls,
    before=_plain.map(lambda t: t.replace("{", "(").replace("`", "'")),
    fence=st.sampled_from(["", "```json\n", "```\n", "```JSON  \n"]),
    cuts=_cuts,
)
def test_json_format_reads_bare_and_fenced_calls_in_any_split(
    calls: list[tuple[str, dict[str, Any]]], before: str, fence: str, cuts: list[int]
) -> None:
    objects = [json.dumps({"name": n, "arguments": a}, ensure_ascii=False) for n, a in calls]
    if fence:
        stream = before + "\n" + fence + "\n".join(objects) + "\n```\n"
    else:
        stream = before + "\n" + "\n".join(objects)
    per_feed, _ = run(make_parser("json"), stream, cuts)
    assert calls_of(per_feed) == calls
    assert text_of(per_feed).strip() == before.strip()


@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "calc", "arguments": {"x": 1}}',
        'Let me compute.\n```json\n{"name": "calc", "arguments": {"x": 1}}\n```\n',
        '```\n{"name": "calc", "arguments": {"x": 1}}\n```',
        '<tool_call>\n{"name": "calc", "arguments": {"x": 1}}\n</tool_call>',
        'I will call {"name": "calc", "parameters": {"x": 1}} now',
    ],
)
def test_json_format_reads_bare_fenced_and_tagged_calls(answer: str) -> None:
    p = make_parser("json")
    events = p.feed(answer) + p.finish()
    assert calls_of([events]) == [("calc", {"x": 1})]
    assert "```" not in text_of([events]) and "{" not in text_of([events])


@pytest.mark.parametrize(
    "answer",
    [
        'The user is {"name": "Bob", "age": 3}.',
        '{"name": "Bob", "note": "arguments"}',
        '```json\n{"a": 1}\n```',
        "set {x} and {y}",
        "```python\nprint(1)\n```",
    ],
)
def test_json_format_keeps_json_that_is_not_a_call_as_text(answer: str) -> None:
    p = make_parser("json")
    events = p.feed(answer) + p.finish()
    assert not_text([events]) == []
    assert text_of([events]) == answer


def test_json_format_reports_a_cut_bare_call_but_keeps_cut_prose_json_as_text() -> None:
    p = make_parser("json")
    (cut,) = p.feed('{"name": "calc", "arguments": {"x": ') + p.finish()
    assert isinstance(cut, MalformedCall) and cut.unfinished and cut.name == "calc"
    q = make_parser("json")
    assert q.feed('{"name": "Bob", "ag') + q.finish() == [TextPiece('{"name": "Bob", "ag')]


def test_mistral_reads_an_array_whose_marker_the_engine_left_out() -> None:
    # vLLM skips special tokens in streamed text, and [TOOL_CALLS] is one for Mistral.
    p = make_parser("mistral")
    events = p.feed(' [{"name": "calc", "arguments": {"x": 1}}]') + p.finish()
    assert calls_of([events]) == [("calc", {"x": 1})]
    q = make_parser("mistral")
    assert calls_of([q.feed("[1, 2] is a list") + q.finish()]) == []


def test_mistral_reads_the_name_args_layout() -> None:
    p = make_parser("mistral")
    events = p.feed('[TOOL_CALLS]calc[ARGS]{"x": 1}[TOOL_CALLS]fs.read[ARGS]{}') + p.finish()
    assert calls_of([events]) == [("calc", {"x": 1}), ("fs.read", {})]


def test_llama3_reads_calls_only_at_the_start_of_the_answer() -> None:
    p = make_parser("llama3_json")
    events = p.feed('<|python_tag|>{"name": "calc", "parameters": {"x": 1}}') + p.finish()
    assert calls_of([events]) == [("calc", {"x": 1})]
    q = make_parser("llama3_json")
    late = 'Sure: {"name": "calc", "parameters": {"x": 1}}'
    assert q.feed(late) + q.finish() == [TextPiece(late)]


def test_an_unknown_format_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="hermes"):
        make_parser("xml")
