"""Tool-call formats by name, and the choice of one from a model's chat template.

Each format (``ToolFormat``) bundles how tools are listed, how calls and results are
rendered, the grammar that constrains calls, and the incremental parser that reads them:

    hermes       <tool_call>{"name": ..., "arguments": ...}</tool_call>   Qwen2.5/3, Hermes
    json         hermes, plus bare or ```json-fenced call objects          small Qwen2.5
    llama3_json  {"name": ..., "parameters": ...}; ...  as the whole answer Llama 3.x
    mistral      [TOOL_CALLS][{"name": ..., "arguments": ...}, ...]        Mistral
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._types import TOOL_FORMAT_NAMES, ToolFormatName
from ._base import ToolFormat
from ._events import (
    MalformedCall,
    ParsedCall,
    ParseEvent,
    TextPiece,
    ToolCallParser,
)
from ._hermes import HERMES, HermesParser
from ._json import JSON, JsonCallParser
from ._llama3 import LLAMA3_JSON, Llama3JsonParser
from ._mistral import MISTRAL, MistralParser
from ._repeats import RepeatGuard, call_key, stats_at_cut

FORMATS: dict[ToolFormatName, ToolFormat] = {
    f.name: f for f in (HERMES, JSON, LLAMA3_JSON, MISTRAL)
}
assert tuple(sorted(FORMATS)) == tuple(sorted(TOOL_FORMAT_NAMES)), "a format has no bundle"


def tool_format(name: str) -> ToolFormat:
    """The format called ``name``.

    Raises:
        ValueError: no format has that name (the message lists them).
    """
    try:
        return FORMATS[name]  # type: ignore[index]
    except KeyError:
        raise ValueError(
            f"unknown tool-call format {name!r}; choose one of {sorted(FORMATS)}"
        ) from None


def make_parser(name: str) -> ToolCallParser:
    """A fresh parser of the named format.

    Raises:
        ValueError: the format is unknown.
    """
    return tool_format(name).parser()


def detect_tool_format(chat_template: str | None) -> ToolFormatName:
    """The format a model's chat template teaches, from the markers it writes.

    A template that mentions no tool-call markers (like the default model's, which
    ignores tools) gets ``hermes``: agentrt then renders its own Hermes template.
    """
    t = chat_template or ""
    if "[TOOL_CALLS]" in t:
        return "mistral"
    if "<tool_call>" in t:
        return "hermes"
    if "<|python_tag|>" in t or ("ipython" in t and '"parameters"' in t):
        return "llama3_json"
    return "hermes"


def read_chat_template(folder: str | Path) -> str | None:
    """A model folder's chat template: ``chat_template.jinja``, else the ``chat_template``
    of ``tokenizer_config.json`` (its ``tool_use`` variant when it has several). A path to
    the folder's ``tokenizer.json`` works too."""
    path = Path(folder)
    if path.is_file():
        path = path.parent
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = path / "tokenizer_config.json"
    if not config.is_file():
        return None
    try:
        raw: Any = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    except (json.JSONDecodeError, AttributeError):
        return None
    if isinstance(raw, list):
        named = {t.get("name"): t.get("template") for t in raw if isinstance(t, dict)}
        raw = named.get("tool_use") or named.get("default") or next(iter(named.values()), None)
    return raw if isinstance(raw, str) else None


__all__ = [
    "FORMATS",
    "HermesParser",
    "JsonCallParser",
    "Llama3JsonParser",
    "MalformedCall",
    "MistralParser",
    "ParseEvent",
    "ParsedCall",
    "RepeatGuard",
    "TextPiece",
    "ToolCallParser",
    "ToolFormat",
    "call_key",
    "detect_tool_format",
    "make_parser",
    "read_chat_template",
    "stats_at_cut",
    "tool_format",
]
