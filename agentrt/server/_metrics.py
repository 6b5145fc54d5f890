"""Prometheus metrics of one server: requests, latencies, tokens, runs, tools, and the
engine's cache (per tier too).

Each app has its own registry (several apps may live in one process, e.g. in tests).
Engine counters come from ``engine.stats()``, read when ``/metrics`` is scraped. Names
follow Prometheus conventions: base units (seconds), ``_total`` on counters (added by
the client library), the unit before it (``_tokens``, ``_blocks``). docs/OBSERVABILITY.md
lists them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agentrt import RunResult, ToolError
from agentrt.engine import EngineStats, RequestStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _EngineCollector(Collector):
    """Exposes the last ``EngineStats`` snapshot (refreshed before each scrape)."""

    def __init__(self) -> None:
        self.snapshot: EngineStats | None = None

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        if s is None:
            return
        yield CounterMetricFamily(
            "agentrt_engine_prefix_cache_queries",
            "Prompt tokens looked up in the engine's prefix cache",
            value=s.prefix_cache_queries,
        )
        yield CounterMetricFamily(
            "agentrt_engine_prefix_cache_hits",
            "Prompt tokens found in the engine's prefix cache",
            value=s.prefix_cache_hits,
        )
        yield GaugeMetricFamily(
            "agentrt_engine_kv_cache_usage_ratio",
            "Share of KV-cache blocks in use",
            value=s.kv_usage,
        )
        yield GaugeMetricFamily(
            "agentrt_engine_requests_running", "Requests the engine is running", value=s.num_running
        )
        yield GaugeMetricFamily(
            "agentrt_engine_requests_waiting",
            "Requests waiting in the engine's queue",
            value=s.num_waiting,
        )
        if not s.tiers:
            return  # an engine without the tier scheduler (plain vLLM over HTTP)
        cached = GaugeMetricFamily(
            "agentrt_engine_kv_tier_cached_blocks",
            "Free KV-cache blocks still holding cached tokens, by eviction tier",
            labels=["tier"],
        )
        hits = CounterMetricFamily(
            "agentrt_engine_kv_tier_hit_blocks",
            "Cached free blocks that a prefix-cache hit took back, by eviction tier",
            labels=["tier"],
        )
        evicted = CounterMetricFamily(
            "agentrt_engine_kv_tier_evicted_blocks",
            "Cached blocks reused for new content (their tokens evicted), by eviction tier",
            labels=["tier"],
        )
        for tier, t in s.tiers.items():
            label = [tier.lower()]
            cached.add_metric(label, t.cached_blocks)
            hits.add_metric(label, t.hits)
            evicted.add_metric(label, t.evictions)
        yield cached
        yield hits
        yield evicted


class _SplitCollector(Collector):
    """What became of the server's split prefills (``SplitPrefills.outcomes``), read at
    scrape time from the counter the server's split prefills keep."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] = dict

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "agentrt_split_prefills",
            "Split prefills of chat sessions and stored responses while the client runs "
            "tools, by outcome: done, cancelled, failed, or the reason it was skipped",
            labels=["outcome"],
        )
        for outcome, n in sorted(self.source().items()):
            family.add_metric([outcome], n)
        yield family


class Metrics:
    """The server's metrics and the few calls that update them."""

    def __init__(self, active: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "agentrt_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "agentrt_http_request_duration_seconds",
            "Time from request to the end of the response (streams included)",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "agentrt_http_rejected", "Requests refused before routing", ["reason"], registry=r
        )
        self.prompt_tokens = Counter(
            "agentrt_chat_prompt_tokens", "Prompt tokens of chat completions", registry=r
        )
        self.cached_tokens = Counter(
            "agentrt_chat_cached_tokens",
            "Prompt tokens of chat completions served from the prefix cache",
            registry=r,
        )
        self.completion_tokens = Counter(
            "agentrt_chat_completion_tokens", "Tokens generated for chat completions", registry=r
        )
        self.repeats_cut = Counter(
            "agentrt_chat_repeated_calls_cut",
            "Chat completions stopped at a tool call repeating an earlier one",
            registry=r,
        )
        self.ttft = Histogram(
            "agentrt_chat_time_to_first_token_seconds",
            "Engine time to the first token of chat completions",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.runs = Counter(
            "agentrt_agent_runs",
            "Agent runs finished, by agent and status",
            ["agent", "status"],
            registry=r,
        )
        self.run_ftr = Histogram(
            "agentrt_agent_run_ftr_seconds",
            "Agent runs: arrival to the first token of the final answer",
            ["agent"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.run_e2e = Histogram(
            "agentrt_agent_run_e2e_seconds",
            "Agent runs: arrival to the last token of the final answer (or of the run)",
            ["agent"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tool_latency = Histogram(
            "agentrt_tool_duration_seconds",
            "Tool executions of agent runs: start to result, by outcome (ok or error reason)",
            ["agent", "tool", "outcome"],
            buckets=_TOOL_BUCKETS,
            registry=r,
        )
        self.tool_overlap = Counter(
            "agentrt_tool_overlap_seconds",
            "Tool time hidden under the run's own decode or split prefill",
            ["agent"],
            registry=r,
        )
        active_gauge = Gauge(
            "agentrt_active_requests",
            "Chat completions in flight plus agent runs running",
            registry=r,
        )
        active_gauge.set_function(lambda: float(active()))
        self._engine = _EngineCollector()
        r.register(self._engine)
        self._splits = _SplitCollector()
        r.register(self._splits)

    def watch_splits(self, outcomes: Callable[[], Mapping[str, int]]) -> None:
        """Report ``outcomes()`` (the server's split prefills) at each scrape."""
        self._splits.source = outcomes

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def observe_chat(self, stats: RequestStats) -> None:
        self.prompt_tokens.inc(stats.prompt_tokens)
        self.cached_tokens.inc(stats.cached_tokens)
        self.completion_tokens.inc(stats.output_tokens)
        if stats.ttft_s is not None:
            self.ttft.observe(stats.ttft_s)

    def observe_run(self, agent: str, status: str) -> None:
        """A run ended (however: cancelled and failed runs have no result)."""
        self.runs.labels(agent, status).inc()

    def observe_result(self, agent: str, result: RunResult) -> None:
        """A run's turn produced its result: its latencies and its tools'."""
        if result.ftr_s is not None:
            self.run_ftr.labels(agent).observe(result.ftr_s)
        self.run_e2e.labels(agent).observe(result.e2e_s)
        for span in result.tool_spans:
            outcome = span.result.reason if isinstance(span.result, ToolError) else "ok"
            self.tool_latency.labels(agent, span.name, outcome).observe(span.duration_s)
        self.tool_overlap.labels(agent).inc(result.tool_overlap_s)

    def render(self, engine: EngineStats | None) -> bytes:
        """The text exposition, with ``engine`` as the engine's current snapshot."""
        if engine is not None:
            self._engine.snapshot = engine
        return generate_latest(self.registry)
