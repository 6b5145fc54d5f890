"""``ChatSessions``: conversations of chat clients that never said they have one.

A chat-completions request names its conversation by ``prompt_cache_key`` (OpenAI's
field), else ``user``, else an ``X-Session-Id`` header; failing all three, the server
infers it from a remembered turn the request echoes (see ``_echo``), and a request that
echoes none starts a new one. A session gives the engine what an agent run gives it:
one engine session id (role hints, release), a rank in the process's run priorities
(``agentrt._run_priority``, the policy of agent runs: earlier runs first, within a gap
that follows the engine's batch), and the tools' latency learned from the gap between a
``tool_calls`` completion and the session's next request (the lifetime of the split
prefill issued meanwhile).

A session is released when it ends with a final answer or sits idle past ``idle_s``
(bounded store; the evicted ids are handed out by ``take_expired``, which the server's
idle sweeper (``_idle``) calls periodically and each arrival calls too, for the caller to
release). Used on the event loop only.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from agentrt._run_priority import RUN_PRIORITIES, RunPriorities
from agentrt.engine import SessionId

from ._echo import Scope
from ._lru import IdleLRU

_LATENCY_WEIGHT = 0.5  # weight of the newest gap in the learned tool latency
_DEFAULT_TOOL_S = 5.0  # split lifetime before any latency is learned
_SPLIT_TTL_FLOOR_S = 0.5


@dataclass(frozen=True, slots=True)
class ChatSession:
    """One conversation's engine-facing state.

    Invariants: ``id`` is unique across scopes (a client's key is hashed with its scope);
    ``rank`` is the current run's rank: a run, as in the SDK, goes from the session's first
    request (or its first after a final answer) to its next final answer, and the rank is
    open in the run priorities exactly while the run lasts and the session is stored;
    ``tools_started`` is set only between a ``tool_calls`` completion and the session's
    next request.
    """

    id: SessionId
    rank: int
    tools_started: float | None = None
    tool_latency_s: float | None = None
    released: bool = False

    def expected_tool_s(self) -> float:
        """How long the client's tools are expected to take (learned, else a default)."""
        return expected_tool_s(self.tool_latency_s)

    def split_ttl(self) -> float:
        """How long split A should stay pinned: twice the tools' expected time."""
        return split_ttl(self.expected_tool_s())


def expected_tool_s(learned: float | None) -> float:
    """The tools' expected time: the learned latency, else a default."""
    return _DEFAULT_TOOL_S if learned is None else learned


def split_ttl(expected_s: float) -> float:
    """How long split A should stay pinned: twice the tools' expected time."""
    return max(_SPLIT_TTL_FLOOR_S, 2.0 * expected_s)


def learn_latency(old: float | None, gap_s: float) -> float:
    """The tool latency after seeing one more gap between a call and its results (a
    moving average weighting the newest gap by ``_LATENCY_WEIGHT``)."""
    return gap_s if old is None else (1 - _LATENCY_WEIGHT) * old + _LATENCY_WEIGHT * gap_s


def client_key(prompt_cache_key: str | None, user: str | None, header: str | None) -> str | None:
    """The conversation key a client gave, in order of precedence (None: it gave none)."""
    for value in (prompt_cache_key, user, header):
        if value:
            return value
    return None


class ChatSessions:
    """Live chat sessions, at most ``capacity``, each dropped after ``idle_s`` unused.

    Args:
        capacity: sessions kept (the least recently used is evicted and released).
        idle_s: a session idle this long is evicted and released.
        clock: seconds, monotonic (tests pass a fake).
        priorities: where runs take their ranks (default: the process's, shared with agent
            runs).
    """

    def __init__(
        self,
        capacity: int,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
        priorities: RunPriorities | None = None,
    ) -> None:
        self._clock = clock
        self._priorities = RUN_PRIORITIES if priorities is None else priorities
        self._expired: list[SessionId] = []
        self._live: IdleLRU[tuple[Scope, str], ChatSession] = IdleLRU(
            capacity, idle_s, clock, on_evict=self._evicted
        )

    def __len__(self) -> int:
        return len(self._live)

    def arrive(self, scope: Scope, given: str | None, inferred: SessionId | None) -> ChatSession:
        """The session of a request arriving now: the client's key, else the inferred
        session (if still live), else a new one. Learns the tool latency when the
        session was waiting on its tools."""
        self._live.evict()
        if given is not None:
            name = "key:" + given
            sid = SessionId("chat-" + hashlib.sha256(f"{scope}\0{given}".encode()).hexdigest()[:24])
        elif inferred is not None and (scope, "id:" + inferred) in self._live:
            name, sid = "id:" + inferred, inferred
        else:
            sid = SessionId("chat-" + uuid.uuid4().hex[:24])
            name = "id:" + sid
        now = self._clock()
        current = self._live.get((scope, name))
        if current is None:
            current = ChatSession(sid, self._priorities.open())
        elif current.released:  # a new run of a conversation that goes on
            current = replace(current, rank=self._priorities.open())
        elif current.tools_started is not None:
            learned = learn_latency(current.tool_latency_s, now - current.tools_started)
            current = replace(current, tools_started=None, tool_latency_s=learned)
        current = replace(current, released=False)
        self._live.put((scope, name), current)
        return current

    def completed(
        self, scope: Scope, given: str | None, session: ChatSession, *, final: bool
    ) -> ChatSession:
        """Record a completion of ``session``: a final answer marks it released (the
        caller releases it), tool calls start the latency clock."""
        name = "key:" + given if given is not None else "id:" + session.id
        current = self._live.get((scope, name))
        if current is None:  # evicted while it ran: eviction closed its rank
            current = session if final else replace(session, rank=self._priorities.open())
        if final:
            self._priorities.close(current.rank)
            current = replace(current, tools_started=None, released=True)
        else:
            current = replace(current, tools_started=self._clock(), released=False)
        self._live.put((scope, name), current)
        return current

    def priority(self, session: ChatSession, max_num_seqs: int | None) -> int:
        """The priority of ``session``'s request sent now to an engine whose batch holds
        ``max_num_seqs`` sequences (lower goes first)."""
        return self._priorities.priority(session.rank, max_num_seqs)

    def close(self) -> None:
        """Close every stored session's rank (the server stops; idempotent)."""
        for _key, session in self._live.items():
            self._priorities.close(session.rank)

    def take_expired(self) -> list[SessionId]:
        """Sessions evicted since the last call that still hold un-released KV."""
        self._live.evict()
        out, self._expired = self._expired, []
        return out

    def _evicted(self, _key: tuple[Scope, str], session: ChatSession) -> None:
        self._priorities.close(session.rank)  # idempotent: a final answer closed it already
        if not session.released:
            self._expired.append(session.id)
