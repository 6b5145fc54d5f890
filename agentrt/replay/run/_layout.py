"""Forced outputs: the exact tokens each replayed LLM call emits, tool-call markup included.

A token-count output becomes filler from the stable vocabulary with each tool call's
markup placed so that the call's JSON closes on the recorded token::

    index  0 .. pre-1  pre    close_j = at_j - 1                   n-1
           [head words]["\\n"<tool_call>\\n{"name": N, ...}}\\n</tool_call>]...[<|im_end|>]
                        `-- separator, only when something precedes the call

The layout is the one a chat framework re-renders unchanged (text, a newline, the calls
joined by newlines, nothing after them), so the baseline's re-rendered prompts only
diverge where the recorded positions force filler between or after calls. When the
recorded length cannot hold the markup, the output grows and later calls close later;
``ForcedOutput`` counts both. A text output (SWE) is the recorded text with each tool
call's JSON re-serialized to carry its replay key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agentrt._parsers import HermesParser, MalformedCall, ParsedCall
from agentrt.engine import ChatTokenizer

from ._vocab import StableVocab

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_OPEN = "<tool_call>"
# What an unmatched "<tool_call>" in recorded text becomes, so the parser reads it as text
# (as the recorded agent did) and the replay makes no call the trace did not make.
_NEUTRAL_OPEN = "<tool_call >"


class LayoutError(ValueError):
    """A recorded output cannot be replayed as recorded (names the mismatch)."""


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A tool call to place: its name, replay key, and recorded ``at`` (None: the end)."""

    name: str
    key: str
    at: int | None = None


@dataclass(frozen=True, slots=True)
class ForcedOutput:
    """The tokens of one call and where the parser sees each tool call.

    ``closes[j]``: output tokens emitted when call ``j``'s JSON is complete (the
    trace's ``at``). ``lengthened``: tokens beyond the recorded length. ``shifted``: calls
    that close later than recorded. ``neutralized``: ``<tool_call>`` tags of recorded text
    that were not tool calls of the trace, changed so the parser reads them as text.
    """

    ids: tuple[int, ...]
    closes: tuple[int, ...]
    lengthened: int = 0
    shifted: int = 0
    neutralized: int = 0


def markup_text(name: str, arguments: dict[str, Any]) -> str:
    """One call block, as the Hermes template writes it (canonical ``json.dumps``)."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{_OPEN}\n{body}\n</tool_call>"


def _close_index(tok: ChatTokenizer, ids: Sequence[int], char_index: int) -> int:
    """Index of the token that holds character ``char_index`` of ``decode(ids)``."""
    for k in range(len(ids)):
        if len(tok.decode(ids[: k + 1])) > char_index:
            return k
    raise AssertionError("the markup's closing brace is past its own text")


@dataclass(frozen=True, slots=True)
class _Block:
    ids: tuple[int, ...]
    close: int  # index of the JSON's last token within ids


def _block(tok: ChatTokenizer, text: str) -> _Block:
    ids = tuple(tok.encode(text))
    brace = text.rindex("}")
    return _Block(ids, _close_index(tok, ids, brace))


def token_output(
    tok: ChatTokenizer,
    vocab: StableVocab,
    n_tokens: int,
    calls: Sequence[PlannedCall],
    filler: Sequence[int],
) -> ForcedOutput:
    """Forced tokens of a token-count output: ``n_tokens`` in all (the last is ``<|im_end|>``)
    unless the markup needs more.

    Args:
        tok: the engine's tokenizer.
        vocab: the stable vocabulary filler is drawn from.
        n_tokens: the recorded output length (>= 1).
        calls: the tool calls in order, with their recorded positions.
        filler: vocabulary indices to draw filler from, in order (at least ``n_tokens``).
    """
    bare = [_block(tok, markup_text(c.name, {"id": c.key})) for c in calls]
    with_sep = [_block(tok, "\n" + markup_text(c.name, {"id": c.key})) for c in calls]
    targets = _targets(calls, with_sep, n_tokens)
    words = iter(filler)
    out: list[int] = []
    closes: list[int] = []
    shifted = 0
    for j, target in enumerate(targets):
        if not out:
            gap = 0 if target is None else target - bare[j].close
            if gap >= 2:
                out += _fill(vocab, words, gap - 1, head=True)
                block = with_sep[j]
            else:
                # One free token cannot hold both text and the newline: text it is.
                out += _fill(vocab, words, max(gap, 0), head=True)
                block = bare[j]
        else:
            block = with_sep[j]
            gap = 0 if target is None else target - (len(out) + block.close)
            out += _fill(vocab, words, max(gap, 0), head=False)
        close = len(out) + block.close
        if target is not None and close > target:
            shifted += 1
        closes.append(close + 1)
        out += block.ids
    rest = n_tokens - 1 - len(out)
    out += _fill(vocab, words, max(rest, 0), head=not out)
    out.append(tok.im_end_id)
    return ForcedOutput(tuple(out), tuple(closes), max(0, len(out) - n_tokens), shifted)


def _targets(
    calls: Sequence[PlannedCall], blocks: Sequence[_Block], n_tokens: int
) -> list[int | None]:
    """0-based index each call's JSON should close on. ``at=None`` calls at the end of the
    output sit back to back just before ``<|im_end|>``; one followed by a positioned call
    has no target (None: as early as possible)."""
    targets: list[int | None] = [None if c.at is None else c.at - 1 for c in calls]
    end = n_tokens - 1
    for j in range(len(calls) - 1, -1, -1):
        if calls[j].at is not None:
            break
        start = end - len(blocks[j].ids)
        targets[j] = start + blocks[j].close
        end = start
    return targets


def _fill(vocab: StableVocab, words: Iterator[int], n: int, *, head: bool) -> list[int]:
    if n <= 0:
        return []
    taken = [next(words, 0) for _ in range(n)]
    return vocab.ids(taken, head=head)


def text_output(tok: ChatTokenizer, text: str, calls: Sequence[PlannedCall]) -> ForcedOutput:
    """Forced tokens of a text output: the recorded text, each tool call's JSON rewritten
    to ``{"name": N, "arguments": {"id": key, ...recorded arguments}}``, then ``<|im_end|>``.

    Call blocks of the text that are not tool calls of the trace (a final turn's dropped
    calls, blocks the recorded agent could not parse) are neutralized: the agent must make
    exactly the trace's calls.

    Raises:
        LayoutError: the text's call blocks do not match ``calls`` (count or names).
    """
    pieces: list[str] = []
    neutralized = 0
    k = 0
    pos = 0

    def plain(s: str) -> str:
        nonlocal neutralized
        neutralized += s.count(_OPEN)
        return s.replace(_OPEN, _NEUTRAL_OPEN)

    for m in _BLOCK.finditer(text):
        pieces.append(plain(text[pos : m.start()]))
        pos = m.end()
        name, args = _parse_block(m.group(1))
        if k < len(calls) and name == calls[k].name:
            merged = {"id": calls[k].key, **{a: v for a, v in (args or {}).items() if a != "id"}}
            pieces.append(markup_text(calls[k].name, merged))
            k += 1
        else:
            pieces.append(plain(m.group(0)))
    pieces.append(plain(text[pos:]))
    if k != len(calls):
        missing = ", ".join(c.name for c in calls[k:])
        raise LayoutError(
            f"the output text holds {k} of its {len(calls)} tool calls (missing: {missing})"
        )
    ids = (*tok.encode("".join(pieces)), tok.im_end_id)
    closes = tuple(at for at, c in call_positions(tok, ids) if isinstance(c, ParsedCall))
    return ForcedOutput(ids, closes, neutralized=neutralized)


def _parse_block(body: str) -> tuple[str | None, dict[str, Any] | None]:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None, None
    args = obj.get("arguments", {})
    return obj["name"], args if isinstance(args, dict) else None


def call_positions(
    tok: ChatTokenizer, ids: Sequence[int]
) -> list[tuple[int, ParsedCall | MalformedCall]]:
    """Where the orchestrator's parser completes each call when ``ids`` stream one token at
    a time: ``(tokens emitted so far, call)`` pairs, in order."""
    parser = HermesParser()
    markers = {tok.im_end_id, tok.im_start_id}
    found: list[tuple[int, ParsedCall | MalformedCall]] = []
    pending: list[int] = []
    for k, tid in enumerate(ids):
        if tid not in markers:
            pending.append(tid)
        text = tok.decode(pending)
        if text.endswith("\ufffd"):
            continue  # half a UTF-8 character: the streamer holds it back too
        pending.clear()
        for ev in parser.feed(text):
            if isinstance(ev, ParsedCall | MalformedCall):
                found.append((k + 1, ev))
    tail = [ev for ev in parser.finish() if isinstance(ev, ParsedCall | MalformedCall)]
    return found + [(len(ids), ev) for ev in tail]
