"""``ScriptedEngine``: the Engine protocol with no model, for tests and users' own tests.

Outputs come from a script; time comes from a deterministic step model of a batching
engine (vLLM-like continuous batching: each step decodes one token for every running
request and prefills prompt chunks within a token budget). Cached prompt tokens cost
nothing, using the same block-level prefix cache and eviction tiers as the real engine.
On a virtual-time event loop every timestamp is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ._base import EngineBase
from ._clock import now
from ._protocol import EngineError, PromptTooLongError
from ._sim_cache import Allocation, SimPrefixCache
from ._tokenizer import ByteCodec, ChatTokenizer
from ._types import (
    EngineInfo,
    EngineStats,
    FinishReason,
    GenerateRequest,
    RequestId,
    RequestStats,
    SessionId,
    TokenDelta,
)


@dataclass(frozen=True, slots=True)
class TimingModel:
    """Seconds each engine step costs.

    A step that prefills ``p`` uncached prompt tokens and decodes ``d`` sequences takes
    ``step_overhead_s + p * prefill_s_per_token + (decode_step_s + d * decode_s_per_seq
    if d else 0)``. A request's first token is sampled at the end of the step that
    finishes its prefill; every later token takes one step.
    """

    prefill_s_per_token: float = 0.001
    decode_step_s: float = 0.02
    decode_s_per_seq: float = 0.0
    step_overhead_s: float = 0.0
    max_batched_tokens: int = 2048
    max_num_seqs: int = 64

    def __post_init__(self) -> None:
        for name in ("prefill_s_per_token", "decode_step_s", "decode_s_per_seq", "step_overhead_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"TimingModel.{name} must be >= 0")
        if self.max_batched_tokens < 1 or self.max_num_seqs < 1:
            raise ValueError("TimingModel budgets must be >= 1")


@dataclass(frozen=True, slots=True)
class ScriptContext:
    """What a script sees of a request: the request, its prompt text and the call's index."""

    request: GenerateRequest
    prompt_text: str
    index: int


Reply = str | Sequence[int]
Script = Callable[[ScriptContext], Reply] | Iterable[Reply]


@dataclass(slots=True)
class _Req:
    rid: RequestId
    req: GenerateRequest
    output: list[int]
    finish_if_done: FinishReason
    arrival_t: float
    queue: asyncio.Queue[TokenDelta] = field(default_factory=asyncio.Queue)
    alloc: Allocation | None = None
    prefilled: int = 0
    emitted: int = 0
    decoded_upto: int = 0
    first_token_t: float | None = None
    scheduled_t: float | None = None
    done: bool = False


class ScriptedEngine(EngineBase):
    """A deterministic engine: scripted outputs, modelled step timing, simulated prefix cache.

    Args:
        script: replies in call order, or a function of ``ScriptContext`` returning one.
            A reply is text (encoded, then ended with ``<|im_end|>`` like a model that
            stops) or exact token ids. ``forced_output`` in a request overrides it.
        timing: the step-cost model.
        tokenizer: defaults to a byte-level ChatML tokenizer.
        block_size, num_blocks: prefix cache geometry (``None``: unbounded).
        use_tiers: evict by cache-hint tiers (False: plain LRU, the baseline).
        record_requests: keep every request in ``requests`` (turn off for long runs).
    """

    def __init__(
        self,
        script: Script = (),
        *,
        timing: TimingModel | None = None,
        tokenizer: ChatTokenizer | None = None,
        block_size: int = 16,
        num_blocks: int | None = None,
        max_model_len: int = 32768,
        use_tiers: bool = True,
        record_requests: bool = True,
    ) -> None:
        self._script_fn = script if callable(script) else None
        self._script_iter = None if callable(script) else iter(list(script))
        self.timing = timing or TimingModel()
        self._tokenizer = tokenizer or ChatTokenizer(ByteCodec())
        self.prefill_forced_token = self._tokenizer.im_end_id
        self.cache = SimPrefixCache(block_size, num_blocks, use_tiers=use_tiers)
        self._info = EngineInfo("scripted", max_model_len, block_size, use_tiers, "scripted")
        self._ids = itertools.count()
        self._calls = itertools.count()
        self._waiting: list[_Req] = []
        self._running: list[_Req] = []
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self.requests: list[GenerateRequest] = []
        """Every request received, in order (for assertions in tests)."""
        self._record = record_requests

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self._tokenizer

    @property
    def info(self) -> EngineInfo:
        return self._info

    def _reply_tokens(self, req: GenerateRequest) -> tuple[list[int], FinishReason]:
        if req.forced_output is not None:
            out = list(req.forced_output)
            return out, "stop" if out[-1] == self._tokenizer.im_end_id else "length"
        ctx = ScriptContext(req, self._tokenizer.decode(req.prompt), next(self._calls))
        if self._script_fn is not None:
            reply = self._script_fn(ctx)
        else:
            assert self._script_iter is not None
            try:
                reply = next(self._script_iter)
            except StopIteration:
                raise EngineError("ScriptedEngine ran out of scripted replies") from None
        if isinstance(reply, str):
            text = reply
            for s in req.sampling.stop:
                if s in text:
                    text = text[: text.index(s)]
            out = [*self._tokenizer.encode(text), self._tokenizer.im_end_id]
        else:
            out = list(reply)
        limit = min(req.sampling.max_tokens, self._info.max_model_len - len(req.prompt))
        if len(out) > limit:
            return out[:limit], "length"
        return out, "stop"

    def _admit(self, req: GenerateRequest) -> _Req:
        if self._closed:
            raise EngineError("engine is closed")
        if len(req.prompt) >= self._info.max_model_len:
            raise PromptTooLongError(len(req.prompt), self._info.max_model_len)
        if self._record:
            self.requests.append(req)
        output, finish = self._reply_tokens(req)
        rid = req.request_id or RequestId(f"scripted-{next(self._ids)}")
        r = _Req(rid, req, output, finish, now())
        self._waiting.append(r)
        self._waiting.sort(key=lambda x: x.req.priority)  # stable: FIFO within a priority
        self._ensure_loop()
        assert self._wake is not None
        self._wake.set()
        return r

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._run_steps())

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        r = self._admit(request)
        try:
            while True:
                delta = await r.queue.get()
                yield delta
                if delta.stats is not None:
                    return
        finally:
            if not r.done:
                self._abort(r)

    def _abort(self, r: _Req) -> None:
        r.done = True
        if r in self._waiting:
            self._waiting.remove(r)
        if r in self._running:
            self._running.remove(r)
        if r.alloc is not None:
            self.cache.free(r.alloc, (), None, now_s=now())

    async def release(self, session: SessionId) -> None:
        self.cache.release(session)

    async def stats(self) -> EngineStats:
        return EngineStats(
            prefix_cache_queries=self.cache.queries,
            prefix_cache_hits=self.cache.hits,
            kv_usage=(self.cache.num_cached / self.cache.capacity) if self.cache.capacity else 0.0,
            num_running=len(self._running),
            num_waiting=len(self._waiting),
            block_size=self.cache.block_size,
            num_blocks=self.cache.capacity or 0,
            tiers=self.cache.tier_stats(),
        )

    async def _run_steps(self) -> None:
        try:
            await self._steps()
        except Exception as exc:
            # Never leave a caller waiting on a stream that will not move again.
            for r in [*self._running, *self._waiting]:
                self._fail(r, f"scripted engine failed: {exc!r}")
            self._running.clear()
            self._waiting.clear()
            raise

    async def _steps(self) -> None:
        assert self._wake is not None
        tm = self.timing
        while not self._closed:
            self._schedule_waiting()
            if not self._running:
                self._wake.clear()
                await self._wake.wait()
                continue
            decoding = [r for r in self._running if r.prefilled >= len(r.req.prompt)]
            budget = tm.max_batched_tokens - len(decoding)
            chunks: list[tuple[_Req, int]] = []
            for r in self._running:
                left = len(r.req.prompt) - r.prefilled
                if left > 0 and budget > 0:
                    take = min(left, budget)
                    chunks.append((r, take))
                    budget -= take
            step = tm.step_overhead_s + tm.prefill_s_per_token * sum(
                self._uncached(r, n) for r, n in chunks
            )
            if decoding:
                step += tm.decode_step_s + tm.decode_s_per_seq * len(decoding)
            await asyncio.sleep(step)
            t = now()
            for r, n in chunks:
                if r.done:  # aborted while its step ran
                    continue
                r.prefilled += n
                if r.prefilled >= len(r.req.prompt):
                    self._emit(r, t)
            for r in decoding:
                if not r.done:
                    self._emit(r, t)

    def _uncached(self, r: _Req, n: int) -> int:
        """Tokens of this chunk that the prefix cache did not already hold."""
        cached = r.alloc.cached_tokens if r.alloc else 0
        lo, hi = r.prefilled, r.prefilled + n
        return max(0, hi - max(lo, cached))

    def _schedule_waiting(self) -> None:
        while self._waiting and len(self._running) < self.timing.max_num_seqs:
            r = self._waiting[0]
            need = self.cache.free_blocks_needed(
                self.cache.block_keys(r.req.prompt, r.req.cache_salt)
            )
            bs = self.cache.block_size
            reserve = (len(r.req.prompt) + len(r.output)) // bs - len(r.req.prompt) // bs
            if not self.cache.can_allocate(need + reserve):
                if not self._running:
                    self._waiting.pop(0)
                    self._fail(r, "prompt does not fit the KV cache")
                    continue
                return
            self._waiting.pop(0)
            r.alloc = self.cache.allocate(
                r.req.prompt, r.req.cache_salt, len(r.req.prompt), now(), reserve=reserve
            )
            r.scheduled_t = now()
            self._running.append(r)

    def _fail(self, r: _Req, why: str) -> None:
        r.done = True
        t = now()
        stats = RequestStats(
            r.rid, len(r.req.prompt), 0, 0, "error", r.arrival_t, None, t, error=why
        )
        r.queue.put_nowait(TokenDelta((), "", t, stats))

    def _emit(self, r: _Req, t: float) -> None:
        tid = r.output[r.emitted]
        r.emitted += 1
        if r.first_token_t is None:
            r.first_token_t = t
        # Like vLLM, streamed text leaves out the chat markers (the token ids keep them).
        # Decode only the tokens not yet shown; hold them while they end mid-character.
        markers = (self._tokenizer.im_end_id, self._tokenizer.im_start_id)
        pending = [t for t in r.output[r.decoded_upto : r.emitted] if t not in markers]
        text = self._tokenizer.decode(pending) if pending else ""
        if text.endswith("\ufffd"):
            text = ""
        else:
            r.decoded_upto = r.emitted
        stats = None
        if r.emitted == len(r.output):
            stats = self._finish(r, t)
        r.queue.put_nowait(TokenDelta((tid,), text, t, stats))

    def _finish(self, r: _Req, t: float) -> RequestStats:
        r.done = True
        self._running.remove(r)
        assert r.alloc is not None, "finishing a request that was never scheduled"
        alloc = self.cache.extend(r.alloc, [*r.req.prompt, *r.output], r.req.cache_salt, t)
        self.cache.free(alloc, r.req.hints, r.req.session, now_s=t)
        return RequestStats(
            request_id=r.rid,
            prompt_tokens=len(r.req.prompt),
            cached_tokens=r.alloc.cached_tokens,
            output_tokens=len(r.output),
            finish_reason=r.finish_if_done,
            arrival_t=r.arrival_t,
            first_token_t=r.first_token_t,
            finish_t=t,
            queue_s=(r.scheduled_t - r.arrival_t) if r.scheduled_t is not None else None,
        )

    async def reset_prefix_cache(self) -> None:
        """Forget every cached block (benchmarks start each mode from a cold cache)."""
        old = self.cache
        self.cache = SimPrefixCache(old.block_size, old.capacity, use_tiers=old.use_tiers)

    async def aclose(self) -> None:
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
