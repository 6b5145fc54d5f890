"""``Session``: a conversation with an agent whose turns share one append-only token log.

A follow-up message extends the previous turn's log, so the engine's prefix cache
still holds everything before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

from agentrt.engine import ChatMessage, ChatTokenizer, SessionId, Tier, ToolSchema

from ._agent import Agent
from ._engines import resolve_engine
from ._events import RunDone, RunEvent
from ._executor import ToolCallId, ToolExecutor, shared_latency_tracker
from ._records import RunId, RunResult
from ._token_log import TokenLog


@dataclass(frozen=True, slots=True)
class _Failed:
    """Carries a turn's exception from its task to the stream's consumer."""

    error: BaseException


class Session:
    """Conversation state: the token log, the message list and the tool executor.

    Invariants: ``log`` and ``messages`` describe the same conversation (the log holds
    the tokens the model actually saw and wrote); one turn runs at a time.
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.run_id = RunId(f"run_{uuid.uuid4().hex[:16]}")
        self.session_id = SessionId(self.run_id)
        self.log = TokenLog()
        self.messages: list[ChatMessage] = []
        self.executor = ToolExecutor(agent.tools, shared_latency_tracker(), agent.tool_timeout_s)
        self._busy = False

    def start_turn(self, tok: ChatTokenizer, tools: Sequence[ToolSchema], message: str) -> None:
        """Append the header (first turn only) and the user's message to log and messages."""
        if not self.messages:
            self.messages.append(ChatMessage("system", self.agent.instructions))
            self.log.append(
                tok.render_header(self.agent.instructions, tools), "system", Tier.SYSTEM
            )
        user = ChatMessage("user", message)
        self.messages.append(user)
        self.log.append(tok.render_message(user), "user", Tier.USER_QUERY)

    def add_response(
        self, tok: ChatTokenizer, generated: Sequence[int], message: ChatMessage, tier: Tier
    ) -> None:
        """Append the model's tokens verbatim, then close its turn (split A ends here)."""
        self.log.append(generated, "assistant", tier)
        if not generated or generated[-1] != tok.im_end_id:
            # Cut off by max_tokens: close the turn the way the template would.
            self.log.append([tok.im_end_id], "turn_close", tier)
        self.log.append(tok.turn_close, "turn_close", tier)
        self.messages.append(message)

    def add_tool_result(self, tok: ChatTokenizer, call_id: ToolCallId, content: str) -> None:
        msg = ChatMessage("tool", content, tool_call_id=call_id)
        self.messages.append(msg)
        self.log.append(tok.render_message(msg), "tool", Tier.TOOL_OUTPUT)

    async def run(self, message: str) -> RunResult:
        """Answer ``message``, continuing the conversation."""
        return await self._turn(message, _ignore)

    async def stream(self, message: str) -> AsyncGenerator[RunEvent, None]:
        """Answer ``message``, yielding events; closing the iterator cancels the turn."""
        queue: asyncio.Queue[RunEvent | _Failed] = asyncio.Queue()

        async def drive() -> None:
            try:
                await self._turn(message, queue.put_nowait)
            except BaseException as exc:
                queue.put_nowait(_Failed(exc))
                raise

        task = asyncio.get_running_loop().create_task(drive())
        try:
            while True:
                event = await queue.get()
                if isinstance(event, _Failed):
                    raise event.error
                yield event
                if isinstance(event, RunDone):
                    return
        finally:
            if not task.done():
                task.cancel()
            # The consumer already got the error, or left early: nothing more to report.
            with contextlib.suppress(BaseException):
                await task

    async def _turn(self, message: str, emit: _Emit) -> RunResult:
        if self._busy:
            raise RuntimeError("a session runs one turn at a time")
        self._busy = True
        mark, n_messages = self.log.checkpoint(), len(self.messages)
        try:
            from ._turn import TurnRunner

            engine = await resolve_engine(self.agent.engine)
            return await TurnRunner(self, engine, emit).run(message)
        except BaseException:
            # A cancelled or failed turn leaves no half-written turn behind: the session
            # can be continued as if the message had never been sent.
            self.log.rollback(mark)
            del self.messages[n_messages:]
            raise
        finally:
            self._busy = False


_Emit = Callable[[RunEvent], None]


def _ignore(_event: RunEvent) -> None:
    return None
