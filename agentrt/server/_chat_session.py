"""``ChatCodesign``: what the server does around a chat completion so that an unmodified
client gets the agent loop's co-design.

Before the request: it joins a session (``_sessions``), which sets its priority and its
hints by role, and a split prefill still pending for that session is cancelled (the
client is back: the next request itself prefills the rest). After the completion: its
tokens are remembered (``_echo``) so the echoed turn is re-sent exactly; a final answer
releases the session; a ``tool_calls`` completion hands split A (the prompt, the
generated tokens, the turn close and the opening of the first tool result's turn, built
by ``agentrt._conversation.pending_split``) to the server's ``SplitPrefills``, which
prefills it in the background when the agent loop's policy says it pays (spare capacity,
tools slower than the prefill). Sessions idle past their TTL are released by the
server's ``IdleSweeper`` through ``expired``.

Each part has its switch (``ServerConfig``: ``session_reuse``, ``chat_sessions``,
``chat_split_prefill``), so one server measures what each buys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentrt._conversation import Prompt, pending_split
from agentrt._split_policy import prefill_rate
from agentrt.engine import ChatTokenizer, Engine, RequestStats, SessionId

from ._chat_plan import ChatPlan
from ._echo import RememberedTurn, TurnMemory, fingerprint, turn_segment
from ._sessions import ChatSessions, client_key
from ._split_prefill import SplitJob, SplitPrefills, engine_held, result_opening


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished completion returned to its client."""

    completion_id: str
    token_ids: tuple[int, ...]
    content: str
    calls: Sequence[tuple[str, str, str]]  # (id, name, arguments) as sent
    finish_reason: str
    stats: RequestStats | None = None


class ChatCodesign:
    """Turn memory, sessions and pending split prefills of the chat endpoint.

    Args:
        turns: the remembered completions (None: echoed turns are re-rendered).
        sessions: live sessions (None: requests carry no session, hints are the two
            coarse tiers, nothing is released).
        split_prefill: prefill split A after a ``tool_calls`` completion (needs both).
        splits: the server's split prefills (shared with ``/v1/responses``).

    Invariant: at most one split prefill per session is in flight; all run on the loop.
    """

    def __init__(
        self,
        turns: TurnMemory | None,
        sessions: ChatSessions | None,
        *,
        split_prefill: bool,
        splits: SplitPrefills,
    ) -> None:
        self.turns = turns
        self.sessions = sessions
        self.split_prefill = split_prefill and turns is not None and sessions is not None
        self.splits = splits

    def close(self) -> None:
        """The server stops: its sessions' runs leave the run priorities."""
        if self.sessions is not None:
            self.sessions.close()

    def expired(self) -> list[SessionId]:
        """Sessions idle past their TTL that still hold engine state (for the sweeper)."""
        return [] if self.sessions is None else self.sessions.take_expired()

    async def join(self, engine: Engine, plan: ChatPlan, header: str | None) -> ChatPlan:
        """``plan`` in its session (unchanged without sessions); releases idle sessions."""
        if self.sessions is None:
            return plan
        for expired in self.sessions.take_expired():
            self.splits.cancel(expired)
            await engine.release(expired)
        given = client_key(plan.session_key, None, header)
        inferred = plan.echoed[-1].session if plan.echoed else None
        session = self.sessions.arrive(plan.scope, given, SessionId(inferred) if inferred else None)
        self.splits.cancel(session.id)
        return plan.with_session(session, self.sessions.priority(session, engine.info.max_num_seqs))

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
            assert session.tools_started is not None, "a tool_calls completion starts the clock"
            req = plan.request
            expected = session.expected_tool_s()
            split = pending_split(
                Prompt(req.prompt, req.hints),
                turn.segment[turn.opening :] + result_opening(tok, turn.call_ids[0]),
                session.split_ttl(),
            )
            job = SplitJob(
                session.id,
                split,
                engine_held(req.prompt, out.token_ids),
                expected,
                session.tools_started,
                prefill_rate(out.stats),
                req.cache_salt,
            )
            self.splits.start(engine, job)

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


def chat_codesign(
    *,
    session_reuse: bool,
    chat_sessions: bool,
    split_prefill: bool,
    max_turns: int,
    turn_ttl_s: float,
    max_sessions: int,
    session_idle_s: float,
    splits: SplitPrefills,
    clock: Callable[[], float] = time.monotonic,
) -> ChatCodesign:
    """The chat co-design the switches ask for (``ServerConfig`` documents each)."""
    turns = TurnMemory(max_turns, turn_ttl_s) if session_reuse else None
    sessions = ChatSessions(max_sessions, session_idle_s, clock) if chat_sessions else None
    return ChatCodesign(turns, sessions, split_prefill=split_prefill, splits=splits)
