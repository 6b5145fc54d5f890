"""``agentrt bench frameworks``' measurement of one run, on ScriptedEngine behind the server:
the OpenAI Agents SDK agent's responses are counted as the bench reports them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.bench._frameworks import _agent, _client, _one_run
from agentrt.bench._frameworks_report import add_ratios, plot, summarize, table
from agentrt.bench._servers import SERVED_NAME, ServerSettings, agentrt_argv, vllm_argv
from agentrt.engine import ScriptContext, ScriptedEngine, TimingModel
from agentrt.server import ServerConfig, create_app, running_server

pytestmark = pytest.mark.anyio

CALL = (
    "<tool_call>\n"
    + json.dumps({"name": "calculator", "arguments": {"expression": "12 * 7"}})
    + "\n</tool_call>"
)


def reply(ctx: ScriptContext) -> str:
    # First response of a run: the call, twice (the repeat is cut); then the answer.
    return "\n".join([CALL, CALL]) if ctx.index % 2 == 0 else "It is 84."


async def test_one_run_counts_output_tokens_per_response_and_no_repeats() -> None:
    engine = ScriptedEngine(
        reply, timing=TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
    )
    app = create_app(engine, agents=[], config=ServerConfig(model_name=SERVED_NAME))
    async with running_server(app) as url, _client(url) as client:
        sample = await _one_run(_agent(client, "agentrt"), "What is 12 * 7?")
    cut_at = len(f"{CALL}\n{CALL}".encode()) - len("\n</tool_call>")
    assert sample.call_outputs == (cut_at,)
    assert sample.final_outputs == (len(b"It is 84.") + 1,)  # + <|im_end|>
    assert sample.calls_per_response == (1,) and sample.repeats == 0
    assert sample.ftr_s is not None and 0 < sample.ftr_s <= sample.e2e_s
    summary = summarize([sample, sample])
    assert summary["out_tokens_per_tool_response"] == cut_at
    assert summary["calls_per_tool_response"] == 1
    await engine.aclose()


def test_both_servers_get_the_same_engine_settings(tmp_path: Path) -> None:
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (tmp_path / name).write_text("{}")
    s = ServerSettings(model=str(tmp_path), kv_cache_mib=256, max_model_len=2048, dtype="float32")
    v, _ = vllm_argv(s, 9001)
    a, _ = agentrt_argv(s, 9002, ["--parallel-unset", "one"])
    assert v[v.index("--kv-cache-memory-bytes") + 1] == str(256 * 2**20)
    assert a[a.index("--kv-cache-mib") + 1] == "256"
    for argv in (v, a):
        assert argv[argv.index("--max-model-len") + 1] == "2048"
        assert argv[argv.index("--dtype") + 1] == "float32"
        assert argv[argv.index("--served-model-name") + 1] == SERVED_NAME
    assert "--enable-auto-tool-choice" in v and "--scheduler-cls" not in v
    assert a[-2:] == ["--parallel-unset", "one"]


def _row(ftr: float, out: float) -> dict[str, object]:
    return {
        "runs": 8,
        "ftr_median_s": ftr,
        "ftr_p90_s": ftr,
        "ftr_median_per_repeat_s": [ftr, ftr],
        "e2e_median_s": ftr,
        "out_tokens_per_tool_response": out,
        "out_tokens_per_final_response": 8.0,
        "calls_per_tool_response": 1.0,
        "repeated_calls": 0,
        "prompt_tokens_per_run": 500.0,
        "cached_tokens_per_run": 300.0,
    }


def test_ratios_are_taken_against_vllm_at_the_same_concurrency(tmp_path: Path) -> None:
    results = {
        "vllm@1": _row(2.0, 40.0),
        "vllm@4": _row(4.0, 40.0),
        "agentrt@1": _row(3.0, 44.0),
        "agentrt@4": _row(3.0, 80.0),
        "agentrt-responses@2": _row(1.0, 1.0),
    }
    add_ratios(results)
    assert results["agentrt@1"]["ftr_vs_vllm"] == pytest.approx(1.5)
    assert results["agentrt@4"]["ftr_vs_vllm"] == pytest.approx(0.75)
    assert results["agentrt@4"]["out_tokens_vs_vllm"] == pytest.approx(2.0)
    assert results["vllm@4"]["ftr_vs_vllm"] == pytest.approx(1.0)
    assert results["agentrt-responses@2"]["ftr_vs_vllm"] is None  # no vLLM row there
    text = table(results)
    assert "| agentrt@4 | 8 | 3.000 | 3.00 3.00 | 0.75 |" in text
    plot(tmp_path / "f.png", results)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
