"""When a split prefill may run: on spare engine capacity only, and only when it can
finish before the tools do.

A split prefill is a bet: compute split A's KV now, while the tools run, so the next
call finds it cached. The bet only pays when the engine has room for it (otherwise it
displaces a foreground request) and when it ends before the tool results arrive (otherwise
the next call waits for it, or recomputes it). The policy reads the engine's
:class:`~agentrt.engine.EngineLoad`, the same on every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agentrt.engine import EngineLoad, RequestStats

_MIN_RATE_TOKENS = 16
"""Uncached prompt tokens below which a request's time says nothing about prefill speed."""

SkipReason = Literal["saturated", "tools_faster", "nothing_new"]


@dataclass(frozen=True, slots=True)
class IssueSplit:
    """Prefill split A: ``new_tokens`` of it are not cached yet."""

    new_tokens: int
    kind: Literal["issue"] = "issue"


@dataclass(frozen=True, slots=True)
class SkipSplit:
    """Do not prefill split A.

    ``reason``: "saturated" (the engine has no spare capacity, or cannot tell),
    "tools_faster" (the tools should be done before the prefill would be), "nothing_new"
    (split A adds no full KV block to what is cached, and has no hints to place).
    """

    reason: SkipReason
    kind: Literal["skip"] = "skip"


SplitDecision = IssueSplit | SkipSplit


def uncached_full_blocks(split_a: Sequence[int], cached: Sequence[int], block_size: int) -> int:
    """Tokens of ``split_a``'s full blocks beyond its full blocks already in ``cached``.

    ``cached`` is what the engine holds for this run: the last prompt plus its output.
    Only whole blocks are cached, so a prefill adds nothing unless it completes a block::

        cached   |blk|blk|blk|..            (full blocks of the previous prompt + output)
        split_a  |blk|blk|blk|blk|blk|..    (shares a prefix with cached)
                             ^^^^^^^ new full blocks: what the prefill buys
    """
    shared = 0
    for a, b in zip(split_a, cached, strict=False):
        if a != b:
            break
        shared += 1
    have = (min(shared, len(cached)) // block_size) * block_size
    full = (len(split_a) // block_size) * block_size
    return max(0, full - have)


def prefill_rate(stats: RequestStats | None) -> float | None:
    """Uncached prompt tokens per second in ``stats``' request (queueing left out), or None
    when it prefilled too few tokens to tell."""
    if stats is None or stats.ttft_s is None:
        return None
    uncached = stats.prompt_tokens - stats.cached_tokens
    busy = stats.ttft_s - (stats.queue_s or 0.0)
    if uncached < _MIN_RATE_TOKENS or busy <= 0:
        return None
    return uncached / busy


def decide_split(
    load: EngineLoad,
    *,
    new_tokens: int,
    tools_left_s: float,
    tokens_per_s: float | None,
    relabels: bool = False,
) -> SplitDecision:
    """Whether to prefill split A now.

    Args:
        load: the engine's load at this moment.
        new_tokens: split A's tokens in full blocks that are not cached yet.
        tools_left_s: how much longer the tools are expected to run.
        tokens_per_s: the engine's prefill speed (the engine's own figure, else one seen
            on this run's requests); None: unknown, and the prefill is not ruled out on
            time.
        relabels: the prefill carries cache hints, so even with nothing new to compute
            it marks split A's cached blocks SPLIT_PENDING (kept while the tools run).

    Returns:
        ``IssueSplit`` only when all of: the engine is not saturated, the prefill adds a
        block or relabels, and it should end before the tools do.
    """
    if new_tokens <= 0 and not relabels:
        return SkipSplit("nothing_new")
    if load.saturated:
        return SkipSplit("saturated")
    rate = load.prefill_tokens_per_s or tokens_per_s
    if rate is not None and new_tokens / rate >= tools_left_s:
        return SkipSplit("tools_faster")
    return IssueSplit(new_tokens)
