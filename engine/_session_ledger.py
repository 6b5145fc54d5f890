"""Which agent sessions one engine served: requests and releases per session, bounded.

The tier-aware scheduler keeps one :class:`SessionLedger`; ``agentrt engine serve``
publishes it as ``GET /agentrt/sessions``. With several replicas behind a router it is
each replica's own account of where a session's iterations and its release landed, so
session affinity can be checked from the replicas' side. Nothing here imports vLLM.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._types import SessionId

DEFAULT_CAPACITY = 4096
"""Sessions a ledger remembers; the least recently seen is forgotten first."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What one engine saw of one session.

    Attributes:
        requests: requests that named the session (generate and prefill alike).
        releases: releases of the session that reached this engine.
        released_blocks: cached blocks those releases demoted (0: the engine held none).
    """

    requests: int = 0
    releases: int = 0
    released_blocks: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "releases": self.releases,
            "released_blocks": self.released_blocks,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SessionRecord:
        """Read :meth:`to_json`'s form; a missing count is 0.

        Raises:
            ValueError: naming the count that is not a non-negative integer.
        """
        counts: list[int] = []
        for key in ("requests", "releases", "released_blocks"):
            value = raw.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"session record: {key} must be a non-negative integer")
            counts.append(value)
        return cls(*counts)


class SessionLedger:
    """Per-session counts of one engine, for at most ``capacity`` sessions.

    Invariants: every count only grows while a session is remembered; at most
    ``capacity`` sessions are held, and ``forgotten`` counts those dropped to keep it so
    (the least recently seen first).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.forgotten = 0
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()

    def on_request(self, session: str) -> None:
        """A request naming ``session`` arrived."""
        old = self._touch(session)
        self._records[session] = SessionRecord(old.requests + 1, old.releases, old.released_blocks)

    def on_release(self, session: str, demoted_blocks: int) -> None:
        """A release of ``session`` arrived and demoted ``demoted_blocks`` cached blocks."""
        old = self._touch(session)
        self._records[session] = SessionRecord(
            old.requests, old.releases + 1, old.released_blocks + demoted_blocks
        )

    def get(self, session: str) -> SessionRecord | None:
        return self._records.get(session)

    def __len__(self) -> int:
        return len(self._records)

    def to_json(self) -> dict[str, Any]:
        """``{"sessions": {id: SessionRecord.to_json()}, "forgotten": n}``, oldest first."""
        return {
            "sessions": {s: r.to_json() for s, r in self._records.items()},
            "forgotten": self.forgotten,
        }

    def _touch(self, session: str) -> SessionRecord:
        record = self._records.pop(session, None)
        if record is None:
            record = SessionRecord()
            if len(self._records) >= self.capacity:
                self._records.popitem(last=False)
                self.forgotten += 1
        return record


def decode_sessions(payload: Mapping[str, Any]) -> dict[SessionId, SessionRecord]:
    """Read :meth:`SessionLedger.to_json`'s form (what ``GET /agentrt/sessions`` returns).

    Raises:
        ValueError: the payload is not that form, naming what is wrong.
    """
    raw = payload.get("sessions")
    if not isinstance(raw, Mapping):
        raise ValueError("sessions payload: 'sessions' must be an object")
    out: dict[SessionId, SessionRecord] = {}
    for session, record in raw.items():
        if not isinstance(record, Mapping):
            raise ValueError(f"sessions payload: the record of {session!r} must be an object")
        out[SessionId(str(session))] = SessionRecord.from_json(record)
    return out
