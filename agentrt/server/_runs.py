"""Run records and the two stores behind the agent endpoints: runs and conversations.

A ``RunRecord`` is one REST agent run: its events as ready-to-send SSE frames (any number
of clients can follow it, from any event on), its state, its result. Running runs and
busy sessions are held in plain dicts (never evicted); finished runs and idle sessions
go to ``IdleLRU`` maps, so memory is bounded by the limits, not by traffic.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, NewType

import orjson

from agentrt import RunDone, RunEvent, RunStarted, Session

from ._errors import APIError
from ._events_json import event_json
from ._lru import IdleLRU
from ._sse import event_frame

RestRunId = NewType("RestRunId", str)
RestSessionId = NewType("RestSessionId", str)
RunState = Literal["running", "completed", "max_iterations", "error", "cancelled", "tool_calls"]
"""(An agent has no client tools: its runs never pause at "tool_calls".)"""


class RunRecord:
    """One agent run as clients see it.

    Invariants: ``frames`` only grows, and not after ``state`` leaves ``"running"``; the
    last frame of a finished run is its terminal event (``done``, ``cancelled`` or
    ``error``); frame ``i`` carries SSE id ``i``.
    """

    def __init__(self, agent: str, session_id: RestSessionId, owner: str | None, text: str) -> None:
        self.id = RestRunId(f"run_{uuid.uuid4().hex[:24]}")
        self.agent = agent
        self.session_id = session_id
        self.owner = owner
        self.input = text
        self.created_at = time.time()
        self.finished_at: float | None = None
        self.state: RunState = "running"
        self.result: dict[str, Any] | None = None
        self.final_text: str | None = None
        self.error: str | None = None
        self.ftr_s: float | None = None
        self.frames: list[bytes] = []
        self.task: asyncio.Task[RunState] | None = None
        self._t0 = 0.0
        self._done_seen = False
        self._wake = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def add_event(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._t0 = event.t
        payload = event_json(event, self.id, self._t0)
        if isinstance(event, RunDone):
            r = event.result
            self.result, self.final_text, self.ftr_s = payload["result"], r.final_text, r.ftr_s
            self.error = r.error
            self._done_seen = True
        self._append(event.kind, payload)

    def finish(self, state: RunState, error: str | None = None) -> None:
        """End the run; without a ``done`` event, a ``cancelled``/``error`` event ends it."""
        assert not self.finished, f"run {self.id} finished twice"
        if self._done_seen and self.result is not None:
            state = self.result["status"]  # the turn had ended; a late cancel changes nothing
        else:
            self.error = error or self.error
            self._append(state, {"kind": state, "run_id": self.id, "error": self.error})
        self.state = state
        self.finished_at = time.time()
        self._wake.set()

    def _append(self, kind: str, payload: dict[str, Any]) -> None:
        assert not self.finished, f"event {kind!r} after run {self.id} finished"
        self.frames.append(event_frame(kind, orjson.dumps(payload), len(self.frames)))
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def follow(self, after: int = -1) -> AsyncIterator[bytes]:
        """Frames with id > ``after`` as they come, until the terminal one."""
        i = max(after + 1, 0)
        while True:
            while i < len(self.frames):
                yield self.frames[i]
                i += 1
            if self.finished:
                return
            await self._wake.wait()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "agent.run",
            "agent": self.agent,
            "session_id": self.session_id,
            "status": self.state,
            "input": self.input,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "final_text": self.final_text,
            "ftr_s": self.ftr_s,
            "error": self.error,
            "events": len(self.frames),
            "result": self.result,
        }


class RunStore:
    """Running runs by id, plus the most recently used finished ones (``IdleLRU``)."""

    def __init__(
        self, max_finished: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._running: dict[RestRunId, RunRecord] = {}
        self._finished: IdleLRU[RestRunId, RunRecord] = IdleLRU(max_finished, ttl_s, clock)

    def add(self, rec: RunRecord) -> None:
        assert not rec.finished, "only running runs are added"
        self._running[rec.id] = rec

    def retire(self, rec: RunRecord) -> None:
        """A run ended: it stays fetchable until evicted."""
        assert rec.finished, f"run {rec.id} retired while running"
        self._running.pop(rec.id, None)
        self._finished.put(rec.id, rec)

    def get(self, run_id: str, owner: str | None) -> RunRecord:
        """The run, if it exists and belongs to ``owner``.

        Raises:
            APIError: 404 otherwise (another tenant's run is reported as unknown).
        """
        self._finished.evict()
        rec = self._running.get(RestRunId(run_id)) or self._finished.get(RestRunId(run_id))
        if rec is None or rec.owner != owner:
            raise APIError(
                404,
                f"run {run_id!r} does not exist (or has expired)",
                param="run_id",
                code="run_not_found",
            )
        return rec

    def running(self) -> list[RunRecord]:
        return list(self._running.values())

    def __len__(self) -> int:
        self._finished.evict()
        return len(self._running) + len(self._finished)

    def check_integrity(self) -> None:
        assert all(not r.finished for r in self._running.values()), (
            "a finished run is still running"
        )
        assert all(r.finished for _, r in self._finished.items()), "a running run was retired"
        assert not any(k in self._finished for k in self._running), "a run is in both maps"
        self._finished.check_integrity()


@dataclass(slots=True)
class SessionEntry:
    """A conversation: the SDK ``Session`` (its token log), its agent and its tenant."""

    id: RestSessionId
    session: Session
    agent: str
    owner: str | None


class SessionStore:
    """Busy sessions (a turn is running) by id, plus idle ones in an ``IdleLRU``.

    Invariant: a session is in exactly one of the two; a busy session is never evicted.
    """

    def __init__(
        self, max_idle: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._busy: dict[RestSessionId, SessionEntry] = {}
        self._idle: IdleLRU[RestSessionId, SessionEntry] = IdleLRU(max_idle, ttl_s, clock)

    def start(self, session: Session, agent: str, owner: str | None) -> SessionEntry:
        entry = SessionEntry(RestSessionId(f"sess_{uuid.uuid4().hex[:24]}"), session, agent, owner)
        self._busy[entry.id] = entry
        return entry

    def resume(self, session_id: str, agent: str, owner: str | None) -> SessionEntry:
        """Take an idle session for a new turn.

        Raises:
            APIError: 404 unknown (or expired, or another tenant's); 409 busy or another agent's.
        """
        sid = RestSessionId(session_id)
        busy = self._busy.get(sid)
        if busy is not None and busy.owner == owner:
            raise APIError(
                409,
                f"session {session_id!r} is running a turn; wait for it to end",
                param="session_id",
                code="session_busy",
            )
        entry = self._idle.get(sid)
        if entry is None or entry.owner != owner:
            raise APIError(
                404,
                f"session {session_id!r} does not exist (or has expired)",
                param="session_id",
                code="session_not_found",
            )
        if entry.agent != agent:
            raise APIError(
                409,
                f"session {session_id!r} belongs to agent {entry.agent!r}",
                param="session_id",
                code="session_agent_mismatch",
            )
        self._idle.pop(sid)
        self._busy[sid] = entry
        return entry

    def release(self, entry: SessionEntry, *, keep: bool) -> None:
        """A turn ended; ``keep=False`` drops a conversation whose turn did not finish cleanly."""
        assert self._busy.pop(entry.id, None) is entry, f"session {entry.id} was not busy"
        if keep:
            self._idle.put(entry.id, entry)

    def __len__(self) -> int:
        self._idle.evict()
        return len(self._busy) + len(self._idle)

    def check_integrity(self) -> None:
        assert not any(k in self._idle for k in self._busy), "a session is both busy and idle"
        self._idle.check_integrity()
