"""``TurnMemory``: the tokens the server generated, so an echoed assistant turn is re-sent
exactly as the model wrote it.

A chat client sends the whole conversation back on every request, assistant turns
included, re-serialized its own way (arguments compacted, keys re-ordered, content
trimmed). Re-rendering such a turn gives other tokens than the model generated, and the
prefix cache misses from there on. So the server remembers, per API key, each
completion's tokens; a later message that equals a remembered turn as JSON (see
:func:`fingerprint`) is put into the prompt as those tokens instead of a re-render.

Memory is bounded: at most ``capacity`` completions, each forgotten after ``ttl_s``
unused (``IdleLRU``). A completion is found by its id, by one of its tool-call ids, or
(for turns without calls) by its fingerprint. Thread-safe: requests are prepared on
worker threads while completions are remembered on the event loop.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from agentrt.engine import ChatMessage, ChatTokenizer

from ._auth import ApiKey
from ._lru import IdleLRU

Scope = str
"""Whose memory: one per API key (``scope_of``); never shared across keys."""


def scope_of(key: ApiKey | None) -> Scope:
    """The memory scope of ``key``: a digest of the key itself ("" without authentication)."""
    if key is None:
        return ""
    return hashlib.sha256(b"agentrt-turns:" + key.key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RememberedTurn:
    """One completion as its tokens appear in a later prompt.

    Invariants: ``segment`` is the generation prompt, the generated tokens verbatim and
    the turn close, so the prompt it answered (which ends with the generation prompt)
    followed by ``segment[opening:]`` is the conversation up to the end of this turn;
    ``fingerprint`` is of the content and calls the client received; ``call_ids`` are
    the ids it received, in order. The prompt itself is not kept (memory stays bounded
    by the output lengths).
    """

    completion_id: str
    segment: tuple[int, ...]
    fingerprint: str
    call_ids: tuple[str, ...]
    session: str | None
    final: bool
    opening: int

    def after(self, prompt: tuple[int, ...]) -> tuple[int, ...]:
        """``prompt`` (the one this turn answered) followed by this turn."""
        return prompt + self.segment[self.opening :]


def fingerprint(content: str, calls: Sequence[tuple[str, str]]) -> str | None:
    """Canonical text of an assistant turn: content without surrounding whitespace, and
    each call's name and arguments parsed and re-encoded with sorted keys.

    Two turns are the same turn iff their fingerprints are equal, however a client
    re-serialized them. None when an argument text is not JSON (it can match nothing).
    """
    parsed = []
    for name, arguments in calls:
        try:
            parsed.append([name, orjson.loads(arguments) if arguments.strip() else {}])
        except orjson.JSONDecodeError:
            return None
    return orjson.dumps([content.strip(), parsed], option=orjson.OPT_SORT_KEYS).decode()


def message_fingerprint(msg: ChatMessage) -> str | None:
    return fingerprint(msg.content, [(c.name, c.arguments) for c in msg.tool_calls])


def turn_segment(tok: ChatTokenizer, generated: Sequence[int]) -> tuple[int, ...]:
    """The generated tokens as a whole turn of a later prompt: generation prompt, the
    tokens verbatim, ``<|im_end|>`` when decoding stopped before writing it, turn close."""
    closed = list(generated)
    if not closed or closed[-1] != tok.im_end_id:
        closed.append(tok.im_end_id)
    return (*tok.generation_prompt, *closed, *tok.turn_close)


class TurnMemory:
    """Remembered completions per scope, bounded in number and idle time.

    Args:
        capacity: completions kept over all scopes (least recently used go first).
        ttl_s: a completion unused this long is forgotten.
        clock: seconds, monotonic (tests pass a fake).
    """

    def __init__(
        self, capacity: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._turns: IdleLRU[tuple[Scope, str], RememberedTurn] = IdleLRU(
            capacity, ttl_s, clock, on_evict=self._drop_aliases
        )
        # (scope, "call:<id>" | "fp:<fingerprint>") -> completion id
        self._aliases: dict[tuple[Scope, str], str] = {}

    def __len__(self) -> int:
        with self._lock:
            self._turns.evict()
            return len(self._turns)

    def remember(self, scope: Scope, turn: RememberedTurn) -> None:
        with self._lock:
            self._turns.put((scope, turn.completion_id), turn)
            for call_id in turn.call_ids:
                self._aliases[(scope, "call:" + call_id)] = turn.completion_id
            if not turn.call_ids:
                self._aliases[(scope, "fp:" + turn.fingerprint)] = turn.completion_id

    def by_completion(self, scope: Scope, completion_id: str) -> RememberedTurn | None:
        with self._lock:
            return self._turns.get((scope, completion_id))

    def match(self, scope: Scope, msg: ChatMessage) -> RememberedTurn | None:
        """The remembered turn ``msg`` (an assistant message) echoes, or None.

        A turn with calls is looked up by its first call's id, one without by its
        fingerprint; either way the fingerprints must be equal (a client that edited
        the turn gets it re-rendered, as it wrote it).
        """
        if msg.role != "assistant":
            return None
        fp = message_fingerprint(msg)
        if fp is None:
            return None
        alias = "call:" + msg.tool_calls[0].id if msg.tool_calls else "fp:" + fp
        with self._lock:
            completion_id = self._aliases.get((scope, alias))
            if completion_id is None:
                return None
            turn = self._turns.get((scope, completion_id))
        if turn is None or turn.fingerprint != fp:
            return None
        if msg.tool_calls and tuple(c.id for c in msg.tool_calls) != turn.call_ids:
            return None
        return turn

    def _drop_aliases(self, key: tuple[Scope, str], turn: RememberedTurn) -> None:
        scope, completion_id = key
        names = ["call:" + c for c in turn.call_ids] or ["fp:" + turn.fingerprint]
        for name in names:
            if self._aliases.get((scope, name)) == completion_id:
                del self._aliases[(scope, name)]
