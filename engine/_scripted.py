"""``ScriptedEngine``: the Engine protocol with no model, for tests and users' own tests.

Outputs come from a script; time comes from a deterministic step model of a batching
engine (vLLM-like continuous batching: each step decodes one token for every running
request and prefills prompt chunks within a token budget). Cached prompt tokens cost
nothing: the prefix cache has vLLM's block semantics and runs the tier-aware scheduler's
own eviction queue and labelling code (``_sim_cache``). On a virtual-time event loop
every timestamp is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ._base import EngineBase
from ._clock import now
from ._protocol import EngineError
from ._sim_cache import SimBlock, SimKVCache, SimSequence
from ._tokenizer import ByteCodec, ChatTokenizer
from ._types import (
    EngineInfo,
    EngineLoad,
    EngineStats,
    FinishReason,
    GenerateRequest,
    RequestId,
    RequestStats,
    SessionId,
    TokenDelta,
    TokenLogprob,
)

_RECENT_STEPS = 2
"""Steps ``load`` looks back over for a full one."""


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


@dataclass(slots=True, eq=False)
class _Req:
    rid: RequestId
    req: GenerateRequest
    output: list[int]
    finish: FinishReason
    error: str | None
    arrival_t: float
    seq: SimSequence
    queue: asyncio.Queue[TokenDelta] = field(default_factory=asyncio.Queue)
    prefilled: int = 0  # prompt tokens with KV (prefix hits included)
    emitted: int = 0
    decoded_upto: int = 0
    first_token_t: float | None = None
    scheduled_t: float | None = None
    done: bool = False

    @property
    def kv_tokens(self) -> int:
        """Tokens that get KV over the whole request: all but the last sampled one."""
        return len(self.req.prompt) + len(self.output) - 1


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

    Sampling: a reply is what the model samples, so the settings that shape a
    distribution (temperature, top_p, top_k, min_p, penalties, logit_bias, seed) leave it
    as scripted; they stay in ``requests`` for assertions. Stop strings and
    ``stop_token_ids`` cut it as in vLLM; ``logprobs`` are reported as certainty (0.0).

    Scheduling differs from vLLM in one way: a request is admitted only when the blocks
    for its whole output are free too (counting what running requests will still
    take), so nothing is ever preempted. Block allocation, prefix hits, eviction and
    labels are vLLM's, in vLLM's order within a step: running requests, then new ones.
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
        tm = timing or TimingModel()
        super().__init__(
            tokenizer or ChatTokenizer(ByteCodec()),
            EngineInfo(
                "scripted", max_model_len, block_size, use_tiers, "scripted", tm.max_num_seqs
            ),
            id_prefix="scripted",
        )
        self._script_fn = script if callable(script) else None
        self._script_iter = None if callable(script) else iter(list(script))
        self.timing = tm
        self.prefill_forced_token = self._tokenizer.im_end_id
        self.cache = SimKVCache(block_size, num_blocks, use_tiers=use_tiers)
        self._calls = itertools.count()
        self._waiting: list[_Req] = []
        self._running: list[_Req] = []
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        # Whether each of the last few busy steps used its whole budget (cleared when idle).
        self._full_steps: deque[bool] = deque(maxlen=_RECENT_STEPS)
        self.requests: list[GenerateRequest] = []
        """Every request received, in order (for assertions in tests)."""
        self._record = record_requests

    def _reply_tokens(self, req: GenerateRequest) -> tuple[list[int], FinishReason, str | None]:
        limit = self._max_output_tokens(req)
        if req.forced_output is not None:
            out = list(req.forced_output[:limit])
        else:
            ctx = ScriptContext(req, self._tokenizer.decode(req.prompt), next(self._calls))
            out = _cut_at_stop_token(self._script_reply(req, ctx), req.sampling.stop_token_ids)
        finished = "length" if len(out) > limit else "stop"
        finish, error = self._finish_reason(req, finished, min(len(out), limit))
        return out[:limit], finish, error

    def _script_reply(self, req: GenerateRequest, ctx: ScriptContext) -> list[int]:
        if self._script_fn is not None:
            reply = self._script_fn(ctx)
        else:
            assert self._script_iter is not None
            try:
                reply = next(self._script_iter)
            except StopIteration:
                raise EngineError("ScriptedEngine ran out of scripted replies") from None
        if not isinstance(reply, str):
            if not reply:
                raise ValueError("a scripted reply of token ids must hold at least one token")
            return list(reply)
        text = reply
        for s in req.sampling.stop:
            if s in text:
                text = text[: text.index(s)]
        return [*self._tokenizer.encode(text), self._tokenizer.im_end_id]

    def _admit(self, req: GenerateRequest) -> _Req:
        if self._closed:
            raise EngineError("engine is closed")
        rid = self._accept(req)
        if self._record:
            self.requests.append(req)
        output, finish, error = self._reply_tokens(req)
        # Releases reach the cache as they reach vLLM: just before this request can allocate.
        for session in self._take_releases():
            self.cache.release(session)
        seq = self.cache.new_sequence(req.prompt, req.cache_salt)
        r = _Req(rid, req, output, finish, error, now(), seq)
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
        # An aborted request labels nothing: its blocks keep what others said of them.
        self.cache.free(r.seq)

    async def stats(self) -> EngineStats:
        return EngineStats(
            prefix_cache_queries=self.cache.queries,
            prefix_cache_hits=self.cache.hits,
            kv_usage=self.cache.usage,
            num_running=len(self._running),
            num_waiting=len(self._waiting),
            block_size=self.cache.block_size,
            num_blocks=self.cache.capacity or 0,
            tiers=self.cache.tier_stats(),
        )

    async def load(self) -> EngineLoad:
        """Queued requests, KV usage, and whether any of the last few steps was full."""
        per_token = self.timing.prefill_s_per_token
        return EngineLoad.from_gauges(
            waiting=len(self._waiting),
            running=len(self._running),
            kv_usage=self.cache.usage,
            max_num_seqs=None,  # its step fullness already counts the sequence limit
            full_steps=any(self._full_steps),
            prefill_tokens_per_s=1.0 / per_token if per_token > 0 else None,
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
            decoding, chunks = self._schedule()
            if not decoding and not chunks:
                self._full_steps.clear()
                self._wake.clear()
                await self._wake.wait()
                continue
            batched = len(decoding) + sum(n for _, n in chunks)
            self._full_steps.append(
                batched >= tm.max_batched_tokens or len(self._running) >= tm.max_num_seqs
            )
            step = tm.step_overhead_s + tm.prefill_s_per_token * sum(n for _, n in chunks)
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

    def _schedule(self) -> tuple[list[_Req], list[tuple[_Req, int]]]:
        """One step's work: every decoding request gets a token, then prompt chunks fill
        the token budget, running requests' first, then new ones' (cached tokens are
        skipped, so a chunk is all uncached tokens)."""
        decoding = [r for r in self._running if r.prefilled >= len(r.req.prompt)]
        for r in decoding:
            self._allocate(r, 1)
        budget = self.timing.max_batched_tokens - len(decoding)
        chunks: list[tuple[_Req, int]] = []
        for r in self._running:
            left = len(r.req.prompt) - r.prefilled
            if left > 0 and budget > 0:
                take = min(left, budget)
                self._allocate(r, take)
                chunks.append((r, take))
                budget -= take
        while self._waiting and budget > 0 and len(self._running) < self.timing.max_num_seqs:
            r = self._waiting[0]
            hits = self.cache.lookup(r.seq)
            if not self._fits(r, hits):
                if self._running:
                    break  # wait for running requests to free blocks
                self._waiting.pop(0)
                self._fail(r, "prompt does not fit the KV cache")
                continue
            self._waiting.pop(0)
            r.prefilled = len(hits) * self.cache.block_size
            take = min(len(r.req.prompt) - r.prefilled, budget)
            self._allocate(r, take, hits)
            r.scheduled_t = now()
            self._running.append(r)
            chunks.append((r, take))
            budget -= take
        return decoding, chunks

    def _fits(self, r: _Req, hits: list[SimBlock]) -> bool:
        """Whether the request's blocks, output included, fit beside what running
        requests will still take."""
        cache = self.cache
        if cache.capacity is None:
            return True
        promised = sum(cache.blocks_needed(x.seq, x.kv_tokens) for x in self._running)
        return cache.blocks_needed(r.seq, r.kv_tokens, hits) <= cache.num_free - promised

    def _allocate(self, r: _Req, n: int, hits: Sequence[SimBlock] = ()) -> None:
        ok = self.cache.allocate(r.seq, n, hits)
        assert ok, f"request {r.rid} was admitted but its blocks are gone"

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
        self.cache.append_token(r.seq, tid)
        if r.first_token_t is None:
            r.first_token_t = t
        # Like vLLM, streamed text leaves out the chat markers (the token ids keep them).
        # Decode only the tokens not yet shown; hold them while they end mid-character.
        markers = (self._tokenizer.im_end_id, self._tokenizer.im_start_id)
        shown = r.emitted
        if shown == len(r.output) and tid in r.req.sampling.stop_token_ids:
            shown -= 1  # a stop token ends the output but is no text (vLLM's detokenizer)
        pending = [t for t in r.output[r.decoded_upto : shown] if t not in markers]
        text = self._tokenizer.decode(pending) if pending else ""
        if text.endswith("\ufffd"):
            text = ""
        else:
            r.decoded_upto = r.emitted
        stats = None
        if r.emitted == len(r.output):
            stats = self._finish(r, t)
        top = r.req.sampling.logprobs
        # The scripted model is certain of its every token: log-probability 0, and no
        # alternative with any probability.
        lps = None if top is None else (TokenLogprob(tid, 0.0, ((tid, 0.0),)[:top]),)
        r.queue.put_nowait(TokenDelta((tid,), text, t, stats, lps))

    def _finish(self, r: _Req, t: float) -> RequestStats:
        self.cache.free(r.seq, r.req.hints, r.req.session)
        r.done = True
        self._running.remove(r)
        return RequestStats(
            request_id=r.rid,
            prompt_tokens=len(r.req.prompt),
            cached_tokens=r.seq.cached_tokens,
            output_tokens=len(r.output),
            finish_reason=r.finish,
            arrival_t=r.arrival_t,
            first_token_t=r.first_token_t,
            finish_t=t,
            queue_s=(r.scheduled_t - r.arrival_t) if r.scheduled_t is not None else None,
            error=r.error,
        )

    async def release(self, session: SessionId) -> None:
        """Demote the run's blocks now, as the real engines do (between two steps)."""
        if self.info.supports_hints:
            self.cache.release(session)

    async def reset_prefix_cache(self) -> None:
        """Forget every cached block and the cache's counters (benchmarks start each mode
        from a cold cache).

        Raises:
            EngineError: requests are still running or waiting.
        """
        if self._running or self._waiting:
            raise EngineError("cannot reset the prefix cache while requests are in flight")
        old = self.cache
        self.cache = SimKVCache(old.block_size, old.capacity, use_tiers=old.queue.use_tiers)

    async def aclose(self) -> None:
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None


def _cut_at_stop_token(out: list[int], stops: Sequence[int]) -> list[int]:
    """The reply up to and including its first stop token (vLLM keeps it, as an EOS)."""
    for i, tid in enumerate(out):
        if tid in stops:
            return out[: i + 1]
    return out
