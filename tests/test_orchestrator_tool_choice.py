"""The one tool-choice mapping: what each choice constrains, per response of a turn."""

from __future__ import annotations

import pytest

from agentrt import Agent, tool
from agentrt._tool_choice import (
    NamedTool,
    ToolChoiceError,
    choice_for_response,
    parse_choice,
    tool_constraint,
)
from agentrt.engine import ToolSchema

A = ToolSchema("a", "", {"type": "object"})
B = ToolSchema("b", "", {"type": "object"})


@pytest.mark.parametrize(
    ("choice", "required", "names"),
    [("auto", False, ["a", "b"]), ("required", True, ["a", "b"]), (NamedTool("b"), True, ["b"])],
)
def test_choices_map_to_the_tool_call_constraint(
    choice: NamedTool | str, required: bool, names: list[str]
) -> None:
    c = tool_constraint(
        parse_choice(choice) if isinstance(choice, str) else choice, [A, B], parallel=False
    )
    assert c is not None
    assert (c.required, c.parallel, [t.name for t in c.tools]) == (required, False, names)


def test_none_and_unconstrained_auto_decode_freely() -> None:
    assert tool_constraint("none", [A], parallel=True) is None
    assert tool_constraint("none", [], parallel=True) is None
    assert tool_constraint("auto", [A], parallel=True, constrain_auto=False) is None


def test_a_tool_named_like_a_mode_is_still_reachable_by_name() -> None:
    none = ToolSchema("none", "", {"type": "object"})
    c = tool_constraint(NamedTool("none"), [A, none], parallel=True)
    assert c is not None and [t.name for t in c.tools] == ["none"]


@pytest.mark.parametrize(
    ("choice", "tools", "problem"),
    [
        ("required", [], "no_tools"),
        (NamedTool("a"), [], "no_tools"),
        (NamedTool("c"), [A], "unknown_tool"),
    ],
)
def test_a_choice_that_does_not_fit_the_tools_names_the_problem(
    choice: NamedTool | str, tools: list[ToolSchema], problem: str
) -> None:
    with pytest.raises(ToolChoiceError) as info:
        tool_constraint(choice, tools, parallel=True)  # type: ignore[arg-type]
    assert info.value.problem == problem


def test_a_forced_choice_holds_for_the_first_response_of_a_turn_only() -> None:
    assert [choice_for_response(NamedTool("a"), i) for i in range(3)] == [
        NamedTool("a"),
        "auto",
        "auto",
    ]
    assert [choice_for_response("none", i) for i in range(2)] == ["none", "none"]


@tool
def a(x: int) -> int:
    """Echo.

    Args:
        x: a number
    """
    return x


def test_the_agent_checks_its_choice_with_the_same_rule() -> None:
    with pytest.raises(ValueError, match="is not one of the tools"):
        Agent(tools=[a], tool_choice="b")
    with pytest.raises(ValueError, match="needs at least one tool"):
        Agent(tool_choice="required")
    assert Agent().tool_choice == "auto"  # a plain chat agent
