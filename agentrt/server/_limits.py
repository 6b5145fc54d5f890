"""Bounds on what one request may make the server compute, checked before the work starts.

Everything heavy a chat request causes grows with two things a client controls: the
JSON schemas it sends (tools' parameters, ``response_format``) and the number of
messages. Schema checking, prompt rendering and grammar building each cost time per
schema value, and recursion in JSON encoders and schema validators fails on deep
nesting. So, before any of them runs:

* ``SchemaBudget`` walks every schema of a request once, iteratively (no recursion),
  stopping as soon as a bound is crossed: nesting depth per schema, values in all
  schemas together (each tool costs one value on top of its parameters). A walk never
  visits more than the budget, whatever the body holds.
* ``check_counts`` refuses a message list that could not fit the context even if each
  message rendered to its minimum of tokens, before any message is validated.
* ``token_floor`` proves a text too long for the context by encoding only as much of it
  as that takes, so a multi-megabyte message costs a context's worth of tokenizing
  (``check_prompt_length`` applies it to a chat request).

Both refuse with a 400 naming the field, never a 500 and never a stall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any

import orjson

from agentrt.engine import ChatMessage, ToolSchema

from ._errors import APIError

# ``ServerConfig``'s defaults: generous for real tool sets (a hundred tools of a dozen
# properties), while checking and compiling that much stays well under a second.
DEFAULT_SCHEMA_DEPTH = 32
DEFAULT_SCHEMA_NODES = 5000

# ``token_floor``: piece size (characters), and tokens a cut between pieces may add.
_PIECE = 16384
_CUT_SLACK = 16  # a special-token string cut in two: a dozen ordinary tokens
# Up to this many characters per context token, rendering the whole prompt is cheap.
_CHEAP_CHARS_PER_TOKEN = 4

# Every rendered message opens and closes its turn with one special token each, so a
# message costs at least this many prompt tokens (tool calls likewise: their tags).
MIN_TOKENS_PER_ITEM = 2


class SchemaBudget:
    """The schema values one request may still send.

    Invariant: ``used <= max_nodes`` after every successful ``charge``; a ``charge`` that
    would cross a bound raises instead, having visited at most ``max_nodes + 1`` values.
    """

    __slots__ = ("max_depth", "max_nodes", "used")

    def __init__(self, max_depth: int, max_nodes: int) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.used = 0

    def charge(self, where: str, schema: Any, extra: int = 0) -> None:
        """Count the values of ``schema`` (sent as field ``where``) plus ``extra``.

        Raises:
            APIError: 400 ``schema_too_deep`` naming the deepest offending path, or
                ``schema_too_large`` when the request's schemas hold too many values.
        """
        self._add(where, 1 + extra)
        # (value, depth, path from ``where``) — depth counts JSON objects and arrays.
        stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(schema, 1, ())]
        while stack:
            value, depth, path = stack.pop()
            if isinstance(value, dict):
                children: Any = value.items()
            elif isinstance(value, list):
                children = enumerate(value)
            else:
                continue
            if depth > self.max_depth:
                at = _dotted(where, path)
                raise APIError(
                    400,
                    f"{where}: nested more than {self.max_depth} levels deep (at {at})",
                    param=where,
                    code="schema_too_deep",
                )
            for key, child in children:
                self._add(where, 1)
                stack.append((child, depth + 1, (*path, key)))

    def _add(self, where: str, n: int) -> None:
        self.used += n
        if self.used > self.max_nodes:
            raise APIError(
                400,
                f"{where}: the request's JSON schemas (tools and response_format together) "
                f"hold more than {self.max_nodes} values; send fewer or smaller tools",
                param=where,
                code="schema_too_large",
            )


def check_counts(data: dict[str, Any], max_model_len: int) -> None:
    """Refuse, before validation, a chat body with more items than the context can hold.

    Validating costs time per object while holding the GIL (no other thread, the event
    loop included, runs meanwhile), so the counts are bounded by what could ever fit:
    each message and tool call takes at least ``MIN_TOKENS_PER_ITEM`` tokens, and no
    request needs more content parts than the context has tokens.

    Raises:
        APIError: 400 ``context_length_exceeded`` naming ``messages`` (or the content
            whose parts overflow).
    """
    messages = data.get("messages")
    if not isinstance(messages, list):
        return  # the model's validation names the problem
    items = len(messages)
    parts = 0
    for i, m in enumerate(messages):
        if items * MIN_TOKENS_PER_ITEM >= max_model_len:
            raise APIError(
                400,
                f"messages: {items} or more messages and tool calls cannot fit the context "
                f"of {max_model_len} tokens (each takes at least {MIN_TOKENS_PER_ITEM})",
                param="messages",
                code="context_length_exceeded",
            )
        if not isinstance(m, dict):
            continue
        calls, content = m.get("tool_calls"), m.get("content")
        items += len(calls) if isinstance(calls, list) else 0
        parts += len(content) if isinstance(content, list) else 0
        if parts > max_model_len:
            where = f"messages[{i}].content"
            raise APIError(
                400,
                f"{where}: the request has more content parts than the context of "
                f"{max_model_len} tokens could hold",
                param=where,
                code="context_length_exceeded",
            )


def token_floor(texts: Iterable[str], encode: Callable[[str], Sized], limit: int) -> int:
    """At most the number of tokens ``texts`` encode to, counted only until it reaches
    ``limit``: the cost is bounded by the limit, not by the length of the texts.

    Long texts are encoded in pieces of ``_PIECE`` characters; a cut can split at most
    one token into a few, so each piece's count is lowered by ``_CUT_SLACK``.
    """
    total = 0
    for text in texts:
        for start in range(0, len(text), _PIECE):
            total += max(0, len(encode(text[start : start + _PIECE])) - _CUT_SLACK)
            if total >= limit:
                return total
    return total


def check_prompt_length(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSchema],
    encode: Callable[[str], Sized],
    max_model_len: int,
) -> None:
    """Refuse a prompt that is surely too long without tokenizing all of it (see
    ``token_floor``). A prompt of up to a few characters per context token is cheap to
    render whole; a multi-megabyte one is not.

    Raises:
        APIError: 400 ``context_length_exceeded`` naming ``messages``.
    """
    texts = [m.content for m in messages]
    texts += [c.arguments for m in messages for c in m.tool_calls]
    texts += [t.description + orjson.dumps(dict(t.parameters)).decode() for t in tools]
    if sum(map(len, texts)) <= _CHEAP_CHARS_PER_TOKEN * max_model_len:
        return
    floor = token_floor(texts, encode, max_model_len)
    if floor >= max_model_len:
        raise APIError(
            400,
            f"messages: the prompt has at least {floor} tokens, more than the context of "
            f"{max_model_len} tokens",
            param="messages",
            code="context_length_exceeded",
        )


def _dotted(where: str, path: tuple[str | int, ...]) -> str:
    out = where
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out
