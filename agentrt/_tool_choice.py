"""Tool choice -> decoding constraint: the one mapping the agent loop and the REST server share.

    none      -> no constraint, and no calls are parsed (the tools stay listed in the
                 prompt, so its prefix is the same either way)
    auto      -> ToolCallConstraint(required=False): free text, and any call the model
                 opens is forced to be well-formed (no constraint with constrain_auto off)
    required  -> ToolCallConstraint(required=True): one or more calls, nothing else
    a name    -> ToolCallConstraint((that tool,), required=True)

The agent loop applies a forced choice ("required" or a name) to the first response of
each turn only (``choice_for_response``), as OpenAI's Agents SDK does, so a run can end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agentrt.engine import ToolCallConstraint, ToolFormatName, ToolSchema

ToolChoice = Literal["auto", "required", "none"] | str
"""The SDK's spelling: a mode, or the name of the tool the first response must call."""

ParallelUnset = Literal["allow", "end_first", "one"]
"""What a request that leaves ``parallel_tool_calls`` unset gets: several calls allowed
("allow", OpenAI's meaning), allowed with a grammar that offers the end of the response
after each call ("end_first"), or one call ("one")."""
PARALLEL_UNSET: tuple[ParallelUnset, ...] = ("allow", "end_first", "one")
DEFAULT_PARALLEL_UNSET: ParallelUnset = "one"
"""Chosen by measurement (issue 20, docs/COMPATIBILITY.md): with the default model and a
forced choice, "allow" and "end_first" wrote the same tokens (1.86x vLLM's server's per
tool-calling response: mostly repeats, cut only once paid for, and unasked second calls);
"one" wrote exactly vLLM's. A client that wants several calls sends
``parallel_tool_calls: true``."""

ChoiceMode = Literal["auto", "required", "none"]
_MODES: tuple[ChoiceMode, ...] = ("auto", "required", "none")


@dataclass(frozen=True, slots=True)
class NamedTool:
    """The response must call this tool (and no other)."""

    name: str


Choice = ChoiceMode | NamedTool
"""A parsed tool choice: a mode or a named tool, never ambiguous."""


class ToolChoiceError(ValueError):
    """A tool choice that does not fit the tools.

    Attributes:
        problem: "no_tools" (a choice other than "none" with no tools) or "unknown_tool"
            (the named tool is not among the tools).
        label: the choice as written: a mode, or the named tool's name.
    """

    def __init__(
        self, problem: Literal["no_tools", "unknown_tool"], label: str, names: Sequence[str]
    ) -> None:
        if problem == "no_tools":
            message = f"tool_choice {label!r} needs at least one tool"
        else:
            message = f"tool_choice {label!r} is not one of the tools {list(names)}"
        super().__init__(message)
        self.problem = problem
        self.label = label


def parse_choice(choice: ToolChoice) -> Choice:
    """The SDK's string form as a tagged choice (a string that is no mode names a tool)."""
    for mode in _MODES:
        if choice == mode:
            return mode
    return NamedTool(choice)


def check_choice(choice: Choice, names: Sequence[str]) -> None:
    """Raise ``ToolChoiceError`` unless ``choice`` can be honoured with tools ``names``."""
    label = choice.name if isinstance(choice, NamedTool) else choice
    if choice != "none" and not names:
        raise ToolChoiceError("no_tools", label, names)
    if isinstance(choice, NamedTool) and choice.name not in names:
        raise ToolChoiceError("unknown_tool", label, names)


def tool_constraint(
    choice: Choice,
    tools: Sequence[ToolSchema],
    *,
    parallel: bool,
    constrain_auto: bool = True,
    tool_format: ToolFormatName = "hermes",
    end_after_call: bool = False,
) -> ToolCallConstraint | None:
    """The constraint one response decodes under.

    Args:
        choice: what the response may or must call.
        tools: the tools listed in the prompt.
        parallel: more than one call may follow the first.
        constrain_auto: with "auto", constrain calls the model opens (off: decode freely).
        tool_format: the format the calls are written in (its grammar constrains them).
        end_after_call: see ``ToolCallConstraint.end_after_call``.

    Raises:
        ToolChoiceError: ``choice`` does not fit ``tools``.
    """
    check_choice(choice, [t.name for t in tools])
    if choice == "none":
        return None
    if choice == "auto":
        if not constrain_auto:
            return None
        return ToolCallConstraint(
            tuple(tools), required=False, parallel=parallel, format=tool_format
        )
    if choice == "required":
        return ToolCallConstraint(
            tuple(tools), True, parallel, tool_format, end_after_call=end_after_call
        )
    named = tuple(t for t in tools if t.name == choice.name)
    return ToolCallConstraint(named, True, parallel, tool_format, end_after_call=end_after_call)


def parallel_calls(requested: bool | None, unset: ParallelUnset) -> tuple[bool, bool]:
    """``(parallel, end_after_call)`` for a request's ``parallel_tool_calls``: what the
    client sent wins; unset follows the server's ``unset`` policy."""
    if requested is not None:
        return requested, False
    return unset != "one", unset == "end_first"


def choice_for_response(choice: Choice, index: int) -> Choice:
    """The choice for response ``index`` of a turn: a forced one holds for the first only."""
    return choice if index == 0 or choice == "none" else "auto"
