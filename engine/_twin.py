"""``TwinEngine``: the Engine protocol over vLLM's own scheduler and KV cache, without a model.

A step loop on the event loop's clock plays vLLM's ``EngineCore``: inputs (new requests,
releases) are applied between steps, ``TwinCore.schedule()`` runs vLLM's scheduler, the
loop sleeps for the time the cost model gives for exactly that step, aborts that came
meanwhile are applied, and the sampled tokens go through vLLM's ``update_from_output``.
Every token of a step reaches its caller stamped with the step's end. On the virtual-time
loop (``agentrt.testing.run_virtual``) a whole replay runs in simulated time, as fast as
the scheduler's Python allows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from ._base import EngineBase
from ._clock import now
from ._protocol import EngineError
from ._tier_wire import decode_tier_stats
from ._tokenizer import ByteCodec, ChatTokenizer
from ._twin_core import CoreOutput, StepPlan, TwinCore, TwinSettings
from ._twin_cost import CostModel, StepShape
from ._twin_model import ModelSpec
from ._types import (
    EngineInfo,
    EngineLoad,
    EngineStats,
    GenerateRequest,
    RequestId,
    RequestStats,
    SessionId,
    TokenDelta,
)
from ._vllm_args import sampling_params


@dataclass(frozen=True)
class TwinOptions:
    """What a twin simulates.

    Attributes:
        model: the architecture (names the model; its folder's ``config.json`` is what
            vLLM's config reads).
        cost: seconds per step.
        settings: the scheduler and KV cache configuration.
        dtype: the dtype vLLM is told (only its model config reads it).
        tokenizer: the tokenizer callers render prompts with (None: the model folder's
            ``tokenizer.json`` if it has one, else bytes).
    """

    model: ModelSpec
    cost: CostModel
    settings: TwinSettings
    dtype: str = "bfloat16"
    tokenizer: ChatTokenizer | None = None

    def resolved_tokenizer(self) -> ChatTokenizer:
        if self.tokenizer is not None:
            return self.tokenizer
        folder = self.model.folder
        if folder is not None and (folder / "tokenizer.json").is_file():
            return ChatTokenizer.from_folder(folder)
        return ChatTokenizer(ByteCodec())


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One simulated step: when it started, how long it took and what it computed."""

    start_t: float
    seconds: float
    shape: StepShape


class _TextStream:
    """Incremental text of an output, chat markers left out (vLLM skips special tokens).

    Only the tokens since the last shown text are decoded (byte-level tokenizers decode
    piecewise exactly); text ending in half a character waits for the next token.
    """

    def __init__(self, tokenizer: ChatTokenizer) -> None:
        self._tok = tokenizer
        self._markers = {tokenizer.im_end_id, tokenizer.im_start_id}
        self._pending: list[int] = []

    def push(self, ids: tuple[int, ...]) -> str:
        self._pending.extend(t for t in ids if t not in self._markers)
        if not self._pending:
            return ""
        text = self._tok.decode(self._pending)
        if text.endswith("\ufffd"):
            return ""
        self._pending.clear()
        return text


@dataclass(slots=True)
class _Stream:
    request: GenerateRequest
    arrival_t: float
    text: _TextStream
    queue: asyncio.Queue[TokenDelta] = field(default_factory=asyncio.Queue)
    output: list[int] = field(default_factory=list)
    first_token_t: float | None = None
    scheduled_t: float | None = None
    cached: int = 0
    done: bool = False


class TwinEngine(EngineBase):
    """A simulated vLLM engine: real scheduler and KV cache, modelled step times.

    Invariants: requests reach vLLM's scheduler only between steps; a step's tokens all
    carry the step's end time; closing a stream early aborts its request at the next
    point vLLM would; ``stats()`` reports vLLM's own prefix-cache counters and gauges.
    ``steps`` keeps the most recent steps (for tests and for step-fullness statistics).
    """

    def __init__(
        self, options: TwinOptions, *, keep_steps: int = 4096, id_prefix: str = "twin"
    ) -> None:
        s = options.settings
        info = EngineInfo(
            model=options.model.name,
            max_model_len=s.max_model_len,
            block_size=s.block_size,
            supports_hints=s.cache_hints,
            backend="twin",
            max_num_seqs=s.max_num_seqs,
        )
        super().__init__(options.resolved_tokenizer(), info, id_prefix=id_prefix)
        self.options = options
        folder = options.model.folder
        if folder is None:
            raise ValueError("TwinOptions.model needs its folder (load it with ModelSpec.load)")
        self.core = TwinCore.build(folder, options.dtype, s, now)
        self._filler = self._tokenizer.encode("x")[0]
        self._streams: dict[str, _Stream] = {}
        self._adds: list[tuple[str, GenerateRequest, tuple[SessionId, ...]]] = []
        self._aborts: list[str] = []
        self._releases_now: list[SessionId] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.steps: deque[StepRecord] = deque(maxlen=keep_steps)
        self.simulated_busy_s = 0.0
        """Simulated seconds spent in steps since start."""
        self.num_steps = 0

    # -- the Engine protocol ----------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        if self._closed:
            raise EngineError("engine is closed")
        rid = self._accept(request)
        if rid in self._streams:
            raise EngineError(f"request id {rid!r} is already running")
        release = self._take_releases()
        stream = _Stream(request, now(), _TextStream(self._tokenizer))
        self._streams[rid] = stream
        self._adds.append((rid, request, release))
        self._kick()
        try:
            while True:
                delta = await stream.queue.get()
                yield delta
                if delta.stats is not None:
                    return
        finally:
            if not stream.done:
                stream.done = True
                self._streams.pop(rid, None)
                if not self._closed:
                    self._aborts.append(rid)
                    self._kick()

    async def release(self, session: SessionId) -> None:
        """Apply the run's release before the next step, as the real engine's release
        utility call does: blocks of running requests are allocated at every step, not
        only when a new request arrives, so a release that waits for one comes late."""
        if self._closed or not self._info.supports_hints:
            return
        if session not in self._releases_now:
            self._releases_now.append(session)
            self._kick()

    async def stats(self) -> EngineStats:
        c = self.core.counters
        tiers = self.core.tier_stats()
        return EngineStats(
            prefix_cache_queries=c.prefix_cache_queries,
            prefix_cache_hits=c.prefix_cache_hits,
            kv_usage=c.kv_usage,
            num_running=c.num_running,
            num_waiting=c.num_waiting,
            block_size=self._info.block_size,
            num_blocks=self.options.settings.num_blocks,
            tiers=decode_tier_stats(tiers) if tiers is not None else {},
        )

    async def load(self) -> EngineLoad:
        """By the real engine's rule, from the same gauges (the batch at ``max_num_seqs``
        or the KV cache nearly used up): the twin's steps would also tell when they were
        full, but the real engine cannot, and split prefill must choose alike on both."""
        c = self.core.counters
        return EngineLoad.from_gauges(
            waiting=c.num_waiting,
            running=c.num_running,
            kv_usage=c.kv_usage,
            max_num_seqs=self.info.max_num_seqs,
        )

    async def reset_prefix_cache(self) -> None:
        """Forget every cached block (vLLM refuses while requests hold blocks).

        Raises:
            EngineError: requests are still running.
        """
        if not self.core.reset_prefix_cache():
            raise EngineError("cannot reset the prefix cache while requests run")

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for rid in list(self._streams):
            self._fail(rid, "engine closed")

    # -- the step loop ----------------------------------------------------------------------

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._wake is not None
        self._wake.set()

    async def _run(self) -> None:
        try:
            await self._steps()
        except Exception as exc:  # never leave a caller waiting on a dead loop
            for rid in list(self._streams):
                self._fail(rid, f"twin engine failed: {exc!r}")
            raise

    async def _steps(self) -> None:
        assert self._wake is not None
        core = self.core
        while not self._closed:
            self._apply_inputs()
            if not core.has_requests():
                self._wake.clear()
                await self._wake.wait()
                continue
            plan = core.schedule()
            start = now()
            seconds = self.options.cost.step_time(plan.shape)
            self._mark_scheduled(plan, start)
            if seconds > 0:
                await asyncio.sleep(seconds)
            else:
                await asyncio.sleep(0)  # let callers add work before the next schedule
            self._apply_aborts()  # vLLM applies aborts that came during the step here
            events = core.complete(plan)
            end = now()
            if not plan.shape.is_empty:
                self.steps.append(StepRecord(start, seconds, plan.shape))
                self.simulated_busy_s += end - start
                self.num_steps += 1
            self._deliver(events, end)
            if plan.shape.is_empty and core.num_running == 0 and not self._adds:
                self._fail_unschedulable()

    def _apply_inputs(self) -> None:
        self._apply_aborts()
        if self._releases_now:
            released, self._releases_now = self._releases_now, []
            self.core.release(released)
        adds, self._adds = self._adds, []
        s = self.options.settings
        for rid, request, release in adds:
            stream = self._streams.get(rid)
            if stream is None:  # closed by its caller before it reached vLLM
                self.core.release(release)  # vLLM would have applied them on arrival
                continue
            params = sampling_params(
                request,
                release,
                self._max_output_tokens(request),
                structured=None,
                hints=s.cache_hints,
            )
            self.core.add(
                rid,
                request.prompt,
                params,
                arrival_time=stream.arrival_t,
                priority=request.priority,
                cache_salt=request.cache_salt,
                forced=request.forced_output,
                filler=self._filler,
            )

    def _apply_aborts(self) -> None:
        aborts, self._aborts = self._aborts, []
        if aborts:
            self.core.abort(aborts)

    def _mark_scheduled(self, plan: StepPlan, t: float) -> None:
        for new in plan.output.scheduled_new_reqs:
            stream = self._streams.get(new.req_id)
            if stream is not None and stream.scheduled_t is None:
                stream.scheduled_t = t

    def _deliver(self, events: list[CoreOutput], t: float) -> None:
        for ev in events:
            stream = self._streams.get(ev.request_id)
            if stream is None or stream.done:
                continue
            if ev.cached_tokens is not None:
                stream.cached = ev.cached_tokens
            if ev.token_ids and stream.first_token_t is None:
                stream.first_token_t = t
            stream.output.extend(ev.token_ids)
            text = stream.text.push(ev.token_ids)
            stats = None
            if ev.finish_reason is not None:
                stats = self._finish(ev.request_id, stream, ev.finish_reason, t)
            stream.queue.put_nowait(TokenDelta(ev.token_ids, text, t, stats))

    def _finish(self, rid: str, stream: _Stream, raw: str, t: float) -> RequestStats:
        stream.done = True
        self._streams.pop(rid, None)
        req = stream.request
        finish, error = self._finish_reason(req, raw, len(stream.output))
        queue_s = None if stream.scheduled_t is None else stream.scheduled_t - stream.arrival_t
        return RequestStats(
            RequestId(rid),
            len(req.prompt),
            stream.cached,
            len(stream.output),
            finish,
            stream.arrival_t,
            stream.first_token_t,
            t,
            queue_s,
            error,
        )

    def _fail_unschedulable(self) -> None:
        stuck = self.core.waiting_ids()
        self.core.abort(stuck)
        for rid in stuck:
            self._fail(rid, "the request can never be scheduled: it needs more KV blocks than fit")

    def _fail(self, rid: str, why: str) -> None:
        stream = self._streams.pop(rid, None)
        if stream is None or stream.done:
            return
        stream.done = True
        t = now()
        stats = RequestStats(
            RequestId(rid),
            len(stream.request.prompt),
            0,
            len(stream.output),
            "error",
            stream.arrival_t,
            stream.first_token_t,
            t,
            error=why,
        )
        stream.queue.put_nowait(TokenDelta((), "", t, stats))
