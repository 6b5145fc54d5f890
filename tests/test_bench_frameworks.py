"""``agentrt bench frameworks``' measurement of one run, on ScriptedEngine behind the server:
the OpenAI Agents SDK agent's responses are counted as the bench reports them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.bench._frameworks import _agent, _one_run, summarize
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
    async with running_server(app) as url:
        sample = await _one_run(_agent(url, "agentrt"), "What is 12 * 7?")
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
