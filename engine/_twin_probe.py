"""Measuring a real engine's step times over a grid of batch shapes (``agentrt engine profile``).

Three kinds of probes, each through the ``Engine`` protocol with forced outputs so every
length is exact and fresh random tokens so nothing hits the cache unless asked to:

* prefill: a prompt of ``p`` new tokens after ``c`` cached ones (primed by a prefill
  call); its time to first token is one step with one chunk.
* decode: ``d`` streams of ``c``-token prompts decoding together; once every prefill is
  done, the median gap between one stream's tokens is a step of ``d`` decodes.
* mixed: ``d`` such streams, then a ``p``-token prompt; the gap of a decoding stream that
  ends with the prompt's first token is a step with ``d`` decodes and one chunk.

Shapes that do not fit the engine (token budget, KV capacity, context length, batch
size) are skipped. Timings are wall-clock: measure on a quiet machine.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._protocol import Engine
from ._twin_cost import Chunk, StepShape
from ._twin_fit import MeasuredStep
from ._types import GenerateRequest, PrefillRequest, RequestStats, SamplingOptions


@dataclass(frozen=True, slots=True)
class ProbeGrid:
    """Which shapes to measure, each ``repeats`` times (a median is kept)."""

    prefill_tokens: tuple[int, ...] = (32, 128, 512, 1024, 2048)
    prefill_contexts: tuple[int, ...] = (0, 512, 1536)
    decode_batches: tuple[int, ...] = (1, 2, 4, 8, 16)
    decode_contexts: tuple[int, ...] = (64, 512, 1536)
    mixed: tuple[tuple[int, int, int], ...] = ((2, 256, 256), (4, 256, 512), (8, 512, 256))
    """(decoding streams, their context, prompt tokens) per mixed probe."""
    decode_tokens: int = 24
    repeats: int = 2

    @classmethod
    def quick(cls) -> ProbeGrid:
        """A few shapes only: enough to fit six coefficients, for smoke tests."""
        return cls(
            prefill_tokens=(32, 256),
            prefill_contexts=(0, 256),
            decode_batches=(1, 4),
            decode_contexts=(64, 256),
            mixed=((2, 128, 128),),
            decode_tokens=12,
            repeats=1,
        )


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """What shapes an engine can take."""

    block_size: int
    capacity_tokens: int
    max_num_batched_tokens: int
    max_num_seqs: int
    max_model_len: int


class _Tokens:
    """Fresh token ids (never a shared prefix by accident) and one output token."""

    def __init__(self, seed: int, vocab: int, output_token: int) -> None:
        self._rng = random.Random(seed)
        self._hi = max(2000, vocab - 1)
        self.output = output_token

    def fresh(self, n: int) -> tuple[int, ...]:
        return tuple(self._rng.randrange(1000, self._hi) for _ in range(n))


async def _stream(engine: Engine, req: GenerateRequest, times: list[float]) -> RequestStats:
    stats: RequestStats | None = None
    async for delta in engine.generate(req):
        times.extend([delta.t] * len(delta.token_ids))
        stats = delta.stats or stats
    if stats is None or stats.finish_reason == "error":
        raise RuntimeError(f"probe request failed: {stats}")
    return stats


def _forced(prompt: tuple[int, ...], n: int, tok: int) -> GenerateRequest:
    return GenerateRequest(prompt, SamplingOptions(max_tokens=n), forced_output=(tok,) * n)


async def probe_prefill(engine: Engine, tokens: _Tokens, context: int, new: int) -> MeasuredStep:
    prefix = tokens.fresh(context)
    if context:
        await engine.prefill(PrefillRequest(prefix))
    stats = await _stream(engine, _forced(prefix + tokens.fresh(new), 1, tokens.output), [])
    assert stats.first_token_t is not None
    cached = stats.cached_tokens
    shape = StepShape((Chunk(stats.prompt_tokens - cached, cached),), (), 1)
    return MeasuredStep(shape, stats.first_token_t - stats.arrival_t)


async def probe_decode(
    engine: Engine, tokens: _Tokens, batch: int, context: int, steps: int
) -> MeasuredStep | None:
    times: list[list[float]] = [[] for _ in range(batch)]
    reqs = [_forced(tokens.fresh(context), steps, tokens.output) for _ in range(batch)]
    await asyncio.gather(*(_stream(engine, r, t) for r, t in zip(reqs, times, strict=True)))
    start = max(t[0] for t in times)  # every prefill is done from here on
    end = min(t[-1] for t in times)  # and nobody has finished before here
    mine = [t for t in times[0] if start <= t <= end]
    gaps = [b - a for a, b in itertools.pairwise(mine)]
    if len(gaps) < 3:
        return None
    middle = times[0].index(mine[len(mine) // 2])
    return MeasuredStep(StepShape((), (context + middle,) * batch, 0), statistics.median(gaps))


async def probe_mixed(
    engine: Engine, tokens: _Tokens, batch: int, context: int, new: int, steps: int
) -> MeasuredStep | None:
    times: list[list[float]] = [[] for _ in range(batch)]
    reqs = [_forced(tokens.fresh(context), steps, tokens.output) for _ in range(batch)]
    decoders = [
        asyncio.ensure_future(_stream(engine, r, t)) for r, t in zip(reqs, times, strict=True)
    ]
    while min(len(t) for t in times) < 3:  # all decoding, each past its first steps
        await asyncio.sleep(0.005)
        if any(d.done() for d in decoders):
            break
    stats = await _stream(engine, _forced(tokens.fresh(new), 1, tokens.output), [])
    await asyncio.gather(*decoders)
    first = stats.first_token_t
    if first is None or stats.cached_tokens:
        return None
    own = times[0]
    i = min(range(1, len(own)), key=lambda k: abs(own[k] - first))
    if abs(own[i] - first) > 0.5 * (own[i] - own[i - 1]):
        return None  # the prompt's first token did not come with a decoding step
    shape = StepShape((Chunk(new, 0),), (context + i,) * batch, 1)
    return MeasuredStep(shape, own[i] - own[i - 1])


def _median(samples: list[MeasuredStep]) -> MeasuredStep | None:
    if not samples:
        return None
    ordered = sorted(samples, key=lambda s: s.seconds)
    return ordered[len(ordered) // 2]


async def measure(
    engine: Engine,
    limits: EngineLimits,
    grid: ProbeGrid | None = None,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[MeasuredStep]:
    """Every shape of ``grid`` that fits ``limits``, measured ``grid.repeats`` times."""
    say = progress or (lambda _msg: None)
    grid = grid or ProbeGrid()
    tok = engine.tokenizer
    tokens = _Tokens(seed, tok.vocab_size, tok.encode("x")[0])
    room = min(limits.capacity_tokens, limits.max_model_len - 2)
    k = grid.decode_tokens
    jobs: list[tuple[str, Callable[[], Awaitable[MeasuredStep | None]]]] = []
    for c in grid.prefill_contexts:
        for p in grid.prefill_tokens:
            if p <= limits.max_num_batched_tokens and c + p + limits.block_size <= room:
                prefill = functools.partial(probe_prefill, engine, tokens, c, p)
                jobs.append((f"prefill {p} after {c}", prefill))
    for d in grid.decode_batches:
        for c in grid.decode_contexts:
            fits = d * (c + k + limits.block_size) <= limits.capacity_tokens and c + k < room
            if d <= limits.max_num_seqs and fits:
                jobs.append(
                    (f"decode {d} x {c}", functools.partial(probe_decode, engine, tokens, d, c, k))
                )
    for d, c, p in grid.mixed:
        fits = d * (c + 4 * k) + p + 2 * limits.block_size <= limits.capacity_tokens
        if d + 1 <= limits.max_num_seqs and p + d <= limits.max_num_batched_tokens and fits:
            mixed = functools.partial(probe_mixed, engine, tokens, d, c, p, 4 * k)
            jobs.append((f"mixed {d} x {c} + {p}", mixed))
    out: list[MeasuredStep] = []
    for i, (label, job) in enumerate(jobs):
        say(f"[{i + 1}/{len(jobs)}] {label}")
        runs = [await job() for _ in range(grid.repeats)]
        kept = _median([r for r in runs if r is not None])
        if kept is not None:
            out.append(kept)
    return out
