"""``ToolFormat``: everything about one way of writing tool calls, in one object.

A format is a bundle of four things that must agree with each other:

- how the tools are listed in the system turn (what the model is taught),
- how calls and their results are rendered back into the conversation,
- the structured-output grammar that constrains the model to well-formed calls,
- the incremental parser that reads calls out of the streamed text.

Tests hold them together: rendering a call and parsing it back round-trips, and the
grammar accepts what the renderer writes. The chat turns around them (ChatML markers)
are the chat renderer's business, not the format's.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._messages import ChatMessage, Pieces, ToolCallPart, dumps
from .._types import ToolCallConstraint, ToolFormatName, ToolSchema
from ._events import ToolCallParser


class ToolFormat(abc.ABC):
    """One tool-call format (a stateless singleton; see ``tool_format(name)``).

    Invariants (tested for every format): for any calls, ``parser()`` fed the text of
    ``assistant_body(content, calls)`` in any split yields exactly those calls; the
    grammar of ``structural_tag`` accepts that text when the content is empty.
    """

    name: ClassVar[ToolFormatName]
    models: ClassVar[str]
    """Which models write this format (for documentation)."""

    @abc.abstractmethod
    def tools_block(self, system: str, tools: Sequence[ToolSchema]) -> Pieces:
        """The body of the system turn when tools are listed (``system`` is its prompt)."""

    @abc.abstractmethod
    def call_pieces(self, calls: Sequence[ToolCallPart]) -> Pieces:
        """The calls of one assistant message, exactly as the model is taught to write them."""

    def assistant_body(self, content: str, calls: Sequence[ToolCallPart]) -> Pieces:
        """An assistant message's body: its text, a newline, then its calls."""
        if not calls:
            return (content,)
        if not content:
            return self.call_pieces(calls)
        return (content, "\n", *self.call_pieces(calls))

    @abc.abstractmethod
    def result_turn(self, msg: ChatMessage) -> tuple[str, Pieces]:
        """The role and body of the turn that carries one tool result back to the model."""

    @abc.abstractmethod
    def structural_tag(self, constraint: ToolCallConstraint) -> dict[str, Any]:
        """xgrammar's structural tag (as vLLM's structured outputs take it) for the calls."""

    @abc.abstractmethod
    def parser(self) -> ToolCallParser:
        """A fresh incremental parser for one response."""


def tool_json(tool: ToolSchema) -> dict[str, Any]:
    """The OpenAI-style function object a tool is listed as."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def call_json(name: str, arguments: str, args_key: str = "arguments") -> str:
    """``{"name": ..., "<args_key>": ...}`` with the arguments' text kept verbatim.

    The name is a valid tool name (``ToolCallPart`` checks it), so it needs no escaping.
    """
    return f'{{"name": {dumps(name)}, "{args_key}": {arguments}}}'


def call_tags(
    tools: Sequence[ToolSchema], begin: str, end: str, args_key: str = "arguments"
) -> list[dict[str, Any]]:
    """One grammar tag per tool: ``begin`` + the call's head naming the tool, the
    arguments as that tool's schema, then ``}`` + ``end``. The head is spelled exactly
    as ``call_json`` writes it, so grammar and renderer agree to the byte."""
    return [
        {
            "type": "tag",
            "begin": f'{begin}{{"name": {dumps(t.name)}, "{args_key}": ',
            "content": {"type": "json_schema", "json_schema": dict(t.parameters)},
            "end": f"}}{end}",
        }
        for t in tools
    ]


def calls_only(
    tags: list[dict[str, Any]], *, separator: str, parallel: bool, end_after_call: bool = False
) -> dict[str, Any]:
    """Nothing but calls, at least one (only the first when not ``parallel``).

    ``end_after_call``: a separator may also end the calls, so after writing it the model
    still chooses between another call and the end of the response.
    """
    calls = {
        "type": "tags_with_separator",
        "tags": tags,
        "separator": separator,
        "at_least_one": True,
        "stop_after_first": not parallel,
    }
    if not (parallel and end_after_call and separator):
        return calls
    trailing = {"type": "optional", "content": {"type": "const_string", "value": separator}}
    return {"type": "sequence", "elements": [calls, trailing]}


def calls_in_text(
    tags: list[dict[str, Any]], *, triggers: list[str], parallel: bool
) -> dict[str, Any]:
    """Free text in which every call a trigger opens must be well-formed."""
    return {
        "type": "triggered_tags",
        "triggers": triggers,
        "tags": tags,
        "at_least_one": False,
        "stop_after_first": not parallel,
    }


def calls_grammar(
    constraint: ToolCallConstraint,
    tags: list[dict[str, Any]],
    *,
    triggers: list[str],
    separator: str,
) -> dict[str, Any]:
    """The usual shape: with ``required``, nothing but calls (the grammar then ends);
    otherwise free text with well-formed calls wherever a trigger opens one."""
    if constraint.required:
        fmt = calls_only(
            tags,
            separator=separator,
            parallel=constraint.parallel,
            end_after_call=constraint.end_after_call,
        )
    else:
        fmt = calls_in_text(tags, triggers=triggers, parallel=constraint.parallel)
    return {"type": "structural_tag", "format": fmt}


def calls_or_answer(calls: dict[str, Any], answer_schema: Mapping[str, Any]) -> dict[str, Any]:
    """Either ``calls`` (a ``required`` structural tag of some format) or one JSON value
    matching ``answer_schema``: the model picks the branch with its first token.

    One grammar for tools beside a structured answer (``response_format``): the calls
    keep their format's markup, so the format's parser tells a call from an answer.
    """
    answer = {"type": "json_schema", "json_schema": dict(answer_schema)}
    return {
        "type": "structural_tag",
        "format": {"type": "or", "elements": [calls["format"], answer]},
    }
