"""Metrics over replay records: run summaries, the theoretical maximum KV hit rate, load
at an FTR target, and the fluidity index. Pure functions of plain records."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between closest ranks.

    The same definition as numpy's default: position ``(n - 1) * q / 100`` in the
    sorted values.

    Raises:
        ValueError: on no values or ``q`` outside [0, 100].
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _block_hashes(tokens: Sequence[int], block_size: int) -> list[int]:
    """Chained hashes of the full blocks: block ``j``'s hash covers tokens ``[0, (j+1)B)``,
    so equal hashes mean equal prefixes (as in vLLM's prefix cache)."""
    out: list[int] = []
    h = 0
    for j in range(len(tokens) // block_size):
        h = hash((h, tuple(tokens[j * block_size : (j + 1) * block_size])))
        out.append(h)
    return out


def theoretical_max_hits(
    prompts: Sequence[Sequence[int]],
    block_size: int,
    *,
    outputs: Sequence[Sequence[int]] | None = None,
) -> int:
    """Most prompt tokens any prefix cache could have served, with unlimited memory.

    Each prompt (in arrival order) hits its longest prefix of whole blocks that appeared
    at the start of any earlier sequence; its hit is capped at ``(len - 1) // block_size``
    blocks because vLLM always computes the last prompt token (it needs its logits).
    With ``outputs``, what each call generated counts as cached too, as in vLLM: prompt
    plus output minus the last token (whose KV is never computed).

    Args:
        prompts: token ids of each prompt, in the order the engine received them.
        block_size: the engine's KV block size in tokens.
        outputs: optional generated token ids of each prompt's call.

    Returns:
        The sum of the hits, in tokens. One set of block-prefix hashes makes it
        linear in the total tokens.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if outputs is not None and len(outputs) != len(prompts):
        raise ValueError(f"outputs: {len(outputs)} for {len(prompts)} prompts")
    seen: set[int] = set()
    total = 0
    for i, prompt in enumerate(prompts):
        hashes = _block_hashes(prompt, block_size)
        cap = max(0, (len(prompt) - 1) // block_size)
        hits = 0
        while hits < cap and hashes[hits] in seen:
            hits += 1
        total += hits * block_size
        seen.update(hashes)
        if outputs is not None and len(outputs[i]) > 1:
            seen.update(_block_hashes([*prompt, *outputs[i][:-1]], block_size))
    return total


@dataclass(frozen=True, slots=True)
class LoadAtTarget:
    """The highest load meeting an FTR target.

    ``interpolated``: between the last measured load under the target and the first
    over it. ``lower_bound``: every measured load met the target, so the true value is
    at least ``load`` (the highest measured).
    """

    load: float
    kind: Literal["interpolated", "lower_bound"]


def load_at_target(points: Sequence[tuple[float, float]], target_s: float) -> LoadAtTarget | None:
    """The highest load whose latency (e.g. median FTR) meets ``target_s``.

    A point meets the target when its latency is ``<= target_s``. Points are sorted by
    load; at the first point over the target, the load is interpolated linearly between
    it and the point before. Recoveries at higher loads (noise) are ignored.

    Returns:
        ``None`` when even the lowest load misses; a ``lower_bound`` result when all
        points meet it; else an ``interpolated`` one.

    Raises:
        ValueError: on no points, repeated loads, or non-finite values.
    """
    if not points:
        raise ValueError("load_at_target needs at least one (load, latency) point")
    pts = sorted(points)
    for (a, _), (b, _) in itertools.pairwise(pts):
        if a == b:
            raise ValueError(f"points: load {a} appears twice")
    for load, lat in pts:
        if not (math.isfinite(load) and math.isfinite(lat)):
            raise ValueError(f"points: ({load}, {lat}) is not finite")
    if pts[0][1] > target_s:
        return None
    for (l0, f0), (l1, f1) in itertools.pairwise(pts):
        if f1 > target_s:
            # f0 <= target < f1, so the slope is positive and the result lies in [l0, l1).
            return LoadAtTarget(l0 + (target_s - f0) * (l1 - l0) / (f1 - f0), "interpolated")
    return LoadAtTarget(pts[-1][0], "lower_bound")


def fluidity_index(
    token_times: Sequence[float],
    ttft_deadline_s: float,
    tbt_deadline_s: float,
    *,
    start_t: float = 0.0,
) -> float | None:
    """Share of token deadlines met by a token stream (after Etalon's fluidity index).

    Token ``i`` is due at ``start_t + ttft_deadline_s + i * tbt_deadline_s``. When a
    token misses its deadline, the schedule restarts from that token's actual time:
    token ``j > i`` is then due at ``t_i + (j - i) * tbt_deadline_s``, so one stall is
    charged once rather than to every token after it. A token meets its deadline when
    it arrives at or before it.

    Returns:
        met / tokens, or ``None`` for an empty stream (no deadlines to meet).
    """
    if ttft_deadline_s < 0 or tbt_deadline_s < 0:
        raise ValueError("deadlines must be >= 0")
    if not token_times:
        return None
    anchor, anchor_index = start_t + ttft_deadline_s, 0
    met = 0
    for i, t in enumerate(token_times):
        due = anchor + (i - anchor_index) * tbt_deadline_s
        if t <= due:
            met += 1
        else:
            anchor, anchor_index = t, i
    return met / len(token_times)
