"""``Agent`` (what an agent is; no state) and ``Session`` (a conversation with one).

An agent is run with ``await agent.run(question)``, streamed with ``agent.stream(...)``,
continued over several turns with ``agent.session()``, or run from a plain script with
``agent.run_sync(question)``. Each turn is one ``TurnRunner`` on the session's
``Conversation``; the layers below know nothing of these two classes.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import anyio

from agentrt.engine import (
    ChatMessage,
    Engine,
    SamplingOptions,
    SessionId,
    ToolFormatName,
    tool_format,
)
from agentrt.tools import Tool

from ._conversation import Conversation
from ._engines import close_default_engine, resolve_engine
from ._events import Emit, RunEvent, stream_events
from ._executor import ToolExecutor, shared_latency_tracker
from ._records import RunId, RunResult
from ._switches import Switches as Switches  # re-exported: agentrt.replay imports it here
from ._token_log import TokenLog
from ._tool_choice import ToolChoice, check_choice, parse_choice
from ._turn import TurnRunner


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
        cut_repeated_calls: end a response at the first call that repeats an earlier
            call of the same response (same name, arguments equal as JSON): decoding
            stops there and the repeat is dropped (off: every call runs).
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
    cut_repeated_calls: bool = True
    tool_format: ToolFormatName | None = None
    cache_salt: str | None = None
    tool_timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique, got {names}")
        if self.tool_choice != "auto":  # "auto" without tools is a plain chat agent
            check_choice(parse_choice(self.tool_choice), names)
        if self.tool_format is not None:
            tool_format(self.tool_format)  # raises ValueError naming the formats

    def with_switches(self, switches: Switches) -> Agent:
        return dataclasses.replace(self, switches=switches)

    def baseline(self) -> Agent:
        """The same agent driven the way common frameworks drive vLLM: every switch off."""
        return self.with_switches(Switches.baseline())

    def session(self) -> Session:
        """A multi-turn conversation whose turns share one token log."""
        return Session(self)

    async def run(self, message: str) -> RunResult:
        """Answer one user message (a fresh session)."""
        return await self.session().run(message)

    def stream(self, message: str) -> AsyncGenerator[RunEvent, None]:
        """Answer one user message, yielding events as they happen (a fresh session)."""
        return self.session().stream(message)

    def run_sync(self, message: str) -> RunResult:
        """``run`` for scripts without an event loop: starts its own, and stops any engine
        this call started (an engine object given to the agent is left running)."""

        async def main() -> RunResult:
            try:
                return await self.run(message)
            finally:
                if self.engine is None or isinstance(self.engine, str):
                    await close_default_engine()

        return anyio.run(main)


class Session:
    """A conversation with an agent whose turns share one append-only token log.

    A follow-up message extends the previous turn's log, so the engine's prefix cache
    still holds everything before it. The conversation is made at the first turn, with
    the tokenizer of the engine that turn resolves.

    Invariants: one turn runs at a time; a turn that fails or is cancelled leaves the
    conversation as it was before the turn.
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.run_id = RunId(f"run_{uuid.uuid4().hex[:16]}")
        self.session_id = SessionId(self.run_id)
        self.executor = ToolExecutor(agent.tools, shared_latency_tracker(), agent.tool_timeout_s)
        self._conversation: Conversation | None = None
        self._busy = False

    @property
    def log(self) -> TokenLog:
        """The tokens the model saw and wrote so far (empty before the first turn)."""
        return self._conversation.log if self._conversation else TokenLog()

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        return self._conversation.messages if self._conversation else ()

    async def run(self, message: str) -> RunResult:
        """Answer ``message``, continuing the conversation."""
        return await self._turn(message, _ignore)

    def stream(self, message: str) -> AsyncGenerator[RunEvent, None]:
        """Answer ``message``, yielding events; closing the iterator cancels the turn."""
        return stream_events(lambda emit: self._turn(message, emit))

    async def _turn(self, message: str, emit: Emit) -> RunResult:
        if self._busy:
            raise RuntimeError("a session runs one turn at a time")
        self._busy = True
        try:
            engine = await resolve_engine(self.agent.engine)
            conversation = self._conversation_on(engine)
            mark = conversation.checkpoint()
            runner = TurnRunner(
                conversation,
                engine,
                self.executor,
                self.agent,
                run_id=self.run_id,
                session=self.session_id,
                emit=emit,
            )
            try:
                return await runner.run(message)
            except BaseException:
                # A cancelled or failed turn leaves no half-written turn behind: the
                # session can be continued as if the message had never been sent.
                conversation.rollback(mark)
                raise
        finally:
            self._busy = False

    def _conversation_on(self, engine: Engine) -> Conversation:
        if self._conversation is None:
            self._conversation = Conversation(
                engine.tokenizer.with_tool_format(self.agent.tool_format),
                self.agent.instructions,
                [t.schema for t in self.agent.tools],
                token_log=self.agent.switches.token_log,
                cache_hints=self.agent.switches.cache_hints,
            )
        return self._conversation


def _ignore(_event: RunEvent) -> None:
    return None
