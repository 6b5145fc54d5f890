"""The incremental tool-call parsers, as the orchestrator imports them.

They live with their formats in ``agentrt.engine._formats`` (one bundle per format:
listing, rendering, grammar, parser); this module keeps the orchestrator's import path.
"""

from __future__ import annotations

from agentrt.engine._formats import (
    HermesParser,
    JsonCallParser,
    Llama3JsonParser,
    MalformedCall,
    MistralParser,
    ParsedCall,
    ParseEvent,
    RepeatGuard,
    TextPiece,
    ToolCallParser,
    make_parser,
)

__all__ = [
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
    "make_parser",
]
