"""Incremental tool-call parsers: Hermes/Qwen first, Llama 3 JSON and Mistral alike."""

from __future__ import annotations

from typing import Literal

from ._hermes import HermesParser
from ._llama3 import Llama3JsonParser
from ._mistral import MistralParser
from ._types import MalformedCall, ParsedCall, ParseEvent, TextPiece, ToolCallParser

ParserName = Literal["hermes", "llama3_json", "mistral"]

_PARSERS: dict[str, type[HermesParser] | type[Llama3JsonParser] | type[MistralParser]] = {
    "hermes": HermesParser,
    "llama3_json": Llama3JsonParser,
    "mistral": MistralParser,
}


def make_parser(name: str) -> ToolCallParser:
    """A fresh parser of the named format.

    Raises:
        ValueError: the format is unknown.
    """
    try:
        return _PARSERS[name]()
    except KeyError:
        raise ValueError(
            f"unknown tool-call format {name!r}; choose one of {sorted(_PARSERS)}"
        ) from None


__all__ = [
    "HermesParser",
    "Llama3JsonParser",
    "MalformedCall",
    "MistralParser",
    "ParseEvent",
    "ParsedCall",
    "ParserName",
    "TextPiece",
    "ToolCallParser",
    "make_parser",
]
