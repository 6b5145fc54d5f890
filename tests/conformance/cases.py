"""The requests of the differential suite: one body per case, each run streamed and not.

Temperature 0 everywhere. The cases cover what issue 20 lists: tool_choice auto /
required / named / none, ``parallel_tool_calls`` true / false / unset, a ``max_tokens``
that cuts a call, tools with ``response_format``, histories with tool results, empty and
unicode arguments, text before a call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def function(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": sorted(properties),
            },
        },
    }


CALC = function(
    "calculator", "Evaluate an arithmetic expression.", {"expression": {"type": "string"}}
)
WEATHER = function("get_weather", "Current weather of a city.", {"city": {"type": "string"}})
CLOCK = function("get_time", "The current time (takes no arguments).", {})


def named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def after_tool(question: str, expression: str, result: str, *, text: str = "") -> list[Any]:
    """A history whose last assistant turn called the calculator and got ``result``."""
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": text or None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "calculator",
                        "arguments": f'{{"expression": "{expression}"}}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ]


@dataclass(frozen=True)
class Case:
    """One request kind; ``body`` lacks ``model``, ``stream`` and ``temperature``."""

    id: str
    kind: str
    body: dict[str, Any] = field(default_factory=dict)


def _cases() -> list[Case]:
    out: list[Case] = []
    choices: dict[str, Any] = {
        "auto": "auto",
        "required": "required",
        "named": named("calculator"),
        "none": "none",
    }
    for cname, choice in choices.items():
        for pname, parallel in (("unset", None), ("true", True), ("false", False)):
            body: dict[str, Any] = {
                "messages": user("What is 12 * 7?"),
                "tools": [CALC, WEATHER],
                "tool_choice": choice,
                "max_tokens": 96,
            }
            if parallel is not None:
                body["parallel_tool_calls"] = parallel
            out.append(Case(f"{cname}-parallel_{pname}", f"tool_choice {cname}", body))
    for i, q in enumerate(
        [
            "What is 345 + 678?",
            "How much is 2 to the power of 10?",
            "What is 1000 / 8?",
            "Compute 17 * 23 - 5.",
        ]
    ):
        body = {"messages": user(q), "tools": [CALC], "tool_choice": "required", "max_tokens": 96}
        out.append(Case(f"required-one_tool-q{i}", "required, one tool, parallel unset", body))
    both = "What is the weather in Paris and in Rome?"
    out.append(
        Case(
            "required-two_cities",
            "two different calls wanted",
            {
                "messages": user(both),
                "tools": [WEATHER],
                "tool_choice": "required",
                "max_tokens": 128,
            },
        )
    )
    for n in (12, 20):
        out.append(
            Case(
                f"max_tokens_{n}-cuts_call",
                "max_tokens cuts a call",
                {
                    "messages": user("What is 12 * 7?"),
                    "tools": [CALC],
                    "tool_choice": "required",
                    "max_tokens": n,
                },
            )
        )
    out.append(
        Case(
            "auto-response_format",
            "tools with response_format",
            {
                "messages": user("What is 2 + 2? Reply as JSON with a field answer."),
                "tools": [CALC],
                "tool_choice": "auto",
                "max_tokens": 64,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "answer",
                        "schema": {
                            "type": "object",
                            "properties": {"answer": {"type": "integer"}},
                            "required": ["answer"],
                        },
                    },
                },
            },
        )
    )
    for cname, choice in (("auto", "auto"), ("required", "required")):
        out.append(
            Case(
                f"history-tool_result-{cname}",
                "history with a tool result",
                {
                    "messages": after_tool("What is 12 * 7?", "12 * 7", "84"),
                    "tools": [CALC],
                    "tool_choice": choice,
                    "max_tokens": 64,
                },
            )
        )
    out.append(
        Case(
            "history-text_before_call",
            "history: text before a call",
            {
                "messages": after_tool(
                    "What is 9 * 9?", "9 * 9", "81", text="Let me compute that."
                ),
                "tools": [CALC],
                "max_tokens": 64,
            },
        )
    )
    out.append(
        Case(
            "named-empty_arguments",
            "empty arguments",
            {
                "messages": user("What time is it?"),
                "tools": [CLOCK, CALC],
                "tool_choice": named("get_time"),
                "max_tokens": 48,
            },
        )
    )
    for city in ("Zürich", "東京"):
        out.append(
            Case(
                f"named-unicode-{city}",
                "unicode arguments",
                {
                    "messages": user(f"What is the weather in {city}?"),
                    "tools": [WEATHER],
                    "tool_choice": named("get_weather"),
                    "max_tokens": 48,
                },
            )
        )
    out.append(
        Case(
            "auto-text_before_call_prompt",
            "text before a call (asked for)",
            {
                "messages": user("First say what you will do in one sentence, then compute 6 * 7."),
                "tools": [CALC],
                "tool_choice": "auto",
                "max_tokens": 96,
            },
        )
    )
    out.append(Case("no_tools", "no tools", {"messages": user("Say hello."), "max_tokens": 16}))
    return out


CASES = _cases()
