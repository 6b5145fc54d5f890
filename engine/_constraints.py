"""Structured-output constraints in the form vLLM's structured outputs accept (JSON-ready).

Tool calls use xgrammar's structural tags: every ``<tool_call>`` block the model opens
must hold ``{"name": <a listed tool>, "arguments": <that tool's schema>}``. The same dict
goes into ``SamplingParams.structured_outputs`` in-process and into the completions
request's ``structured_outputs`` over HTTP, so both backends constrain identically.
"""

from __future__ import annotations

import json
from typing import Any

from ._chat import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from ._types import Constraint, JsonSchemaConstraint, RegexConstraint, ToolCallConstraint


def _call_schema(c: ToolCallConstraint) -> dict[str, Any]:
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": dict(t.parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in c.tools
    ]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def tool_call_structural_tag(c: ToolCallConstraint) -> dict[str, Any]:
    """The structural tag forcing Hermes tool-call blocks (see module docstring)."""
    tag = {
        "type": "tag",
        "begin": f"{TOOL_CALL_OPEN}\n",
        "content": {"type": "json_schema", "json_schema": _call_schema(c)},
        "end": f"\n{TOOL_CALL_CLOSE}",
    }
    fmt: dict[str, Any]
    if c.required:
        # Nothing but calls, at least one; the grammar then ends and only EOS may follow.
        fmt = {
            "type": "tags_with_separator",
            "tags": [tag],
            "separator": "\n",
            "at_least_one": True,
            "stop_after_first": not c.parallel,
        }
    else:
        fmt = {
            "type": "triggered_tags",
            "triggers": [TOOL_CALL_OPEN],
            "tags": [tag],
            "at_least_one": False,
            "stop_after_first": not c.parallel,
        }
    return {"type": "structural_tag", "format": fmt}


def structured_outputs_args(constraint: Constraint) -> dict[str, Any]:
    """Keyword arguments for vLLM's ``StructuredOutputsParams`` (also its JSON request field)."""
    if isinstance(constraint, JsonSchemaConstraint):
        return {"json": dict(constraint.schema)}
    if isinstance(constraint, RegexConstraint):
        return {"regex": constraint.pattern}
    if isinstance(constraint, ToolCallConstraint):
        return {"structural_tag": json.dumps(tool_call_structural_tag(constraint))}
    raise TypeError(f"unknown constraint type {type(constraint).__name__}")
