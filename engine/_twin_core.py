"""The twin's engine core: vLLM's own scheduler and KV cache, stepped by a simulated executor.

``TwinCore`` does what vLLM's ``EngineCore.step`` does, minus the model: ``schedule()``
runs the real v1 ``Scheduler`` (our ``TierScheduler`` when hints are on) with its real
``KVCacheManager``, block pool, prefix caching, chunked prefill, token budget,
``max_num_seqs`` and priority policy; ``complete()`` hands it the sampled tokens a model
would have produced — each request's forced token, or a filler — and collects what vLLM
reports. It is synchronous and clock-free: ``TwinEngine`` (``_twin``) decides when steps
happen. vLLM is imported when a core is built, never when this module is imported.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from ._step_trace import scheduled_shape
from ._tier_queue import DEFAULT_LIVE_TTL_S, DEFAULT_PENDING_TTL_S
from ._tier_wire import CONFIG_KEY, DEFAULT_PENDING_CAP, TierSettings
from ._twin_cost import StepShape

if TYPE_CHECKING:
    from vllm import SamplingParams


@dataclass(frozen=True, slots=True)
class TwinSettings:
    """The engine configuration the twin reproduces: what vLLM's scheduler is given.

    Attributes:
        num_blocks: KV cache blocks, vLLM's null block included (vLLM's ``num_gpu_blocks``).
        long_prefill_token_threshold: chunk cap per prompt per step (0: none).
        cache_hints: run the tier-aware scheduler (False: vLLM's plain ``Scheduler``).
        pending_cap, pending_ttl_s, live_ttl_s: the tier scheduler's ``TierSettings``.

    Raises:
        ValueError: naming a bad field, or a cache that cannot hold one request of
            ``max_model_len`` tokens (vLLM refuses to start then, too).
    """

    block_size: int
    num_blocks: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    long_prefill_token_threshold: int = 0
    scheduling_policy: Literal["priority", "fcfs"] = "priority"
    cache_hints: bool = True
    pending_cap: float = DEFAULT_PENDING_CAP
    pending_ttl_s: float = DEFAULT_PENDING_TTL_S
    live_ttl_s: float = DEFAULT_LIVE_TTL_S

    def __post_init__(self) -> None:
        for name in (
            "block_size",
            "num_blocks",
            "max_model_len",
            "max_num_seqs",
            "max_num_batched_tokens",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TwinSettings.{name} must be a positive integer")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"TwinSettings.max_num_batched_tokens ({self.max_num_batched_tokens}) must be "
                f">= max_num_seqs ({self.max_num_seqs}), as vLLM requires"
            )
        self.tier_config()  # the tier scheduler's own checks, naming the bad field
        if self.scheduling_policy not in ("priority", "fcfs"):
            raise ValueError("TwinSettings.scheduling_policy must be 'priority' or 'fcfs'")
        need = math.ceil(self.max_model_len / self.block_size)
        if self.num_blocks - 1 < need:
            raise ValueError(
                f"TwinSettings: {self.num_blocks - 1} usable KV blocks of {self.block_size} "
                f"tokens cannot hold one request of max_model_len={self.max_model_len} "
                f"({need} blocks); lower max_model_len or give the cache more memory"
            )

    def tier_config(self) -> dict[str, Any]:
        """The tier scheduler's ``additional_config`` entry (``TierSettings``, validated)."""
        return TierSettings(
            pending_cap=self.pending_cap,
            pending_ttl_s=self.pending_ttl_s,
            live_ttl_s=self.live_ttl_s,
        ).to_config()


@dataclass(frozen=True, slots=True)
class CoreOutput:
    """What one request got from one step (vLLM's ``EngineCoreOutput``, the part we use)."""

    request_id: str
    token_ids: tuple[int, ...]
    finish_reason: str | None
    cached_tokens: int | None


@dataclass(slots=True)
class StepPlan:
    """A scheduled step: vLLM's ``SchedulerOutput`` and the shape the cost model prices."""

    output: Any
    shape: StepShape


@dataclass(slots=True)
class CoreCounters:
    """Cumulative prefix-cache counters and the latest gauges, as vLLM's metrics keep them."""

    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0
    kv_usage: float = 0.0
    num_running: int = 0
    num_waiting: int = 0


@dataclass(slots=True)
class _Pending:
    forced: tuple[int, ...] | None
    filler: int
    scheduled: bool = False


@dataclass(slots=True)
class TwinCore:
    """vLLM's scheduler and KV cache driven without a model (see the module docstring).

    Invariants: every request vLLM holds has an entry in ``_pending``; a request's k-th
    sampled token is ``forced[min(k, len(forced) - 1)]`` (the forced-output processor's
    rule) or its filler; ``counters`` sums every ``SchedulerStats`` vLLM produced.
    """

    scheduler: Any
    hasher: Callable[[Any], Any]
    counters: CoreCounters = field(default_factory=CoreCounters)
    _pending: dict[str, _Pending] = field(default_factory=dict)

    @classmethod
    def build(
        cls, model_folder: Path, dtype: str, settings: TwinSettings, clock: Callable[[], float]
    ) -> TwinCore:
        """A cold engine core: a fresh scheduler and an empty KV cache.

        ``clock`` times the tier scheduler's SPLIT_PENDING expiry (the event loop's clock).
        """
        from vllm.utils.hashing import get_hash_fn_by_name
        from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
        from vllm.v1.structured_output import StructuredOutputManager

        config = _vllm_config(str(model_folder), dtype, settings)
        hash_fn = get_hash_fn_by_name(config.cache_config.prefix_caching_hash_algo)
        init_none_hash(hash_fn)
        scheduler = _scheduler_class(settings.cache_hints)(
            vllm_config=config,
            kv_cache_config=_kv_cache_config(settings),
            structured_output_manager=StructuredOutputManager(config),
            block_size=settings.block_size,
            log_stats=True,
        )
        if settings.cache_hints:
            _use_clock(scheduler, clock)
        return cls(scheduler, get_request_block_hasher(settings.block_size, hash_fn))

    # -- inputs (applied between steps, as EngineCore applies its input queue) -------------

    def add(
        self,
        request_id: str,
        prompt: Sequence[int],
        params: SamplingParams,
        *,
        arrival_time: float,
        priority: int = 0,
        cache_salt: str | None = None,
        forced: Sequence[int] | None = None,
        filler: int = 0,
    ) -> None:
        from vllm.v1.request import Request

        if request_id in self._pending:
            raise ValueError(f"request id {request_id!r} is already in the twin")
        request = Request(
            request_id=request_id,
            prompt_token_ids=list(prompt),
            sampling_params=params,
            pooling_params=None,
            arrival_time=arrival_time,
            cache_salt=cache_salt,
            priority=priority,
            block_hasher=self.hasher,
        )
        self._pending[request_id] = _Pending(None if forced is None else tuple(forced), filler)
        self.scheduler.add_request(request)

    def abort(self, request_ids: Sequence[str]) -> None:
        from vllm.v1.request import RequestStatus

        live = [r for r in request_ids if r in self._pending]
        for rid in live:
            del self._pending[rid]
        if live:
            self.scheduler.finish_requests(live, RequestStatus.FINISHED_ABORTED)

    def release(self, sessions: Sequence[str]) -> int:
        """Demote finished runs' blocks now (only with the tier scheduler)."""
        release = getattr(self.scheduler, "release_sessions", None)
        return int(release(list(sessions))) if release is not None else 0

    # -- one step -------------------------------------------------------------------------

    def has_requests(self) -> bool:
        return bool(self.scheduler.has_requests())

    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    def schedule(self) -> StepPlan:
        """Run vLLM's scheduler once and describe the step it built."""
        out = self.scheduler.schedule()
        shape = scheduled_shape(out, self.scheduler.requests)
        for rid in out.num_scheduled_tokens:
            if rid in self._pending:
                self._pending[rid].scheduled = True
        return StepPlan(out, shape)

    def complete(self, plan: StepPlan) -> list[CoreOutput]:
        """What the simulated executor sampled, through vLLM's ``update_from_output``."""
        from vllm.v1.outputs import ModelRunnerOutput

        out = plan.output
        ids = list(out.num_scheduled_tokens)
        requests = self.scheduler.requests
        sampled: list[list[int]] = []
        for rid in ids:
            req = requests.get(rid)
            # A chunk that leaves part of the prompt unread samples nothing (vLLM's model
            # runner discards it); neither does a request aborted during the step.
            if req is None or req.is_finished() or req.is_prefill_chunk:
                sampled.append([])
            else:
                sampled.append([self._next_token(rid, len(req.output_token_ids))])
        result = ModelRunnerOutput(
            req_ids=ids,
            req_id_to_index={rid: i for i, rid in enumerate(ids)},
            sampled_token_ids=sampled,
        )
        events: list[CoreOutput] = []
        for outputs in self.scheduler.update_from_output(out, result).values():
            if outputs.scheduler_stats is not None:
                self._count(outputs.scheduler_stats)
            for o in outputs.outputs:
                finish = None if o.finish_reason is None else str(o.finish_reason)
                cached = None if o.prefill_stats is None else int(o.prefill_stats.num_cached_tokens)
                events.append(CoreOutput(o.request_id, tuple(o.new_token_ids), finish, cached))
                if finish is not None:
                    self._pending.pop(o.request_id, None)
        return events

    def waiting_ids(self) -> list[str]:
        """Requests vLLM holds that were never scheduled."""
        return [rid for rid, p in self._pending.items() if not p.scheduled]

    def _next_token(self, rid: str, emitted: int) -> int:
        pending = self._pending[rid]
        if pending.forced is None:
            return pending.filler
        return pending.forced[min(emitted, len(pending.forced) - 1)]

    def _count(self, stats: Any) -> None:
        c = self.counters
        prefix = stats.prefix_cache_stats
        if prefix is not None:
            c.prefix_cache_queries += int(prefix.queries)
            c.prefix_cache_hits += int(prefix.hits)
        c.kv_usage = float(stats.kv_cache_usage)
        c.num_running = int(stats.num_running_reqs)
        c.num_waiting = int(stats.num_waiting_reqs)

    # -- state ----------------------------------------------------------------------------

    def tier_stats(self) -> dict[str, Any] | None:
        payload = getattr(self.scheduler, "tier_stats_payload", None)
        return None if payload is None else dict(payload())

    def reset_prefix_cache(self) -> bool:
        return bool(self.scheduler.reset_prefix_cache())


def _scheduler_class(cache_hints: bool) -> type[Any]:
    if cache_hints:
        from ._tier_scheduler import TierScheduler

        return TierScheduler
    from vllm.v1.core.sched.scheduler import Scheduler

    return Scheduler


def _use_clock(scheduler: Any, clock: Callable[[], float]) -> None:
    """Put the tier queue on ``clock`` so SPLIT_PENDING expires in simulated time.

    The queue reads time through its ``_clock``; setting it in place saves rebuilding a
    queue of every block (seconds for a GPU-sized cache), which ``replace_in`` would do.
    """
    queue = scheduler.tier_queue
    if not hasattr(queue, "_clock"):  # the queue changed shape: rebuild it on the clock
        from ._tier_queue import TieredFreeBlockQueue

        scheduler.tier_queue = TieredFreeBlockQueue.replace_in(
            scheduler.kv_cache_manager.block_pool,
            use_tiers=queue.use_tiers,
            pending_cap=queue.pending_cap,
            pending_ttl_s=queue.pending_ttl_s,
            live_ttl_s=queue.live_ttl_s,
            clock=clock,
        )
        return
    queue._clock = clock


@functools.lru_cache(maxsize=16)
def _vllm_config(model_folder: str, dtype: str, settings: TwinSettings) -> Any:
    """vLLM's configuration for ``settings`` (cached: building one takes ~0.5 s).

    The scheduler only reads it, so cores built from the same settings share it.
    """
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig

    model = ModelConfig(
        model=model_folder,
        skip_tokenizer_init=True,
        dtype=cast(Any, dtype),
        max_model_len=settings.max_model_len,
    )
    sched = SchedulerConfig(
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        max_model_len=settings.max_model_len,
        long_prefill_token_threshold=settings.long_prefill_token_threshold,
        enable_chunked_prefill=True,
        policy=settings.scheduling_policy,
        is_encoder_decoder=False,
    )
    cache = CacheConfig(block_size=settings.block_size, enable_prefix_caching=True)
    cache.num_gpu_blocks = settings.num_blocks
    additional = {CONFIG_KEY: settings.tier_config()} if settings.cache_hints else {}
    return VllmConfig(
        model_config=model,
        scheduler_config=sched,
        cache_config=cache,
        additional_config=additional,
    )


def _kv_cache_config(settings: TwinSettings) -> Any:
    """One full-attention group: the scheduler counts blocks, never their bytes."""
    import torch
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec

    spec = FullAttentionSpec(
        block_size=settings.block_size, num_kv_heads=1, head_size=1, dtype=torch.float32
    )
    return KVCacheConfig(
        num_blocks=settings.num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["model.layers.0"], spec)],
    )
