"""Incremental tool-call parsers: any split gives the same calls, each as soon as it closes."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt._parsers import (
    HermesParser,
    Llama3JsonParser,
    MalformedCall,
    MistralParser,
    ParsedCall,
    ParseEvent,
    TextPiece,
    ToolCallParser,
)

_plain = st.text(alphabet=st.sampled_from(list("abc xyz\n.,:<>/{}\"'é😀")), max_size=20).filter(
    lambda s: "<tool_call>" not in s and not s.endswith("<")
)
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-99, 99)
    | st.text(alphabet=st.sampled_from(list('ab "\\{}[]<>/\n\té')), max_size=10)
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
_call = st.tuples(st.sampled_from(["search", "get_weather", "calc"]), _args)


def run(parser: ToolCallParser, stream: str, cuts: list[int]) -> list[list[ParseEvent]]:
    """Feed ``stream`` split at ``cuts``; return the events of each feed (finish last)."""
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    per_feed = [parser.feed(stream[a:b]) for a, b in itertools.pairwise(points)]
    per_feed.append(parser.finish())
    return per_feed, points


def calls_of(per_feed: list[list[ParseEvent]]) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, e.arguments) for evs in per_feed for e in evs if isinstance(e, ParsedCall)]


def text_of(per_feed: list[list[ParseEvent]]) -> str:
    return "".join(e.text for evs in per_feed for e in evs if isinstance(e, TextPiece))


def feed_index_of(points: list[int], pos: int) -> int:
    """Which feed delivers the character at ``pos``."""
    return next(i for i, (a, b) in enumerate(itertools.pairwise(points)) if a <= pos < b)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(_plain, _call), max_size=4),
    _plain,
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_hermes_any_split_gives_same_calls_each_when_its_json_closes(
    parts: list[tuple[str, tuple[str, dict[str, Any]]]], tail: str, cuts: list[int]
) -> None:
    stream, ends, text = "", [], ""
    for before, (name, args) in parts:
        stream += before + "<tool_call>\n"
        stream += json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
        ends.append(len(stream) - 1)  # the closing brace
        stream += "\n</tool_call>"
        text += before
    stream += tail
    text += tail
    per_feed, points = run(HermesParser(), stream, cuts)
    assert calls_of(per_feed) == [c for _, c in parts]
    assert text_of(per_feed) == text
    emitted_at = [i for i, evs in enumerate(per_feed) for e in evs if isinstance(e, ParsedCall)]
    assert emitted_at == [feed_index_of(points, pos) for pos in ends]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_call, min_size=1, max_size=3),
    st.sampled_from(["", "<|python_tag|>", "  "]),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_llama3_any_split_gives_same_calls(
    calls: list[tuple[str, dict[str, Any]]], prefix: str, cuts: list[int]
) -> None:
    stream = prefix + "; ".join(json.dumps({"name": n, "parameters": a}) for n, a in calls)
    per_feed, _ = run(Llama3JsonParser(), stream, cuts)
    assert calls_of(per_feed) == calls


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_call, min_size=1, max_size=3),
    _plain,
    st.booleans(),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_mistral_any_split_gives_same_calls(
    calls: list[tuple[str, dict[str, Any]]], before: str, array_form: bool, cuts: list[int]
) -> None:
    if array_form:
        body = json.dumps([{"name": n, "arguments": a} for n, a in calls])
        stream = before + "[TOOL_CALLS]" + body
    else:
        stream = before + "".join(f"[TOOL_CALLS]{n}[ARGS]{json.dumps(a)}" for n, a in calls)
    per_feed, _ = run(MistralParser(), stream, cuts)
    assert calls_of(per_feed) == calls
    assert text_of(per_feed) == before


_fuzz_alphabet = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "[TOOL_CALLS]",
        "[ARGS]",
        "<|python_tag|>",
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


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_fuzz_alphabet, max_size=40).map("".join), st.lists(st.integers(0, 10_000), max_size=8)
)
def test_fuzzed_input_never_raises(stream: str, cuts: list[int]) -> None:
    for parser in (HermesParser(), Llama3JsonParser(), MistralParser()):
        per_feed, _ = run(parser, stream, cuts)
        for evs in per_feed:
            for e in evs:
                assert isinstance(e, TextPiece | ParsedCall | MalformedCall)


def test_malformed_json_becomes_a_malformed_call_and_parsing_continues() -> None:
    p = HermesParser()
    events = p.feed('<tool_call>\n{"name": "x", "arguments": {oops}}\n</tool_call>ok')
    events += p.feed('<tool_call>{"name": "y", "arguments": {}}</tool_call>')
    events += p.finish()
    kinds = [e.kind for e in events]
    assert kinds == ["malformed", "text", "call"]
    assert isinstance(events[0], MalformedCall) and "not valid JSON" in events[0].error


def test_non_json_call_body_is_malformed_not_swallowed() -> None:
    p = HermesParser()
    events = p.feed("<tool_call>search for cats</tool_call>after") + p.finish()
    assert [e.kind for e in events] == ["malformed", "text"]
    assert events[1].text == "after"  # type: ignore[union-attr]


def test_unfinished_call_is_reported_at_finish() -> None:
    p = HermesParser()
    assert p.feed('<tool_call>{"name": "x", "argu') == []
    (event,) = p.finish()
    assert isinstance(event, MalformedCall) and "not finished" in event.error


def test_stringified_arguments_are_accepted() -> None:
    p = HermesParser()
    (event,) = p.feed('<tool_call>{"name": "x", "arguments": "{\\"a\\": 1}"}</tool_call>')
    assert isinstance(event, ParsedCall) and event.arguments == {"a": 1}
