"""``/metrics`` of the REST server: per-tier KV statistics, tool latency, FTR and E2E
histograms, and Prometheus naming (base units, ``_total`` counters)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agentrt.engine import ScriptContext, ScriptedEngine, TimingModel
from agentrt.server import calculator_agent, create_app, running_server

pytestmark = pytest.mark.anyio


def calculator_script(ctx: ScriptContext) -> str:
    last = ctx.prompt_text.rsplit("<|im_start|>user\n", 1)[-1]
    if last.startswith("<tool_response>"):
        return f"The result is {last.split(chr(10))[1]}."
    args = {"name": "calculator", "arguments": {"expression": "6*7"}}
    return "<tool_call>\n" + json.dumps(args) + "\n</tool_call>"


async def scrape_after_one_run() -> tuple[dict[str, Any], list[Sample], ScriptedEngine]:
    engine = ScriptedEngine(calculator_script, timing=TimingModel(decode_step_s=0.0005))
    app = create_app(engine, agents=[calculator_agent()])
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        r = await c.post("/v1/agents/calculator/runs", json={"input": "6*7?", "stream": True})
        run = (await c.get(f"/v1/runs/{r.headers['x-agentrt-run-id']}")).json()
        text = (await c.get("/metrics")).text
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    return run, samples, engine


def value(samples: list[Sample], name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return found


async def test_a_run_shows_in_the_ftr_e2e_and_tool_histograms() -> None:
    run, samples, engine = await scrape_after_one_run()
    await engine.aclose()
    assert run["status"] == "completed"
    result = run["result"]
    assert value(samples, "agentrt_agent_run_ftr_seconds_count", agent="calculator") == 1
    assert value(samples, "agentrt_agent_run_ftr_seconds_sum", agent="calculator") == (
        pytest.approx(result["ftr_s"])
    )
    assert value(samples, "agentrt_agent_run_e2e_seconds_sum", agent="calculator") == (
        pytest.approx(result["e2e_s"])
    )
    ((tool,),) = [it["tools"] for it in result["iterations"] if it["tools"]]
    labels = {"agent": "calculator", "tool": "calculator", "outcome": "ok"}
    assert value(samples, "agentrt_tool_duration_seconds_count", **labels) == 1
    assert value(samples, "agentrt_tool_duration_seconds_sum", **labels) == pytest.approx(
        tool["end_t"] - tool["start_t"], abs=1e-5
    )
    assert value(samples, "agentrt_tool_overlap_seconds_total", agent="calculator") == (
        pytest.approx(result["tool_overlap_s"], abs=1e-5)
    )
    assert value(samples, "agentrt_agent_runs_total", agent="calculator", status="completed") == 1


async def test_per_tier_kv_statistics_are_the_engines() -> None:
    _, samples, engine = await scrape_after_one_run()
    stats = await engine.stats()
    await engine.aclose()
    assert stats.tiers, "the scripted engine reports its tiers"
    for tier, t in stats.tiers.items():
        label = tier.lower()
        assert value(samples, "agentrt_engine_kv_tier_cached_blocks", tier=label) == t.cached_blocks
        assert value(samples, "agentrt_engine_kv_tier_hit_blocks_total", tier=label) == t.hits
        assert value(samples, "agentrt_engine_kv_tier_evicted_blocks_total", tier=label) == (
            t.evictions
        )
    assert sum(t.cached_blocks for t in stats.tiers.values()) > 0  # the run left cached blocks
    assert {s.labels["tier"] for s in samples if s.name.startswith("agentrt_engine_kv_tier")} == {
        "scratch",
        "response",
        "default",
        "tool_output",
        "user_query",
        "system",
        "split_pending",
    }


async def test_names_follow_prometheus_conventions() -> None:
    engine = ScriptedEngine(calculator_script, timing=TimingModel(decode_step_s=0.0005))
    app = create_app(engine, agents=[calculator_agent()])
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        await c.post("/v1/agents/calculator/runs", json={"input": "6*7?", "stream": True})
        text = (await c.get("/metrics")).text
    await engine.aclose()
    families = list(text_string_to_metric_families(text))
    ours = [f for f in families if f.name.startswith("agentrt_")]
    assert len(ours) >= 20
    for fam in ours:
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples), fam.name
        if fam.type == "histogram":
            assert fam.name.endswith("_seconds"), f"{fam.name}: histograms here measure time"
        # Base units only: no milliseconds, minutes or bytes prefixes.
        assert not any(u in fam.name for u in ("_ms", "_milliseconds", "_minutes", "_kb")), fam.name
