"""Structured-output constraints in the form vLLM's structured outputs accept (JSON-ready).

Tool calls use xgrammar's structural tags, built by the constraint's tool format (see
``_formats``): every call the model opens must name a listed tool and match its
schema; beside a structured answer (``answer_schema``), the response is either calls or
that answer. The same dict goes into ``SamplingParams.structured_outputs`` in-process and
into the completions request's ``structured_outputs`` over HTTP, so both backends
constrain identically.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ._formats import tool_format
from ._formats._base import calls_or_answer
from ._types import Constraint, JsonSchemaConstraint, RegexConstraint, ToolCallConstraint


def tool_call_structural_tag(c: ToolCallConstraint) -> dict[str, Any]:
    """The structural tag forcing well-formed calls in the constraint's format; with an
    ``answer_schema`` (and not ``required``): those calls alone, or an answer in the schema."""
    fmt = tool_format(c.format)
    if c.required or c.answer_schema is None:
        return fmt.structural_tag(c)
    calls = fmt.structural_tag(replace(c, required=True, answer_schema=None))
    return calls_or_answer(calls, c.answer_schema)


def structural_tag_args(tag: dict[str, Any]) -> dict[str, Any]:
    """``StructuredOutputsParams`` keyword arguments for one structural tag."""
    return {"structural_tag": json.dumps(tag)}


def structured_outputs_args(constraint: Constraint) -> dict[str, Any]:
    """Keyword arguments for vLLM's ``StructuredOutputsParams`` (also its JSON request field)."""
    if isinstance(constraint, JsonSchemaConstraint):
        return {"json": dict(constraint.schema)}
    if isinstance(constraint, RegexConstraint):
        return {"regex": constraint.pattern}
    if isinstance(constraint, ToolCallConstraint):
        return structural_tag_args(tool_call_structural_tag(constraint))
    raise TypeError(f"unknown constraint type {type(constraint).__name__}")
