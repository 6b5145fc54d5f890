"""agentrt — an agent runtime whose orchestrator and LLM engine are designed together.

Declare tools as typed functions, define an ``Agent``, and run it::

    from agentrt import Agent, tool

    @tool
    def add(a: int, b: int) -> int:
        "Add two integers."
        return a + b

    agent = Agent(instructions="You are a calculator.", tools=[add], tool_choice="required")
    print(agent.run_sync("What is 2 + 3?").final_text)
"""

from __future__ import annotations

from agentrt.engine import Engine, SamplingOptions, ScriptedEngine, TimingModel
from agentrt.tools import LatencyTracker, Tool, ToolFailure, tool

from ._agent import Agent, Session
from ._engines import close_default_engine, resolve_engine, set_default_engine
from ._events import (
    FinalAnswerStarted,
    IterationFinished,
    RepeatedCallCut,
    RunDone,
    RunEvent,
    RunStarted,
    TokenEvent,
    ToolCallDetected,
    ToolCallTruncated,
    ToolFinished,
    ToolStarted,
)
from ._executor import ToolCallId, ToolError, ToolExecutor, ToolOk, ToolResult, ToolSpan
from ._parsers import (
    HermesParser,
    JsonCallParser,
    Llama3JsonParser,
    MalformedCall,
    MistralParser,
    ParsedCall,
    TextPiece,
    ToolCallParser,
    make_parser,
)
from ._records import Divergence, IterationRecord, RunId, RunResult, RunStatus
from ._switches import Switches
from ._token_log import Segment, TokenLog
from ._tool_choice import ToolChoice

__all__ = [
    "Agent",
    "Divergence",
    "Engine",
    "FinalAnswerStarted",
    "HermesParser",
    "IterationFinished",
    "IterationRecord",
    "JsonCallParser",
    "LatencyTracker",
    "Llama3JsonParser",
    "MalformedCall",
    "MistralParser",
    "ParsedCall",
    "RepeatedCallCut",
    "RunDone",
    "RunEvent",
    "RunId",
    "RunResult",
    "RunStarted",
    "RunStatus",
    "SamplingOptions",
    "ScriptedEngine",
    "Segment",
    "Session",
    "Switches",
    "TextPiece",
    "TimingModel",
    "TokenEvent",
    "TokenLog",
    "Tool",
    "ToolCallDetected",
    "ToolCallId",
    "ToolCallParser",
    "ToolCallTruncated",
    "ToolChoice",
    "ToolError",
    "ToolExecutor",
    "ToolFailure",
    "ToolFinished",
    "ToolOk",
    "ToolResult",
    "ToolSpan",
    "ToolStarted",
    "close_default_engine",
    "make_parser",
    "resolve_engine",
    "set_default_engine",
    "tool",
]
