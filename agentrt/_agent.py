"""``Agent``: the configuration of an agent (no state) and its co-design switches.

An agent is run with ``await agent.run(question)``, streamed with ``agent.stream(...)``,
continued over several turns with ``agent.session()``, or run from a plain script with
``agent.run_sync(question)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from agentrt.engine import Engine, SamplingOptions, ToolFormatName, tool_format
from agentrt.tools import Tool

if TYPE_CHECKING:
    from ._events import RunEvent
    from ._records import RunResult
    from ._session import Session

ToolChoice = Literal["auto", "required", "none"] | str


@dataclass(frozen=True, slots=True)
class Switches:
    """The co-design optimizations; all on by default, all off in the baseline.

    Attributes:
        token_log: append generated tokens verbatim (off: re-render each prompt from the
            message list through the chat template, as chat-endpoint frameworks do).
        stream_tools: start each tool the moment its call is parsed during decoding
            (off: wait for the whole response, then run the tools).
        split_prefill: while tools run, prefill the part of the next prompt that does
            not depend on their results.
        cache_hints: label token ranges with cache tiers and release the run at its end.
        run_priority: earlier agent runs are served first by the engine (off: FCFS).
    """

    token_log: bool = True
    stream_tools: bool = True
    split_prefill: bool = True
    cache_hints: bool = True
    run_priority: bool = True

    @classmethod
    def baseline(cls) -> Switches:
        return cls(False, False, False, False, False)

    @classmethod
    def only(cls, name: str) -> Switches:
        """Everything off but one switch (for ablations)."""
        if name not in {f.name for f in dataclasses.fields(cls)}:
            raise ValueError(f"unknown switch {name!r}")
        return dataclasses.replace(cls.baseline(), **{name: True})

    def label(self) -> str:
        names = [f.name for f in dataclasses.fields(self)]
        on = [n for n in names if getattr(self, n)]
        if len(on) == len(names):
            return "all"
        if len(on) == len(names) - 1 > 1:
            return "all-" + next(n for n in names if n not in on)
        return "+".join(on) if on else "baseline"


@dataclass(frozen=True)
class Agent:
    """What an agent is: its engine, instructions, tools and how it decodes.

    Attributes:
        engine: an Engine, a URL of a remote engine, or None for the embedded default.
        tool_choice: "auto", "required" (the first response must call a tool), "none"
            (tools are listed but never called), or a tool's name (the first response
            must call it). Like OpenAI's Agents SDK, a forced choice applies to the first
            response of each turn only, so the run can end.
        max_iterations: LLM calls per turn; the last one may not call tools.
        constrain_calls: in "auto", constrain decoding so any call the model opens is
            well-formed (required/named choices are always constrained).
        parallel_tool_calls: allow several calls in one response.
        tool_format: how the model writes tool calls: "hermes" (``<tool_call>`` blocks),
            "json" (Hermes, or bare/fenced call JSON), "llama3_json", "mistral". None:
            the one the model's chat template teaches (``agentrt.engine.detect_tool_format``).
        cache_salt: isolates this agent's KV cache from other tenants'.
        tool_timeout_s: wall-clock limit of one call of a tool whose ``timeout_s`` is
            None (None: no limit). A tool's own ``timeout_s`` always wins.
    """

    instructions: str = "You are a helpful assistant."
    tools: Sequence[Tool] = ()
    engine: Engine | str | None = None
    name: str = "agent"
    tool_choice: ToolChoice = "auto"
    max_iterations: int = 6
    sampling: SamplingOptions = field(default_factory=lambda: SamplingOptions(max_tokens=256))
    switches: Switches = field(default_factory=Switches)
    constrain_calls: bool = True
    parallel_tool_calls: bool = True
    tool_format: ToolFormatName | None = None
    cache_salt: str | None = None
    tool_timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique, got {names}")
        if self.tool_choice not in ("auto", "required", "none") and self.tool_choice not in names:
            raise ValueError(
                f"tool_choice {self.tool_choice!r} is not one of the agent's tools {names}"
            )
        if self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice='required' needs at least one tool")
        if self.tool_format is not None:
            tool_format(self.tool_format)  # raises ValueError naming the formats

    def with_switches(self, switches: Switches) -> Agent:
        return dataclasses.replace(self, switches=switches)

    def baseline(self) -> Agent:
        """The same agent driven the way common frameworks drive vLLM: every switch off."""
        return self.with_switches(Switches.baseline())

    def session(self) -> Session:
        """A multi-turn conversation whose turns share one token log."""
        from ._session import Session

        return Session(self)

    async def run(self, message: str) -> RunResult:
        """Answer one user message (a fresh session)."""
        return await self.session().run(message)

    def stream(self, message: str) -> AsyncGenerator[RunEvent, None]:
        """Answer one user message, yielding events as they happen (a fresh session)."""
        return self.session().stream(message)

    def run_sync(self, message: str) -> RunResult:
        """``run`` for scripts without an event loop (starts and stops its own)."""
        from ._sync import run_sync

        return run_sync(self, message)
