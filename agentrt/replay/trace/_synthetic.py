"""A seeded generator of agent workloads; by default a web-search agent.

The default shape follows the Sutradhara paper's BFCL v4 web-search replay: one shared
~1,000-token system prompt with tool schemas, short queries, 2-6 LLM calls per request,
often two parallel searches per iteration, lognormal tool latencies. Everything is token
counts; only the system prompt carries hash ids (every request shares it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ._arrivals import poisson_arrivals
from ._importers import scale_count, scaled_block_tokens
from ._schema import Call, TokenContent, ToolCall, TraceHeader, TraceRequest, TraceRequestId
from ._trace import Trace


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """Distributions of a synthetic workload. Ranges ``(lo, hi)`` are inclusive and
    uniform over integers; counts are drawn unscaled, then scaled by ``token_scale``.

    Attributes:
        n_requests: agent requests in the trace.
        seed: one seed for everything (content and arrivals use independent streams).
        rate_per_s: Poisson arrival rate (replay usually reassigns arrivals per load).
        token_scale: factor for every token count (positions too).
        system_tokens: the shared system prompt with tool schemas (one group).
        hash_block_tokens: tokens per hash id of the system prompt, before scaling.
        query_tokens: user query length.
        llm_calls: LLM calls per request, the final answer included (so 1-5 iterations
            that call tools).
        p_parallel: chance that a tool-using call makes two parallel searches (else one
            call: a search or a page fetch, evenly).
        tool_latency_median_s, tool_latency_sigma: lognormal tool latency (median and
            sigma of the log): 0.5 s and 1.0 put 90% of calls in ~0.1-2.6 s.
        tool_latency_bounds_s: latencies are clipped into this range.
        result_tokens: tokens of each tool result.
        output_tokens: tokens of each tool-using call's output.
        preamble_share: the share of such an output spent before the first call opens;
            the calls follow back to back in equal parts, call ``j`` of ``m`` completing
            at ``P + ceil((j + 1) * (O - P) / m)`` with ``P = floor(O * share)``, the last
            at the end of the output ``O``.
        final_tokens: tokens of the final answer.
    """

    n_requests: int = 56
    seed: int = 0
    rate_per_s: float = 1.0
    token_scale: float = 1.0
    system_tokens: int = 1000
    hash_block_tokens: int = 16
    query_tokens: tuple[int, int] = (30, 120)
    llm_calls: tuple[int, int] = (2, 6)
    p_parallel: float = 0.6
    tool_latency_median_s: float = 0.5
    tool_latency_sigma: float = 1.0
    tool_latency_bounds_s: tuple[float, float] = (0.02, 10.0)
    result_tokens: tuple[int, int] = (150, 600)
    output_tokens: tuple[int, int] = (20, 80)
    preamble_share: float = 0.2
    final_tokens: tuple[int, int] = (50, 200)

    def __post_init__(self) -> None:
        if self.n_requests < 0:
            raise ValueError(f"n_requests must be >= 0, got {self.n_requests}")
        for name in ("query_tokens", "llm_calls", "result_tokens", "output_tokens", "final_tokens"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with 1 <= lo <= hi, got {(lo, hi)}")
        if not 0 <= self.p_parallel <= 1:
            raise ValueError(f"p_parallel must be in [0, 1], got {self.p_parallel}")
        if not 0 <= self.preamble_share < 1:
            raise ValueError(f"preamble_share must be in [0, 1), got {self.preamble_share}")
        lo_s, hi_s = self.tool_latency_bounds_s
        if not 0 <= lo_s <= hi_s:
            raise ValueError(f"tool_latency_bounds_s must be 0 <= lo <= hi, got {(lo_s, hi_s)}")
        if self.tool_latency_median_s <= 0 or self.tool_latency_sigma < 0:
            raise ValueError("tool latency needs median > 0 and sigma >= 0")
        if self.system_tokens < 0 or self.hash_block_tokens < 1:
            raise ValueError("system_tokens must be >= 0 and hash_block_tokens >= 1")
        scaled_block_tokens(self.hash_block_tokens, self.token_scale)  # validates the scale


def generate_synthetic(config: SyntheticConfig | None = None) -> Trace:
    """A trace drawn from ``config`` (default: the web-search agent shape).

    The same config gives an identical trace; a different seed gives a different one.
    """
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng([cfg.seed, 0])
    s = cfg.token_scale
    block = scaled_block_tokens(cfg.hash_block_tokens, s)
    sys_tokens = scale_count(cfg.system_tokens, s)
    system = TokenContent(
        tokens=sys_tokens, hash_ids=tuple(range(math.ceil(sys_tokens / block))) or None
    )
    arrivals = poisson_arrivals(cfg.n_requests, cfg.rate_per_s, cfg.seed)
    requests = [
        TraceRequest(
            id=TraceRequestId(f"websearch-{i:04d}"),
            arrival_s=arrivals[i],
            group="websearch" if sys_tokens else None,
            system=system,
            query=TokenContent(tokens=scale_count(_uniform(rng, cfg.query_tokens), s)),
            calls=_calls(rng, cfg),
        )
        for i in range(cfg.n_requests)
    ]
    header = TraceHeader(
        source="synthetic-websearch",
        description=_describe(cfg),
        token_scale=s,
        hash_block_tokens=block if sys_tokens else None,
    )
    return Trace(header, tuple(requests))


def _uniform(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))


def _calls(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[Call, ...]:
    s = cfg.token_scale
    n_calls = _uniform(rng, cfg.llm_calls)
    calls = []
    for _ in range(n_calls - 1):
        out = _uniform(rng, cfg.output_tokens)
        parallel = rng.random() < cfg.p_parallel
        names = (
            ["web_search", "web_search"]
            if parallel
            else ["web_search" if rng.random() < 0.5 else "fetch_url"]
        )
        pre = math.floor(out * cfg.preamble_share)
        out_s = scale_count(out, s)
        tool_calls = []
        for j, name in enumerate(names):
            at = pre + math.ceil((j + 1) * (out - pre) / len(names))
            latency = float(
                np.clip(
                    rng.lognormal(math.log(cfg.tool_latency_median_s), cfg.tool_latency_sigma),
                    *cfg.tool_latency_bounds_s,
                )
            )
            tool_calls.append(
                ToolCall(
                    name=name,
                    at=min(out_s, scale_count(at, s)),
                    latency_s=round(latency, 4),
                    result=TokenContent(tokens=scale_count(_uniform(rng, cfg.result_tokens), s)),
                )
            )
        calls.append(Call(output=TokenContent(tokens=out_s), tool_calls=tuple(tool_calls)))
    final = scale_count(_uniform(rng, cfg.final_tokens), s)
    calls.append(Call(output=TokenContent(tokens=final)))
    return tuple(calls)


def _describe(cfg: SyntheticConfig) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in asdict(cfg).items())
    return (
        "Synthetic web-search agent workload (shape of the Sutradhara BFCL v4 replay): "
        "uniform integer ranges, lognormal tool latency, Poisson arrivals. " + fields
    )
