"""Checking a tool call's arguments, with a validator built once per tool.

A ``@tool`` function is checked with the pydantic model of its signature, which also
converts the arguments to the annotated types; a tool known only by its JSON schema (an
MCP server's) is checked with a JSON-schema validator compiled when the tool is made.
Either way the result is tagged, and an invalid call's message names the argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import jsonschema
import pydantic

_SHOWN_ERRORS = 3


@dataclass(frozen=True, slots=True)
class ValidArguments:
    """Arguments that passed the tool's validator, converted to the function's types."""

    values: Mapping[str, Any]
    kind: Literal["valid"] = "valid"


@dataclass(frozen=True, slots=True)
class InvalidArguments:
    """Why the arguments do not fit; the model reads ``message`` and may try again."""

    message: str
    kind: Literal["invalid"] = "invalid"


class ArgumentCheck(Protocol):
    """A compiled validator of one tool's arguments."""

    def validate(self, arguments: Mapping[str, Any]) -> ValidArguments | InvalidArguments: ...


class ModelCheck:
    """Validates with the pydantic model of a function's signature."""

    def __init__(self, tool: str, model: type[pydantic.BaseModel]) -> None:
        self._tool = tool
        self._model = model

    def validate(self, arguments: Mapping[str, Any]) -> ValidArguments | InvalidArguments:
        try:
            parsed = self._model.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            parts = [_located(e["loc"], e["msg"]) for e in exc.errors()[:_SHOWN_ERRORS]]
            return InvalidArguments(_message(self._tool, parts))
        return ValidArguments({name: getattr(parsed, name) for name in self._model.model_fields})


class SchemaCheck:
    """Validates against a JSON schema, compiled once.

    Raises:
        ValueError: the schema itself is invalid (naming the tool and where).
    """

    def __init__(self, tool: str, schema: Mapping[str, Any]) -> None:
        self._tool = tool
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = ".".join(str(p) for p in exc.path)
            raise ValueError(
                f"tool {tool!r}: parameters is not a valid JSON schema "
                f"({where + ': ' if where else ''}{exc.message})"
            ) from None
        self._validator = cls(schema)

    def validate(self, arguments: Mapping[str, Any]) -> ValidArguments | InvalidArguments:
        values = dict(arguments)
        errors = sorted(self._validator.iter_errors(values), key=lambda e: list(e.path))
        if not errors:
            return ValidArguments(values)
        parts = [_located(tuple(e.path), e.message) for e in errors[:_SHOWN_ERRORS]]
        return InvalidArguments(_message(self._tool, parts))


def check_for(
    tool: str, parameters: Mapping[str, Any], model: type[pydantic.BaseModel] | None
) -> ArgumentCheck:
    """The validator a tool keeps: its signature's model if it has one, else its schema's."""
    return ModelCheck(tool, model) if model is not None else SchemaCheck(tool, parameters)


def _located(path: tuple[Any, ...], message: str) -> str:
    where = ".".join(str(p) for p in path)
    return f"{where}: {message}" if where else message


def _message(tool: str, parts: list[str]) -> str:
    return f"invalid arguments for {tool!r}: " + "; ".join(parts)
