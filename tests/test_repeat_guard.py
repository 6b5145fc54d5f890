"""``RepeatGuard``: a response's calls end at the first repeat, in every format and split."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import ParsedCall, ToolCallPart, tool_format
from agentrt.engine._formats import RepeatGuard, call_key
from agentrt.engine._messages import pieces_text
from tests.test_parsers import _calls, _cuts, calls_of, closing_braces, feed_index_of, run

FORMATS = ["hermes", "json", "llama3_json", "mistral"]


def parts(calls: list[tuple[str, dict[str, Any]]]) -> list[ToolCallPart]:
    return [ToolCallPart(f"c{i}", n, json.dumps(a)) for i, (n, a) in enumerate(calls)]


def until_repeat(calls: list[tuple[str, dict[str, Any]]]) -> tuple[int, int | None]:
    """How many calls come before the first repeat, and the repeat's index (None: none)."""
    seen: list[dict[str, Any]] = []
    for i, (name, args) in enumerate(calls):
        if {"n": name, "a": args} in seen:
            return i, i
        seen.append({"n": name, "a": args})
    return len(calls), None


# Duplicates made likely: calls drawn from a pool of three.
_repeating = _calls.flatmap(lambda pool: st.lists(st.sampled_from(pool), min_size=1, max_size=5))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)
@given(calls=_repeating, cuts=_cuts)
def test_events_stop_at_the_first_repeat_in_the_feed_that_closes_it(
    fmt: str, calls: list[tuple[str, dict[str, Any]]], cuts: list[int]
) -> None:
    bundle = tool_format(fmt)
    written = parts(calls)
    stream = pieces_text(bundle.assistant_body("", written))
    guard = RepeatGuard(bundle.parser())
    kept, repeat_at = until_repeat(calls)
    # Feed piece by piece, noting the feed after which the guard reports the repeat.
    per_feed, points = run(guard, stream, cuts)
    assert calls_of(per_feed) == calls[:kept]
    if repeat_at is None:
        assert guard.repeat is None
        return
    assert guard.repeat is not None
    assert (guard.repeat.name, guard.repeat.arguments) == calls[repeat_at]
    # Nothing after the feed that closed the repeat yields events.
    closed_in = feed_index_of(points, closing_braces(fmt, stream, written)[repeat_at])
    assert all(not evs for evs in per_feed[closed_in + 1 :])


def test_json_equal_arguments_are_the_same_call_and_numbers_keep_their_type() -> None:
    a = ParsedCall(0, "f", {"x": 1, "y": [1, {"z": "é"}]}, "")
    b = ParsedCall(1, "f", {"y": [1, {"z": "é"}], "x": 1}, "")
    c = ParsedCall(2, "f", {"x": 1.0, "y": [1, {"z": "é"}]}, "")
    assert call_key(a) == call_key(b)
    assert call_key(a) != call_key(c)


def test_the_guard_reports_stopped_only_after_a_repeat() -> None:
    body = '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    guard = RepeatGuard(tool_format("hermes").parser())
    assert len(guard.feed(body)) == 1 and guard.repeat is None
    assert not [e for e in guard.feed("\n" + body) if isinstance(e, ParsedCall)]
    assert guard.repeat is not None
    assert guard.feed("\nafter") == [] and guard.finish() == []
