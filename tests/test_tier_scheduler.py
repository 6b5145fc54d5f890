"""The tier-aware vLLM scheduler without a model: hints to block labels, releases, stats, wire.

A real ``TierScheduler`` built from a hand-made ``VllmConfig`` (``scheduler_helpers``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scheduler_helpers import NUM_BLOCKS, Driver, make_scheduler, write_model_dir
from vllm.config import SchedulerConfig
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.engine import EngineCoreOutputs, UtilityOutput
from vllm.v1.engine.core import EngineCore, EngineCoreProc
from vllm.v1.serial_utils import MsgpackDecoder, MsgpackEncoder, UtilityResult

from agentrt.engine import CacheHint, SessionId, Tier, TierStats
from agentrt.engine._tier_labels import BlockLabel, prefix_monotone
from agentrt.engine._tier_scheduler import AsyncTierScheduler, TierScheduler
from agentrt.engine._tier_wire import (
    ASYNC_TIER_SCHEDULER,
    TIER_SCHEDULER,
    TIER_STATS_METHOD,
    PendingReleases,
    TierPayload,
    TierSettings,
    decode_payload,
    decode_tier_stats,
    encode_payload,
    encode_tier_stats,
    fetch_tier_stats,
    payload_from_extra_args,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("tiny-llama"))


def tiers(sched: Scheduler, block_ids: list[int]) -> list[Tier]:
    assert isinstance(sched, TierScheduler)
    return [sched.block_tier(b) for b in block_ids]


HINTS = (
    CacheHint(0, 6, Tier.SYSTEM),
    CacheHint(6, 12, Tier.USER_QUERY),
    CacheHint(10, 14, Tier.TOOL_OUTPUT),
)


def test_scheduler_swaps_in_the_tiered_queue(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    assert isinstance(sched, TierScheduler)
    assert sched.kv_cache_manager.block_pool.free_block_queue is sched.tier_queue
    assert sched.tier_queue.pending_cap == int(0.5 * (NUM_BLOCKS - 1))
    assert Driver(sched).free_order() == list(range(1, NUM_BLOCKS))


@pytest.mark.parametrize("form", ["dict", "json-string"])
def test_block_gets_the_highest_tier_of_overlapping_hints(model_dir: Path, form: str) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    payload = TierPayload(hints=HINTS)
    d.add(
        "a",
        list(range(16)),
        payload=payload.to_extra_args() if form == "dict" else payload.to_xargs(),
    )
    d.step()
    assert d.blocks["a"] == [1, 2, 3, 4]
    assert tiers(sched, d.blocks["a"]) == [
        Tier.SYSTEM,
        Tier.SYSTEM,
        Tier.USER_QUERY,
        Tier.TOOL_OUTPUT,
    ]
    # Unused blocks first, then the request's blocks lowest tier first.
    assert d.free_order() == [*range(5, NUM_BLOCKS), 4, 3, 2, 1]
    sched.tier_queue.check_integrity()


@pytest.mark.parametrize("first", ["system", "lower"])
def test_shared_block_keeps_the_highest_live_label(model_dir: Path, first: str) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    prefix = list(range(8))
    # Whichever request is named first finishes first, the other still holds the prefix.
    d.add(
        "system",
        [*prefix, 50, 51, 52, 53, 54],
        max_tokens=2 if first == "system" else 5,
        payload=TierPayload(hints=(CacheHint(0, 8, Tier.SYSTEM),)).to_extra_args(),
    )
    d.step()
    d.add(
        "lower",
        [*prefix, 60, 61, 62, 63, 64],
        max_tokens=2 if first == "lower" else 5,
        payload=TierPayload(hints=(CacheHint(0, 13, Tier.DEFAULT),)).to_extra_args(),
    )
    d.step()
    shared = d.blocks["system"][:2]
    assert d.blocks["lower"][:2] == shared  # the second request hit the first one's prefix
    d.step()
    assert first not in sched.requests and len(sched.requests) == 1
    assert all(sched.kv_cache_manager.block_pool.blocks[b].ref_cnt == 1 for b in shared)
    while sched.requests:
        d.step()
    assert tiers(sched, shared) == [Tier.SYSTEM, Tier.SYSTEM]
    assert tiers(sched, d.blocks["lower"][2:3]) == [Tier.DEFAULT]  # its own prompt block
    sched.tier_queue.check_integrity()


def test_aborted_request_gives_no_labels(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    hints = TierPayload(hints=(CacheHint(0, 12, Tier.USER_QUERY),)).to_extra_args()
    d.add("a", list(range(12)), max_tokens=5, payload=hints)
    d.step()
    d.abort("a")
    assert tiers(sched, d.blocks["a"]) == [Tier.SCRATCH] * 3


def test_unhinted_request_leaves_its_blocks_scratch(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    d.add("a", list(range(12)), payload=TierPayload(session=SessionId("s")).to_extra_args())
    d.add("b", list(range(100, 112)))
    d.step()
    assert tiers(sched, d.blocks["a"] + d.blocks["b"]) == [Tier.SCRATCH] * 6


def test_prefix_hit_is_relabelled_when_freed_again(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    d.add(
        "a",
        list(range(12)),
        payload=TierPayload(hints=(CacheHint(0, 12, Tier.SYSTEM),)).to_extra_args(),
    )
    d.step()
    assert tiers(sched, d.blocks["a"]) == [Tier.SYSTEM] * 3
    d.add(
        "b",
        [*range(12), 99],
        max_tokens=3,
        payload=TierPayload(hints=(CacheHint(0, 13, Tier.TOOL_OUTPUT),)).to_extra_args(),
    )
    d.step()
    assert d.blocks["b"][:3] == d.blocks["a"]
    d.step()
    d.step()  # b finishes: the blocks take b's label, not a's
    assert tiers(sched, d.blocks["a"]) == [Tier.TOOL_OUTPUT] * 3


def test_release_piggybacks_on_the_next_request(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    run = TierPayload(
        hints=(CacheHint(0, 8, Tier.SYSTEM), CacheHint(8, 16, Tier.USER_QUERY)),
        session=SessionId("run-1"),
    )
    d.add("a", list(range(16)), payload=run.to_xargs())
    d.step()
    assert tiers(sched, d.blocks["a"]) == [Tier.SYSTEM] * 2 + [Tier.USER_QUERY] * 2
    d.add("next", [500, 501, 502], payload=TierPayload(release=(SessionId("run-1"),)).to_xargs())
    # Applied on arrival, before the new request is scheduled or allocates.
    assert tiers(sched, d.blocks["a"]) == [Tier.SCRATCH] * 4
    sched.tier_queue.check_integrity()


def test_a_malformed_payload_is_ignored_not_fatal(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    d.add("a", list(range(8)), payload='{"hints": [[5, 2, 3]]}')
    d.step()
    assert tiers(sched, d.blocks["a"]) == [Tier.SCRATCH] * 2


def _workload(d: Driver, payload: Callable[[int], Any]) -> list[list[int]]:
    """Requests sharing prefixes under cache pressure; the free order after every step."""
    orders = []
    for i in range(12):
        prefix = [i % 3] * 8
        d.add(
            f"r{i}",
            [*prefix, *range(100 * i, 100 * i + 4 + i % 5)],
            max_tokens=1 + i % 3,
            payload=payload(i),
        )
        d.step()
        if i % 4 == 3:
            d.abort(f"r{i}")
        orders.append(d.free_order())
    for _ in range(3):
        d.step()
        orders.append(d.free_order())
    return orders


def test_without_hints_eviction_order_is_exactly_vllms(model_dir: Path) -> None:
    stock = _workload(Driver(make_scheduler(model_dir, Scheduler)), lambda i: None)
    ours = _workload(Driver(make_scheduler(model_dir)), lambda i: None)
    assert ours == stock


def test_tiers_off_ignores_hints_and_keeps_vllms_order(model_dir: Path) -> None:
    def hinted(i: int) -> Any:
        tier = Tier(i % 6)
        return TierPayload(
            hints=(CacheHint(0, 12, tier, 2.0),),
            session=SessionId(f"s{i % 2}"),
            release=(SessionId(f"s{(i + 1) % 2}"),),
        ).to_extra_args()

    stock = _workload(Driver(make_scheduler(model_dir, Scheduler)), lambda i: None)
    sched = make_scheduler(model_dir, use_tiers=False)
    assert _workload(Driver(sched), hinted) == stock
    assert isinstance(sched, TierScheduler) and not sched.tier_queue.use_tiers


def test_settings_come_from_additional_config(model_dir: Path) -> None:
    sched = make_scheduler(model_dir, pending_cap=0.25, pending_ttl_s=3.0, live_ttl_s=7.0)
    assert isinstance(sched, TierScheduler)
    assert sched.tier_queue.pending_cap == int(0.25 * (NUM_BLOCKS - 1))
    assert sched.tier_queue.pending_ttl_s == 3.0
    assert sched.tier_queue.live_ttl_s == 7.0
    assert TierSettings.from_additional_config(None).live_ttl_s == 120.0
    with pytest.raises(ValueError, match="pending_cap"):
        TierSettings.from_additional_config({"agentrt": {"pending_cap": 2}})
    with pytest.raises(ValueError, match="live_ttl_s"):
        TierSettings.from_additional_config({"agentrt": {"live_ttl_s": -1}})


def test_class_resolves_by_dotted_path_with_vllms_signature(model_dir: Path) -> None:
    for path, cls in ((TIER_SCHEDULER, TierScheduler), (ASYNC_TIER_SCHEDULER, AsyncTierScheduler)):
        assert (
            SchedulerConfig(
                max_model_len=256, is_encoder_decoder=False, scheduler_cls=path
            ).get_scheduler_cls()
            is cls
        )

    def shape(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(TierScheduler.__init__) == shape(Scheduler.__init__)
    sched = make_scheduler(model_dir, AsyncTierScheduler)
    assert isinstance(sched, AsyncTierScheduler)
    assert sched.kv_cache_manager.block_pool.free_block_queue is sched.tier_queue


def _engine_core_with(sched: Scheduler) -> EngineCore:
    # A bare EngineCore instance: utility calls resolve on it exactly as in vLLM.
    core = EngineCore.__new__(EngineCore)
    core.scheduler = sched
    return core


def test_stats_are_an_engine_core_utility(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    d.add("a", list(range(16)), payload=TierPayload(hints=HINTS, session=SessionId("s")).to_xargs())
    d.step()
    core = _engine_core_with(sched)
    payload = getattr(core, TIER_STATS_METHOD)()
    json.dumps(payload)  # plain JSON values: safe for vLLM's msgpack transport
    assert payload["tiers"]["SYSTEM"] == {"cached_blocks": 2, "evictions": 0, "hits": 0}
    assert decode_tier_stats(encode_tier_stats(sched.tier_queue.stats())) == (
        sched.tier_queue.stats()
    )
    with pytest.raises(RuntimeError, match="not TierScheduler"):
        getattr(_engine_core_with(make_scheduler(model_dir, Scheduler)), TIER_STATS_METHOD)()


class _FakeClient:
    """Stands in for AsyncLLM.engine_core, taking vLLM's own utility path in one process.

    Like EngineCoreProc: look the method up on the engine core, convert the arguments,
    wrap the result (or the failure) in EngineCoreOutputs and send it through vLLM's
    msgpack codec; like the client: unwrap it, raising a bare Exception on failure.
    """

    def __init__(self, core: EngineCore) -> None:
        self.core = core

    async def call_utility_async(self, method: str, *args: Any) -> Any:
        out = UtilityOutput(call_id=1)
        try:
            fn = getattr(self.core, method)
            out.result = UtilityResult(fn(*EngineCoreProc._convert_msgspec_args(fn, args)))
        except Exception as e:
            out.failure_message = f"Call to {method} method failed: {e}"
        frames = MsgpackEncoder().encode(EngineCoreOutputs(utility_output=out))
        got = MsgpackDecoder(EngineCoreOutputs).decode(frames).utility_output
        assert got is not None
        if got.failure_message is not None:
            raise Exception(got.failure_message)
        assert got.result is not None
        return got.result.result


class _FakeLLM:
    def __init__(self, core: EngineCore) -> None:
        self.engine_core = _FakeClient(core)


@pytest.mark.anyio
async def test_client_helper_fetches_stats(model_dir: Path) -> None:
    sched = make_scheduler(model_dir)
    d = Driver(sched)
    d.add("a", list(range(16)), payload=TierPayload(hints=HINTS, session=SessionId("s")).to_xargs())
    d.step()
    llm = _FakeLLM(_engine_core_with(sched))
    stats = await fetch_tier_stats(llm)
    assert stats["SYSTEM"] == TierStats(cached_blocks=2, evictions=0, hits=0)
    assert stats["TOOL_OUTPUT"] == TierStats(cached_blocks=1, evictions=0, hits=0)
    assert sched.release_sessions(["s"]) == 4
    assert (await fetch_tier_stats(llm))["SCRATCH"].cached_blocks == 4
    with pytest.raises(RuntimeError, match="TierScheduler"):
        await fetch_tier_stats(_FakeLLM(_engine_core_with(make_scheduler(model_dir, Scheduler))))


# -- wire format -------------------------------------------------------------------------


def test_payload_round_trips_in_both_forms() -> None:
    p = TierPayload(hints=HINTS, session=SessionId("s1"), release=(SessionId("s0"),))
    assert decode_payload(p.to_extra_args()) == p
    assert decode_payload(p.to_xargs()) == p
    assert payload_from_extra_args({"other": 1}) is None


def test_encode_payload_gives_the_extra_args_entry() -> None:
    hints, session, release = HINTS, SessionId("s1"), [SessionId("s0")]
    extra = encode_payload(hints, session, release)
    assert payload_from_extra_args(extra) == TierPayload(HINTS, session, tuple(release))
    xargs = encode_payload(hints, session, release, as_xargs=True)
    assert isinstance(xargs["agentrt"], str)
    assert payload_from_extra_args(xargs) == payload_from_extra_args(extra)


def test_vllm_xargs_carries_the_payload_as_one_json_string() -> None:
    p = TierPayload(hints=HINTS, session=SessionId("s1"))
    req = CompletionRequest(model="m", prompt=[1, 2, 3], vllm_xargs={"agentrt": p.to_xargs()})
    assert payload_from_extra_args(req.to_sampling_params(max_tokens=4).extra_args) == p
    with pytest.raises(ValueError, match="vllm_xargs"):  # nested lists are not accepted
        CompletionRequest(model="m", prompt=[1], vllm_xargs={"agentrt": p.to_extra_args()})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{", "JSON"),
        ({"hints": [[0, 1]]}, "hints\\[0\\]"),
        ({"hints": [[0, 1, 9]]}, "hints\\[0\\]"),
        ({"session": 3}, "session"),
        ({"release": "s"}, "release"),
    ],
)
def test_malformed_payload_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        decode_payload(raw)


def test_pending_releases_are_sent_once() -> None:
    pending = PendingReleases()
    pending.add(SessionId("a"))
    pending.add(SessionId("a"))
    pending.add(SessionId("b"))
    assert pending.take() == ("a", "b")
    assert pending.take() == ()


def test_a_later_block_never_outranks_an_earlier_one() -> None:
    S, U, D, T = Tier.SYSTEM, Tier.USER_QUERY, Tier.DEFAULT, Tier.TOOL_OUTPUT
    got = prefix_monotone(
        [BlockLabel(S), BlockLabel(U), BlockLabel(D), BlockLabel(T), BlockLabel(D)]
    )
    assert [lab.tier if lab else None for lab in got] == [S, U, D, D, D]


def test_pending_blocks_keep_pending_but_their_bases_become_monotone() -> None:
    P = Tier.SPLIT_PENDING
    got = prefix_monotone(
        [
            BlockLabel(P, Tier.SYSTEM, 2.0),
            BlockLabel(P, Tier.DEFAULT, 2.0),
            BlockLabel(P, Tier.TOOL_OUTPUT, 2.0),
            None,
            BlockLabel(Tier.SYSTEM),
        ]
    )
    assert got[:3] == [
        BlockLabel(P, Tier.SYSTEM, 2.0),
        BlockLabel(P, Tier.DEFAULT, 2.0),
        BlockLabel(P, Tier.DEFAULT, 2.0),
    ]
    assert got[3:] == [None, None]  # nothing after an unlabelled block can be reused


def test_a_pending_block_after_a_settled_one_is_capped_to_it() -> None:
    got = prefix_monotone(
        [BlockLabel(Tier.DEFAULT), BlockLabel(Tier.SPLIT_PENDING, Tier.SYSTEM, 1.0)]
    )
    assert got == [BlockLabel(Tier.DEFAULT), BlockLabel(Tier.DEFAULT)]
