"""``VLLMEngine``: the thin API over an in-process vLLM ``AsyncLLM`` (the embedded default).

vLLM is imported lazily, inside ``VLLMEngine.start``. vLLM runs its engine core in a
spawned process, so programs using this need an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from ._base import EngineBase
from ._clock import now
from ._constraints import structural_tag_args, structured_outputs_args
from ._jump_forward import HeadOnce, Jump, engine_jump
from ._model import resolve_model
from ._process_exit import unwind_on_sigterm
from ._protocol import EngineError
from ._tier_wire import fetch_tier_stats, release_now
from ._tokenizer import ChatTokenizer
from ._types import (
    EngineInfo,
    EngineLoad,
    EngineStats,
    GenerateRequest,
    RequestStats,
    SessionId,
    TokenDelta,
)
from ._vllm_args import (
    EngineOptions,
    build_engine_args,
    cpu_env,
    sampling_params,
    token_logprobs,
)

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM


class VLLMEngine(EngineBase):
    """The Engine protocol over vLLM's ``AsyncLLM``, running in this process.

    Invariants: every request sent to vLLM carries a unique id; a stream that is closed
    before its last delta aborts its vLLM request; ``aclose`` shuts the engine core down.
    A release is applied at once, by the tier scheduler's engine-core utility (running
    requests allocate blocks at every step, so waiting for the next request would leave a
    finished run's blocks labelled meanwhile); without hints it does nothing.
    """

    def __init__(
        self,
        llm: AsyncLLM,
        tokenizer: ChatTokenizer,
        info: EngineInfo,
        *,
        jump_forward: bool = True,
    ) -> None:
        super().__init__(tokenizer, info)
        self._llm: AsyncLLM | None = llm
        self._queries0, self._hits0 = self._prefix_counters()
        self.jump_forward = jump_forward
        """Prefill a forced call's fixed head instead of decoding it (``_jump_forward``)."""
        self.jumped_tokens = 0
        """Output tokens prefilled instead of decoded by jump-forward (``_jump_forward``)."""

    @classmethod
    async def start(cls, options: EngineOptions | None = None) -> VLLMEngine:
        """Start vLLM in-process (blocks for the engine's start-up, ~20-40 s on CPU).

        Raises:
            ModelNotAvailableError: the model folder is missing or incomplete.
        """
        opts = options or EngineOptions()
        folder = resolve_model(opts.model)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        for key, value in cpu_env().items():
            os.environ.setdefault(key, value)  # inherited by the engine-core process
        from vllm.v1.engine.async_llm import AsyncLLM

        args = build_engine_args(opts, folder)
        unwind_on_sigterm()  # so that SIGTERM does not orphan the engine-core process
        llm = AsyncLLM.from_engine_args(args)
        cfg = llm.vllm_config
        info = EngineInfo(
            model=str(folder),
            max_model_len=cfg.model_config.max_model_len,
            block_size=cfg.cache_config.block_size,
            supports_hints=opts.cache_hints,
            backend="vllm",
            max_num_seqs=cfg.scheduler_config.max_num_seqs,
        )
        tok = ChatTokenizer.from_folder(folder)
        return cls(llm, tok, info, jump_forward=opts.jump_forward)

    @property
    def async_llm(self) -> AsyncLLM:
        """The underlying vLLM engine (for benchmarks that compare against it)."""
        if self._llm is None:
            raise EngineError("engine is closed")
        return self._llm

    def _jump(self, request: GenerateRequest) -> Jump | None:
        if not self.jump_forward:
            return None
        return engine_jump(request, self.tokenizer.encode_text, self._info.max_model_len)

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        rid = self._accept(request)
        from vllm.inputs.engine import tokens_input

        jump = self._jump(request)
        sent = jump.engine_request(request) if jump is not None else request
        if jump is not None:
            structured: dict[str, object] | None = structural_tag_args(jump.rest)
            self.jumped_tokens += len(jump.head)
        elif request.constraint is not None:
            structured = structured_outputs_args(request.constraint)
        else:
            structured = None
        params = sampling_params(
            sent,
            self._take_releases(),
            self._max_output_tokens(sent),
            structured=structured,
            hints=self._info.supports_hints,
        )
        prompt = tokens_input(list(sent.prompt), cache_salt=request.cache_salt)
        head = HeadOnce(jump)  # the jumped head is output to the caller
        arrival = now()
        first: float | None = None
        n_out = 0
        cached = 0
        queue_s: float | None = None
        stream = self.async_llm.generate(prompt, params, rid, priority=request.priority)
        try:
            async for out in stream:
                t = now()
                comp = out.outputs[0]
                ids, text = tuple(comp.token_ids), comp.text
                lps = token_logprobs(ids, comp.logprobs, request.sampling.logprobs)
                ids, text = head.apply(ids, text)
                if ids and first is None:
                    first = t
                n_out += len(ids)
                if out.num_cached_tokens is not None:
                    # A jumped head is output, not prompt: its cached KV is not counted.
                    cached = min(out.num_cached_tokens, len(request.prompt))
                if not out.finished:
                    yield TokenDelta(ids, text, t, logprobs=lps)
                    continue
                finish, error = self._finish_reason(request, comp.finish_reason, n_out)
                m = out.metrics
                scheduled = getattr(m, "scheduled_ts", 0.0) if m is not None else 0.0
                queued = getattr(m, "queued_ts", 0.0) if m is not None else 0.0
                if scheduled and queued:
                    queue_s = max(0.0, float(scheduled) - float(queued))
                n_in = len(request.prompt)
                stats = RequestStats(
                    rid, n_in, cached, n_out, finish, arrival, first, t, queue_s, error
                )
                yield TokenDelta(ids, text, t, stats, lps)
                return
        finally:
            # Closing vLLM's generator aborts the request inside vLLM if it is still running.
            await stream.aclose()

    def _prefix_counters(self) -> tuple[int, int]:
        try:
            from vllm.v1.metrics.reader import Counter, get_metrics_snapshot
        except ImportError:
            return 0, 0
        q = h = 0
        for m in get_metrics_snapshot():
            if isinstance(m, Counter) and m.name == "vllm:prefix_cache_queries":
                q += int(m.value)
            elif isinstance(m, Counter) and m.name == "vllm:prefix_cache_hits":
                h += int(m.value)
        return q, h

    def _occupancy(self) -> tuple[int, int, float]:
        """Running and waiting requests and KV usage, from this process's metrics (the
        gauges vLLM's stat logger updates with every batch of engine-core outputs)."""
        from vllm.v1.metrics.reader import Gauge, get_metrics_snapshot

        gauges = {m.name: m.value for m in get_metrics_snapshot() if isinstance(m, Gauge)}
        unfinished = self.async_llm.get_num_unfinished_requests()
        waiting = min(int(gauges.get("vllm:num_requests_waiting", 0)), unfinished)
        return unfinished - waiting, waiting, float(gauges.get("vllm:kv_cache_usage_perc", 0.0))

    async def load(self) -> EngineLoad:
        """Waiting requests; "full" when the batch holds ``max_num_seqs`` sequences or the
        KV cache is nearly used up (vLLM reports no per-step token budget use)."""
        running, waiting, kv_usage = self._occupancy()
        return EngineLoad.from_gauges(
            waiting=waiting, running=running, kv_usage=kv_usage, max_num_seqs=self.info.max_num_seqs
        )

    async def stats(self) -> EngineStats:
        q, h = self._prefix_counters()
        running, waiting, kv_usage = self._occupancy()
        llm = self.async_llm
        cfg = llm.vllm_config.cache_config
        tiers = await fetch_tier_stats(llm) if self._info.supports_hints else {}
        return EngineStats(
            prefix_cache_queries=q - self._queries0,
            prefix_cache_hits=h - self._hits0,
            kv_usage=kv_usage,
            num_running=running,
            num_waiting=waiting,
            block_size=cfg.block_size,
            num_blocks=int(cfg.num_gpu_blocks or 0),
            tiers=tiers,
        )

    async def release(self, session: SessionId) -> None:
        """Demote the run's blocks now (engine-core utility call, between two steps)."""
        if not self._info.supports_hints or self._llm is None:
            return
        try:
            await release_now(self._llm, [session])
        except RuntimeError:  # the utility is not there: let it ride with the next request
            await super().release(session)

    async def reset_prefix_cache(self) -> None:
        """Forget every cached block (benchmarks start each mode from a cold cache)."""
        await self.async_llm.reset_prefix_cache()

    async def aclose(self) -> None:
        """Stop the engine core and its worker processes (idempotent)."""
        llm, self._llm = self._llm, None
        if llm is None:
            return
        llm.shutdown()
        # vLLM's __del__ calls shutdown() again; at interpreter exit its module globals
        # are already gone and that second call raises. It has nothing left to do.
        llm.shutdown = _already_shut_down  # type: ignore[method-assign]


def _already_shut_down(timeout: float | None = None) -> None:
    return None
