"""Models of vllm-router's policies, for the twin's replicas: which replica gets a request.

Each policy decides as the router (vllm-router 0.1.17, the one ``agentrt engine cluster``
launches) does, from what the router can see — the request's prompt, its session
(``X-Session-Id``) and how many requests it has in flight at each replica:

* ``round_robin`` — replicas in turn, every request (a prefill too) taking the next.
* ``cache_aware`` — the router's own prefix tree of prompts it sent (``PrefixIndex``):
  if the load is imbalanced (``max - min > balance_abs`` and ``max > balance_rel·min``
  in-flight requests) the least loaded replica; else the replica whose remembered text
  shares the longest prefix with the prompt, if that prefix is more than
  ``cache_threshold`` of the prompt (the router picks the tenant that last touched the
  deepest matching node: here the most recent holder); else the least loaded. The
  chosen replica then remembers the prompt. Defaults are the router's.
* ``session_affine`` — vllm-router's ``sticky_least_loaded``: a session's first request
  pins it to the replica with the fewest active sessions (ties by a hash of session and
  replica), later ones follow the pin; ``finish_session`` (sent with a release) unpins it.
* ``consistent_hash`` — a session always on the replica its hash picks (rendezvous
  hashing: the set of replicas decides, not their load).

Requests with no session are routed by load (``session_affine``) or by the prompt's
hash (``consistent_hash``), as the router does with no key.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from ._twin_prefix_index import PrefixIndex

RouterPolicyName = Literal["round_robin", "cache_aware", "session_affine", "consistent_hash"]
ROUTER_POLICIES: tuple[RouterPolicyName, ...] = get_args(RouterPolicyName)


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """What the router reads of a request: its prompt and its session (None: no header)."""

    prompt: Sequence[int]
    session: str | None


class RouterPolicy(Protocol):
    """Picks a replica for each request; told when a session ends."""

    name: RouterPolicyName

    def choose(self, query: RouteQuery, in_flight: Sequence[int]) -> int:
        """The replica index for ``query``, given each replica's requests in flight."""
        ...

    def finish_session(self, session: str) -> None:
        """The router's ``/finish_session``: the run is over."""
        ...


def _least(values: Sequence[int], among: Sequence[int] | None = None) -> int:
    """The index with the smallest value (the first of equals, as the router's min does)."""
    idx = range(len(values)) if among is None else among
    return min(idx, key=lambda i: values[i])


def _weight(key: str, replica: int) -> int:
    """Rendezvous weight of ``replica`` for ``key``: stable across runs and processes."""
    digest = hashlib.blake2b(f"{key}:{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class RoundRobin:
    name: RouterPolicyName = "round_robin"

    def __init__(self, replicas: int) -> None:
        self._next = itertools.cycle(range(replicas))

    def choose(self, query: RouteQuery, in_flight: Sequence[int]) -> int:
        return next(self._next)

    def finish_session(self, session: str) -> None:
        return None


class SessionAffine:
    """``sticky_least_loaded``. Invariant: ``_active[r]`` counts the pins onto ``r``."""

    name: RouterPolicyName = "session_affine"

    def __init__(self, replicas: int) -> None:
        self._pins: dict[str, int] = {}
        self._active = [0] * replicas

    def choose(self, query: RouteQuery, in_flight: Sequence[int]) -> int:
        s = query.session
        if s is None:
            return _least(self._active)
        pinned = self._pins.get(s)
        if pinned is not None:
            return pinned
        fewest = min(self._active)
        tied = [r for r, n in enumerate(self._active) if n == fewest]
        choice = max(tied, key=lambda r: _weight(s, r))
        self._pins[s] = choice
        self._active[choice] += 1
        return choice

    def finish_session(self, session: str) -> None:
        r = self._pins.pop(session, None)
        if r is not None:
            self._active[r] -= 1


class ConsistentHash:
    name: RouterPolicyName = "consistent_hash"

    def __init__(self, replicas: int) -> None:
        self._replicas = range(replicas)

    def choose(self, query: RouteQuery, in_flight: Sequence[int]) -> int:
        key = query.session or ",".join(map(str, query.prompt[:256]))
        return max(self._replicas, key=lambda r: _weight(key, r))

    def finish_session(self, session: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class CacheAwareConfig:
    """vllm-router's ``cache_aware`` settings (its defaults), in tokens where it counts
    characters: ``max_tree_tokens`` is the router's 2**25-character budget per replica at
    ~4 characters per token; ``block`` is the granularity the twin matches at."""

    cache_threshold: float = 0.3
    balance_abs_threshold: int = 64
    balance_rel_threshold: float = 1.5
    max_tree_tokens: int = 2**25 // 4
    block: int = 16


class CacheAware:
    name: RouterPolicyName = "cache_aware"

    def __init__(self, replicas: int, config: CacheAwareConfig | None = None) -> None:
        self.config = config or CacheAwareConfig()
        self.index = PrefixIndex(
            replicas, block=self.config.block, max_tokens=self.config.max_tree_tokens
        )

    def choose(self, query: RouteQuery, in_flight: Sequence[int]) -> int:
        c = self.config
        chain = self.index.chain(query.prompt)
        hi, lo = max(in_flight), min(in_flight)
        if hi - lo > c.balance_abs_threshold and hi > lo * c.balance_rel_threshold:
            choice = _least(in_flight)
        else:
            m = self.index.match(query.prompt, chain)
            hit = bool(m.holders) and m.rate > c.cache_threshold
            choice = m.holders[0] if hit else _least(in_flight)
        self.index.insert(choice, chain)
        return choice

    def finish_session(self, session: str) -> None:
        return None


def make_policy(name: str, replicas: int) -> RouterPolicy:
    """The policy called ``name`` over ``replicas`` replicas.

    Raises:
        ValueError: an unknown name, or fewer than one replica.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if name == "round_robin":
        return RoundRobin(replicas)
    if name == "cache_aware":
        return CacheAware(replicas)
    if name == "session_affine":
        return SessionAffine(replicas)
    if name == "consistent_hash":
        return ConsistentHash(replicas)
    raise ValueError(f"router policy must be one of {', '.join(ROUTER_POLICIES)}, got {name!r}")
