"""vLLM's v1 scheduler with a tier-ordered free-block queue, passed to vLLM as ``scheduler_cls``.

Only vLLM's engine-core process imports this module (by the dotted path in
``_tier_wire.TIER_SCHEDULER``), so importing vLLM at the top is fine here.

How the pieces meet:

* ``__init__`` swaps the block pool's ``FreeKVCacheBlockQueue`` for a
  :class:`TieredFreeBlockQueue` and reads :class:`TierSettings` from vLLM's
  ``additional_config["agentrt"]``.
* ``add_request`` decodes ``SamplingParams.extra_args["agentrt"]`` and applies the
  releases it carries before the request can allocate.
* ``_free_request_blocks`` (every finish, abort and preemption passes through it)
  labels the request's blocks from its hints just before vLLM returns them to the
  pool, so prefix-hit blocks get their labels back whenever they are freed again.
  Aborted requests give no labels. (Blocks that a KV connector frees for a request
  still waiting for remote KV bypass this hook and stay unlabelled.)
* Engine-core utility methods let a client in another process read per-tier stats
  (``agentrt_tier_stats``), apply releases that came without a request
  (``agentrt_release``: behind a router a release is a request of its own) and read
  which sessions this engine served (``agentrt_sessions``, a ``SessionLedger``).

How hints become labels is ``_tier_labels`` (shared with ``ScriptedEngine``'s cache).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from vllm.multimodal import MULTIMODAL_REGISTRY, MultiModalRegistry
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.interface import SchedulerInterface
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request, RequestStatus

from ._session_ledger import SessionLedger
from ._step_trace import StepRecorder, scheduled_shape
from ._tier_labels import label_request_blocks
from ._tier_queue import TieredFreeBlockQueue
from ._tier_wire import (
    RELEASE_METHOD,
    SESSIONS_METHOD,
    TIER_STATS_METHOD,
    TierPayload,
    TierSettings,
    encode_tier_stats,
    payload_from_extra_args,
)
from ._types import Tier

logger = logging.getLogger(__name__)


class TierScheduler(Scheduler):
    """vLLM's scheduler whose KV block pool evicts free blocks by semantic tier.

    Invariants: ``tier_queue`` is the block pool's ``free_block_queue``; a request's
    hints are kept from ``add_request`` until its blocks are finally freed; labels
    only change which *free* block is evicted first, never which blocks are free.
    """

    def __init__(
        self,
        vllm_config: Any,
        kv_cache_config: Any,
        structured_output_manager: Any,
        block_size: int,
        hash_block_size: int | None = None,
        mm_registry: MultiModalRegistry = MULTIMODAL_REGISTRY,
        include_finished_set: bool = False,
        log_stats: bool = False,
    ) -> None:
        super().__init__(
            vllm_config=vllm_config,
            kv_cache_config=kv_cache_config,
            structured_output_manager=structured_output_manager,
            block_size=block_size,
            hash_block_size=hash_block_size,
            mm_registry=mm_registry,
            include_finished_set=include_finished_set,
            log_stats=log_stats,
        )
        self.tier_settings = TierSettings.from_additional_config(vllm_config.additional_config)
        pool = self.kv_cache_manager.block_pool
        usable_blocks = pool.num_gpu_blocks - 1  # vLLM keeps block 0 as its null block
        self.tier_queue: TieredFreeBlockQueue[Any] = TieredFreeBlockQueue.replace_in(
            pool,
            use_tiers=self.tier_settings.use_tiers,
            pending_cap=int(self.tier_settings.pending_cap * usable_blocks),
            pending_ttl_s=self.tier_settings.pending_ttl_s,
            live_ttl_s=self.tier_settings.live_ttl_s,
        )
        self._tier_payloads: dict[str, TierPayload] = {}
        self.sessions = SessionLedger()
        self.step_recorder = StepRecorder.from_env()
        _install_engine_utilities()

    # -- step trace (only with AGENTRT_STEP_TRACE set) -------------------------------------

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        if self.step_recorder is None:
            return super().schedule(*args, **kwargs)
        t0 = time.perf_counter()
        out = super().schedule(*args, **kwargs)
        self.step_recorder.scheduled(scheduled_shape(out, self.requests), t0)
        return out

    def update_from_output(self, *args: Any, **kwargs: Any) -> Any:
        result = super().update_from_output(*args, **kwargs)
        if self.step_recorder is not None:
            self.step_recorder.finished()
        return result

    # -- request lifecycle ---------------------------------------------------------------

    def add_request(self, request: Request) -> None:
        payload = self._read_payload(request)
        if payload is not None:
            # Before super(): the request must not allocate over blocks still labelled
            # for a run that the client already knows is over.
            self.release_sessions(payload.release)
            if (payload.hints or payload.session) and request.request_id not in self.requests:
                self._tier_payloads[request.request_id] = payload
            if payload.session:
                self.sessions.on_request(payload.session)
        super().add_request(request)

    def _free_request_blocks(self, request: Request) -> None:
        # An aborted request's hints no longer describe anything worth keeping: its
        # blocks keep only what other holders said about them (SCRATCH if nothing).
        if request.status != RequestStatus.FINISHED_ABORTED:
            self._label_blocks(request)
        super()._free_request_blocks(request)

    def _free_blocks(self, request: Request) -> None:
        super()._free_blocks(request)
        self._tier_payloads.pop(request.request_id, None)

    def reset_prefix_cache(
        self, reset_running_requests: bool = False, reset_connector: bool = False
    ) -> bool:
        done = super().reset_prefix_cache(reset_running_requests, reset_connector)
        if done:
            self.tier_queue.clear_labels()
        return bool(done)

    # -- tiers ---------------------------------------------------------------------------

    def release_sessions(self, sessions: Sequence[str]) -> int:
        """Demote the blocks of finished runs that no live run shares; returns blocks demoted."""
        total = 0
        for s in sessions:
            demoted = self.tier_queue.release(s)
            self.sessions.on_release(s, demoted)
            total += demoted
        return total

    def tier_stats_payload(self) -> dict[str, Any]:
        """Per-tier stats as plain JSON values (what the utility call returns)."""
        return {
            **encode_tier_stats(self.tier_queue.stats()),
            "use_tiers": self.tier_queue.use_tiers,
            "pending_blocks": self.tier_queue.num_pending,
            "pending_cap": self.tier_queue.pending_cap,
        }

    def block_tier(self, block_id: int) -> Tier:
        return self.tier_queue.tier_of(block_id)

    def _read_payload(self, request: Request) -> TierPayload | None:
        params = request.sampling_params
        extra = params.extra_args if params is not None else None
        try:
            return payload_from_extra_args(extra)
        except ValueError as e:
            # Raising here would take the whole engine core down for one bad request.
            logger.warning("ignoring agentrt hints of request %s: %s", request.request_id, e)
            return None

    def _label_blocks(self, request: Request) -> None:
        """Give each block of ``request`` the label its hints imply (max over overlaps)."""
        payload = self._tier_payloads.get(request.request_id)
        if payload is None:
            return
        coordinator = self.kv_cache_manager.coordinator
        groups = coordinator.get_blocks(request.request_id)
        # One entry per KV cache group; hybrid models give groups their own block size.
        for manager, blocks in zip(coordinator.single_type_managers, groups, strict=True):
            ids = [None if blk.is_null else blk.block_id for blk in blocks]
            label_request_blocks(
                self.tier_queue, ids, payload.hints, payload.session, manager.block_size
            )


class AsyncTierScheduler(TierScheduler, AsyncScheduler):
    """The tier-aware scheduler for vLLM with async scheduling (the GPU default).

    Method resolution runs TierScheduler's hooks, then AsyncScheduler's, then vLLM's.
    """


# -- engine-core utility methods -------------------------------------------------------------
# vLLM serves a client's ``call_utility_async(name, *args)`` with
# ``getattr(engine_core, name)(*args)`` in the engine-core process, on the thread that
# runs the scheduler. EngineCore has no hook for new utilities, so the scheduler adds its
# methods, under agentrt-prefixed names that vLLM does not use.


def _scheduler(engine_core: Any) -> TierScheduler:
    sched: SchedulerInterface = engine_core.scheduler
    if not isinstance(sched, TierScheduler):
        raise RuntimeError(f"the engine runs {type(sched).__name__}, not TierScheduler")
    return sched


def _tier_stats_utility(engine_core: Any) -> dict[str, Any]:
    return _scheduler(engine_core).tier_stats_payload()


def _release_utility(engine_core: Any, sessions: list[str]) -> int:
    return _scheduler(engine_core).release_sessions([str(s) for s in sessions])


def _sessions_utility(engine_core: Any) -> dict[str, Any]:
    return _scheduler(engine_core).sessions.to_json()


_UTILITIES = {
    TIER_STATS_METHOD: _tier_stats_utility,
    RELEASE_METHOD: _release_utility,
    SESSIONS_METHOD: _sessions_utility,
}


def _install_engine_utilities() -> None:
    from vllm.v1.engine.core import EngineCore

    for name, method in _UTILITIES.items():
        existing = getattr(EngineCore, name, None)
        if existing is None:
            setattr(EngineCore, name, method)
        elif existing is not method:
            logger.warning("EngineCore.%s exists already; agentrt's may misbehave", name)
