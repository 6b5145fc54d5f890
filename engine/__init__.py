"""agentrt.engine — the thin API between the agent orchestrator and the LLM engine.

Importing this package never imports vLLM or torch: the vLLM backend loads lazily, so
the SDK can drive a remote engine from a machine without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import EngineBase, EngineProxy
from ._chat import render_with_template, template_source
from ._formats import (
    MalformedCall,
    ParsedCall,
    ParseEvent,
    TextPiece,
    ToolCallParser,
    ToolFormat,
    detect_tool_format,
    make_parser,
    tool_format,
)
from ._messages import TOOL_NAME_PATTERN, ChatMessage, ToolCallPart, check_tool_name
from ._model import (
    DEFAULT_MODEL_NAME,
    ModelNotAvailableError,
    agentrt_home,
    default_model_dir,
    prepare_default_model,
    resolve_model,
)
from ._protocol import Engine, EngineError, PromptTooLongError
from ._scripted import ScriptContext, ScriptedEngine, TimingModel
from ._tokenizer import ByteCodec, ChatTokenizer, HFCodec, TokenCodec
from ._types import (
    BACKGROUND_PRIORITY,
    TOOL_FORMAT_NAMES,
    CacheHint,
    Constraint,
    EngineInfo,
    EngineLoad,
    EngineStats,
    FinishReason,
    GenerateRequest,
    JsonSchemaConstraint,
    PrefillRequest,
    PrefillStats,
    RegexConstraint,
    RequestId,
    RequestStats,
    SamplingOptions,
    SessionId,
    Tier,
    TierStats,
    TokenDelta,
    TokenLogprob,
    ToolCallConstraint,
    ToolFormatName,
    ToolSchema,
)
from ._vllm_args import EngineOptions

if TYPE_CHECKING:
    from ._http import HTTPEngine
    from ._twin import TwinEngine, TwinOptions
    from ._twin_build import TwinOverrides, twin_options
    from ._twin_core import TwinSettings
    from ._vllm import VLLMEngine

__all__ = [
    "BACKGROUND_PRIORITY",
    "DEFAULT_MODEL_NAME",
    "TOOL_FORMAT_NAMES",
    "TOOL_NAME_PATTERN",
    "ByteCodec",
    "CacheHint",
    "ChatMessage",
    "ChatTokenizer",
    "Constraint",
    "Engine",
    "EngineBase",
    "EngineError",
    "EngineInfo",
    "EngineLoad",
    "EngineOptions",
    "EngineProxy",
    "EngineStats",
    "FinishReason",
    "GenerateRequest",
    "HFCodec",
    "HTTPEngine",
    "JsonSchemaConstraint",
    "MalformedCall",
    "ModelNotAvailableError",
    "ParseEvent",
    "ParsedCall",
    "PrefillRequest",
    "PrefillStats",
    "PromptTooLongError",
    "RegexConstraint",
    "RequestId",
    "RequestStats",
    "SamplingOptions",
    "ScriptContext",
    "ScriptedEngine",
    "SessionId",
    "TextPiece",
    "Tier",
    "TierStats",
    "TimingModel",
    "TokenCodec",
    "TokenDelta",
    "TokenLogprob",
    "ToolCallConstraint",
    "ToolCallParser",
    "ToolCallPart",
    "ToolFormat",
    "ToolFormatName",
    "ToolSchema",
    "TwinEngine",
    "TwinOptions",
    "TwinOverrides",
    "TwinSettings",
    "VLLMEngine",
    "agentrt_home",
    "check_tool_name",
    "default_model_dir",
    "detect_tool_format",
    "make_parser",
    "prepare_default_model",
    "render_with_template",
    "resolve_model",
    "template_source",
    "tool_format",
    "twin_options",
]

_LAZY = {
    "VLLMEngine": "._vllm",
    "HTTPEngine": "._http",
    # The vLLM twin: loads vLLM only when an engine is built, but pulls in pydantic models.
    "TwinEngine": "._twin",
    "TwinOptions": "._twin",
    "TwinOverrides": "._twin_build",
    "TwinSettings": "._twin_core",
    "twin_options": "._twin_build",
}


def __getattr__(name: str) -> Any:
    # The backends import heavy or optional packages; load them on first use only.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
