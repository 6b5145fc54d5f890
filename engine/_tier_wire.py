"""The client side of the tier-aware scheduler: wire format, settings, stats and release calls.

Nothing here imports vLLM, so the SDK can build payloads for a remote engine. The
engine-core side (``_tier_scheduler``) decodes the same format.

Wire format, carried in ``SamplingParams.extra_args["agentrt"]``::

    {"hints":   [[start, end, tier, ttl_s, base], ...],   # CacheHint.to_wire() items
     "session": "<session id>" | null,                    # the agent run the request belongs to
     "release": ["<session id>", ...]}                    # runs that are over (see below)

Every key is optional. In process the value is that dict; over HTTP, vLLM's ``vllm_xargs``
only accepts flat values (``str | int | float | list[str | int | float]``), so the same
dict travels as one JSON string: ``vllm_xargs={"agentrt": "<json>"}``. The scheduler
accepts both forms.

``release`` piggybacks on a request: the scheduler demotes those sessions' blocks when
the request arrives, before it allocates anything. Eviction only happens when a request
allocates, so a release delivered this way is exact where it matters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._tier_queue import DEFAULT_LIVE_TTL_S, DEFAULT_PENDING_TTL_S
from ._types import CacheHint, SessionId, Tier, TierStats

PAYLOAD_KEY = "agentrt"
"""Key of the agentrt payload in ``SamplingParams.extra_args`` and in ``vllm_xargs``."""

CONFIG_KEY = "agentrt"
"""Key of :class:`TierSettings` in vLLM's ``additional_config``."""

TIER_SCHEDULER = "agentrt.engine._tier_scheduler.TierScheduler"
"""``scheduler_cls`` for vLLM with async scheduling off (always the case on CPU)."""

ASYNC_TIER_SCHEDULER = "agentrt.engine._tier_scheduler.AsyncTierScheduler"
"""``scheduler_cls`` for vLLM with async scheduling on (the GPU default)."""

TIER_STATS_METHOD = "agentrt_tier_stats"
"""Engine-core utility method the scheduler registers (see ``_tier_scheduler``)."""

RELEASE_METHOD = "agentrt_release"
"""Engine-core utility: apply releases now, without a request to carry them."""

SESSIONS_METHOD = "agentrt_sessions"
"""Engine-core utility: the scheduler's ``SessionLedger`` as JSON."""


@dataclass(frozen=True, slots=True)
class TierPayload:
    """What one request tells the tier-aware scheduler.

    Invariants: hint positions index the request's token sequence (prompt, then output);
    ``release`` names sessions whose runs are over.
    """

    hints: tuple[CacheHint, ...] = ()
    session: SessionId | None = None
    release: tuple[SessionId, ...] = ()

    def to_extra_args(self) -> dict[str, Any]:
        """The JSON-compatible dict for ``SamplingParams.extra_args["agentrt"]``."""
        return {
            "hints": [h.to_wire() for h in self.hints],
            "session": self.session,
            "release": list(self.release),
        }

    def to_xargs(self) -> str:
        """The one-string form for ``vllm_xargs["agentrt"]`` of an OpenAI request."""
        return json.dumps(self.to_extra_args(), separators=(",", ":"))


def encode_payload(
    hints: Sequence[CacheHint],
    session: SessionId | None,
    release: Sequence[SessionId] = (),
    *,
    as_xargs: bool = False,
) -> dict[str, Any]:
    """``{"agentrt": payload}`` to merge into ``extra_args`` (or, ``as_xargs``, ``vllm_xargs``)."""
    payload = TierPayload(tuple(hints), session, tuple(release))
    return {PAYLOAD_KEY: payload.to_xargs() if as_xargs else payload.to_extra_args()}


def decode_payload(value: object) -> TierPayload:
    """Parse the agentrt payload in either form (dict, or the JSON string of one).

    Raises:
        ValueError: naming the field that is malformed.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"extra_args[{PAYLOAD_KEY!r}] is not valid JSON: {e}") from e
    if not isinstance(value, Mapping):
        raise ValueError(f"extra_args[{PAYLOAD_KEY!r}] must be an object, got {value!r}")
    raw_hints = value.get("hints") or []
    if not isinstance(raw_hints, list | tuple):
        raise ValueError(f"agentrt.hints must be a list, got {raw_hints!r}")
    hints: list[CacheHint] = []
    for i, item in enumerate(raw_hints):
        if not isinstance(item, list | tuple) or not 3 <= len(item) <= 5:
            raise ValueError(f"agentrt.hints[{i}] must be [start, end, tier, ttl_s, base]")
        try:
            hints.append(CacheHint.from_wire(item))
        except (TypeError, ValueError) as e:
            raise ValueError(f"agentrt.hints[{i}] is invalid: {e}") from e
    session = value.get("session")
    if session is not None and not isinstance(session, str):
        raise ValueError(f"agentrt.session must be a string or null, got {session!r}")
    release = value.get("release") or []
    if not isinstance(release, list | tuple) or not all(isinstance(s, str) for s in release):
        raise ValueError(f"agentrt.release must be a list of strings, got {release!r}")
    return TierPayload(
        hints=tuple(hints),
        session=SessionId(session) if session else None,
        release=tuple(SessionId(s) for s in release),
    )


def payload_from_extra_args(extra_args: Mapping[str, Any] | None) -> TierPayload | None:
    """The request's payload, or None when it carries none (a plain vLLM request)."""
    if not extra_args or PAYLOAD_KEY not in extra_args:
        return None
    return decode_payload(extra_args[PAYLOAD_KEY])


@dataclass(slots=True)
class PendingReleases:
    """Client-side queue of finished sessions, drained into the next request's payload.

    Every engine releases this way (``EngineBase.release``): each id is sent exactly
    once, and the scheduler applies it before that request allocates.
    """

    _ids: list[SessionId] = field(default_factory=list)

    def add(self, session: SessionId) -> None:
        if session not in self._ids:
            self._ids.append(session)

    def take(self) -> tuple[SessionId, ...]:
        taken, self._ids = tuple(self._ids), []
        return taken

    def __len__(self) -> int:
        return len(self._ids)


DEFAULT_PENDING_CAP = 0.5
"""Share of the KV blocks that SPLIT_PENDING labels may hold."""


@dataclass(frozen=True, slots=True)
class TierSettings:
    """Engine-side switches, passed as ``additional_config={"agentrt": settings.to_config()}``.

    ``use_tiers=False`` gives exactly vLLM's LRU order whatever hints arrive.
    ``pending_cap`` bounds the share of KV blocks labelled SPLIT_PENDING;
    ``pending_ttl_s`` is the lifetime of a SPLIT_PENDING hint that names no ``ttl_s``;
    ``live_ttl_s`` is how long a waiting run's freed context is evicted newest-release
    first before it counts as stale (0: LRU within every tier; see ``TieredFreeBlockQueue``).

    Raises:
        ValueError: naming the field when a value is out of range.
    """

    use_tiers: bool = True
    pending_cap: float = DEFAULT_PENDING_CAP
    pending_ttl_s: float = DEFAULT_PENDING_TTL_S
    live_ttl_s: float = DEFAULT_LIVE_TTL_S

    def __post_init__(self) -> None:
        if not isinstance(self.use_tiers, bool):
            raise ValueError(f"agentrt.use_tiers must be a bool, got {self.use_tiers!r}")
        if not 0.0 <= self.pending_cap <= 1.0:
            raise ValueError(f"agentrt.pending_cap must be in [0, 1], got {self.pending_cap!r}")
        if not (math.isfinite(self.pending_ttl_s) and self.pending_ttl_s > 0):
            raise ValueError(f"agentrt.pending_ttl_s must be > 0, got {self.pending_ttl_s!r}")
        if not (math.isfinite(self.live_ttl_s) and self.live_ttl_s >= 0):
            raise ValueError(f"agentrt.live_ttl_s must be >= 0, got {self.live_ttl_s!r}")

    def to_config(self) -> dict[str, Any]:
        return {
            "use_tiers": self.use_tiers,
            "pending_cap": self.pending_cap,
            "pending_ttl_s": self.pending_ttl_s,
            "live_ttl_s": self.live_ttl_s,
        }

    @classmethod
    def from_additional_config(cls, additional_config: object) -> TierSettings:
        """Read the settings from vLLM's ``additional_config`` (defaults when absent)."""
        raw = additional_config.get(CONFIG_KEY) if isinstance(additional_config, Mapping) else None
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ValueError(f"additional_config[{CONFIG_KEY!r}] must be an object, got {raw!r}")
        unknown = set(raw) - {"use_tiers", "pending_cap", "pending_ttl_s", "live_ttl_s"}
        if unknown:
            raise ValueError(f"unknown agentrt settings: {sorted(unknown)}")
        d = cls()  # absent keys keep the defaults; numbers may arrive as JSON ints
        return cls(
            use_tiers=raw.get("use_tiers", d.use_tiers),
            pending_cap=float(raw.get("pending_cap", d.pending_cap)),
            pending_ttl_s=float(raw.get("pending_ttl_s", d.pending_ttl_s)),
            live_ttl_s=float(raw.get("live_ttl_s", d.live_ttl_s)),
        )


def encode_tier_stats(stats: Mapping[str, TierStats]) -> dict[str, Any]:
    """The stats payload ``{"tiers": {name: TierStats.to_json()}}``: plain JSON values, so
    it crosses vLLM's msgpack utility channel and HTTP alike."""
    return {"tiers": {name: s.to_json() for name, s in stats.items()}}


def decode_tier_stats(payload: Mapping[str, Any]) -> dict[str, TierStats]:
    """Turn a stats payload (``{"tiers": {name: TierStats.to_json()}}``) into TierStats.

    Every tier is present in the result; a tier the payload leaves out has zero counts.
    """
    tiers = payload.get("tiers") or {}
    return {t.name: TierStats.from_json(tiers.get(t.name) or {}) for t in Tier}


def merge_tier_stats(parts: Iterable[Mapping[str, TierStats]]) -> dict[str, TierStats]:
    """Sum per-tier stats of several engine cores (data parallel replicas)."""
    total = {t.name: TierStats(0, 0, 0) for t in Tier}
    for part in parts:
        for name, s in part.items():
            old = total.get(name, TierStats(0, 0, 0))
            total[name] = TierStats(
                old.cached_blocks + s.cached_blocks, old.evictions + s.evictions, old.hits + s.hits
            )
    return total


async def _call_all(async_llm: Any, method: str, *args: Any) -> list[Any]:
    # AsyncLLM.engine_core is vLLM's engine-core client; with data parallelism it
    # manages several cores and call_utility_all_async answers once per core.
    client = async_llm.engine_core
    try:
        if hasattr(client, "call_utility_all_async"):
            return list(await client.call_utility_all_async(method, *args))
        return [await client.call_utility_async(method, *args)]
    except Exception as e:  # vLLM reports a failed utility call as a bare Exception
        raise RuntimeError(
            f"engine call {method!r} failed; does the engine run {TIER_SCHEDULER}? ({e})"
        ) from e


async def release_now(async_llm: Any, sessions: Sequence[str]) -> int:
    """Apply releases in every engine core of an in-process ``AsyncLLM`` at once (the
    ``/agentrt/release`` route: behind a router a release comes alone, not with a
    request). Returns the cached blocks demoted.

    Raises:
        RuntimeError: the engine does not run the tier-aware scheduler.
    """
    demoted = await _call_all(async_llm, RELEASE_METHOD, list(sessions))
    return sum(int(n) for n in demoted)


async def fetch_sessions(async_llm: Any) -> dict[str, Any]:
    """The session ledgers of an in-process ``AsyncLLM``'s engine cores, counts summed,
    in ``SessionLedger.to_json``'s form.

    Raises:
        RuntimeError: the engine does not run the tier-aware scheduler.
    """
    sessions: dict[str, dict[str, int]] = {}
    forgotten = 0
    for part in await _call_all(async_llm, SESSIONS_METHOD):
        forgotten += int(part.get("forgotten", 0))
        for session, record in (part.get("sessions") or {}).items():
            total = sessions.setdefault(session, {})
            for key, value in record.items():
                total[key] = total.get(key, 0) + int(value)
    return {"sessions": sessions, "forgotten": forgotten}


async def fetch_tier_stats(async_llm: Any) -> dict[str, TierStats]:
    """Per-tier cached free blocks, evictions and prefix hits of an in-process ``AsyncLLM``.

    Raises:
        RuntimeError: the engine does not run the tier-aware scheduler.
    """
    payloads = await _call_all(async_llm, TIER_STATS_METHOD)
    return merge_tier_stats(decode_tier_stats(p) for p in payloads)
