"""``ChatCodesign``: what the server does around a chat completion so that an unmodified
client gets the agent loop's co-design.

Before the request: it joins a session (``_sessions``), which sets its priority and its
hints by role, and a split prefill still pending for that session is cancelled (the
client is back: the next request itself prefills the rest). After the completion: its
tokens are remembered (``_echo``) so the echoed turn is re-sent exactly; a final answer
releases the session; a ``tool_calls`` completion prefills split A (the prompt, the
generated tokens, the turn close and the opening of the first tool result's turn) as
SPLIT_PENDING for the tools' learned latency, at the lowest priority and only when no
request is waiting, so it never delays one.

Each part has its switch (``ServerConfig``: ``session_reuse``, ``chat_sessions``,
``chat_split_prefill``), so one server measures what each buys.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from agentrt.engine import (
    CacheHint,
    ChatMessage,
    ChatTokenizer,
    Engine,
    PrefillRequest,
    PromptTooLongError,
    SessionId,
    Tier,
)

from ._chat_plan import ChatPlan
from ._echo import RememberedTurn, TurnMemory, fingerprint, turn_segment
from ._sessions import ChatSessions, client_key

log = logging.getLogger("agentrt.server")

SPLIT_PRIORITY = 2**62
"""Split prefills go after every request (vLLM serves lower numbers first)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished completion returned to its client."""

    completion_id: str
    token_ids: tuple[int, ...]
    content: str
    calls: Sequence[tuple[str, str, str]]  # (id, name, arguments) as sent
    finish_reason: str


class ChatCodesign:
    """Turn memory, sessions and pending split prefills of the chat endpoint.

    Args:
        turns: the remembered completions (None: echoed turns are re-rendered).
        sessions: live sessions (None: requests carry no session, hints are the two
            coarse tiers, nothing is released).
        split_prefill: prefill split A after a ``tool_calls`` completion (needs both).

    Invariant: at most one split prefill per session is in flight; all run on the loop.
    """

    def __init__(
        self, turns: TurnMemory | None, sessions: ChatSessions | None, *, split_prefill: bool
    ) -> None:
        self.turns = turns
        self.sessions = sessions
        self.split_prefill = split_prefill and turns is not None and sessions is not None
        self._splits: dict[SessionId, asyncio.Task[None]] = {}

    async def join(self, engine: Engine, plan: ChatPlan, header: str | None) -> ChatPlan:
        """``plan`` in its session (unchanged without sessions); releases idle sessions."""
        if self.sessions is None:
            return plan
        for expired in self.sessions.take_expired():
            await engine.release(expired)
        given = client_key(plan.session_key, None, header)
        inferred = plan.echoed[-1].session if plan.echoed else None
        session = self.sessions.arrive(plan.scope, given, SessionId(inferred) if inferred else None)
        pending = self._splits.pop(session.id, None)
        if pending is not None:
            pending.cancel()
        return plan.with_session(session)

    async def finished(
        self, engine: Engine, tok: ChatTokenizer, plan: ChatPlan, out: Outcome, header: str | None
    ) -> None:
        """After a completion: remember it, then release or split-prefill its session."""
        final = not out.calls
        turn = self._remember(tok, plan, out, final)
        if self.sessions is None or plan.session is None:
            return
        given = client_key(plan.session_key, None, header)
        session = self.sessions.completed(plan.scope, given, plan.session, final=final)
        if final:
            await engine.release(session.id)
        elif self.split_prefill and turn is not None and out.finish_reason == "tool_calls":
            task = asyncio.get_running_loop().create_task(
                self._prefill(engine, tok, plan, turn, session.split_ttl())
            )
            self._splits[session.id] = task
            task.add_done_callback(functools.partial(self._forget, session.id))

    def _remember(
        self, tok: ChatTokenizer, plan: ChatPlan, out: Outcome, final: bool
    ) -> RememberedTurn | None:
        if self.turns is None or not out.token_ids:
            return None
        fp = fingerprint(out.content, [(name, args) for _, name, args in out.calls])
        if fp is None:
            return None
        session = plan.session.id if plan.session is not None else None
        turn = RememberedTurn(
            out.completion_id,
            turn_segment(tok, out.token_ids),
            fp,
            tuple(call_id for call_id, _, _ in out.calls),
            session,
            final,
            len(tok.generation_prompt),
        )
        self.turns.remember(plan.scope, turn)
        return turn

    async def _prefill(
        self, engine: Engine, tok: ChatTokenizer, plan: ChatPlan, turn: RememberedTurn, ttl_s: float
    ) -> None:
        """Split A of ``turn`` into the cache, pinned for ``ttl_s``; skipped when the engine
        has requests waiting (spare capacity only). Never raises but on cancellation."""
        req = plan.request
        try:
            stats = await engine.stats()
            if stats.num_waiting > 0:
                return
            tokens = turn.after(req.prompt) + result_opening(tok, turn.call_ids[0])
            hints = _pending(req.hints, len(req.prompt), len(tokens), ttl_s)
            await engine.prefill(
                PrefillRequest(
                    tokens,
                    hints if engine.info.supports_hints else (),
                    req.session,
                    priority=SPLIT_PRIORITY,
                    cache_salt=req.cache_salt,
                )
            )
        except asyncio.CancelledError:
            raise
        except PromptTooLongError:
            return  # the turn fills the context: the next request cannot fit either
        except Exception as exc:  # a background optimisation must not fail anything
            log.warning("split prefill of session %s failed: %s", req.session, exc)

    def _forget(self, session: SessionId, task: asyncio.Task[None]) -> None:
        if self._splits.get(session) is task:
            del self._splits[session]

    async def aclose(self) -> None:
        """Cancel the split prefills in flight (the server is stopping)."""
        tasks, self._splits = list(self._splits.values()), {}
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def result_opening(tok: ChatTokenizer, call_id: str) -> tuple[int, ...]:
    """The tokens that open the first tool result's turn, whatever the result says: the
    common head of two renders that differ only in their content."""
    a = tok.render_message(ChatMessage("tool", "0", tool_call_id=call_id))
    b = tok.render_message(ChatMessage("tool", "x", tool_call_id=call_id))
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return tuple(a[:n])


def _pending(
    hints: Sequence[CacheHint], prompt_len: int, total: int, ttl_s: float
) -> tuple[CacheHint, ...]:
    """The prompt's hints and the generated turn (DEFAULT), all SPLIT_PENDING for
    ``ttl_s``, each falling back to its own tier."""
    ranges = [(h.start, h.end, h.tier) for h in hints]
    if total > prompt_len:
        ranges.append((prompt_len, total, Tier.DEFAULT))
    return tuple(CacheHint(a, b, Tier.SPLIT_PENDING, ttl_s, base=t) for a, b, t in ranges)


def chat_codesign(
    *,
    session_reuse: bool,
    chat_sessions: bool,
    split_prefill: bool,
    max_turns: int,
    turn_ttl_s: float,
    max_sessions: int,
    session_idle_s: float,
) -> ChatCodesign:
    """The chat co-design the switches ask for (``ServerConfig`` documents each)."""
    turns = TurnMemory(max_turns, turn_ttl_s) if session_reuse else None
    sessions = ChatSessions(max_sessions, session_idle_s) if chat_sessions else None
    return ChatCodesign(turns, sessions, split_prefill=split_prefill)
