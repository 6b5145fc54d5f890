"""``agentrt engine serve`` builds vLLM's server command with agentrt's parts in it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agentrt.cli._engine_options import add_engine_flags, engine_options
from agentrt.engine import EngineOptions
from agentrt.engine._serve import ServeOptions, server_argv
from agentrt.engine._tier_wire import TierSettings


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_server_gets_the_tier_scheduler_forced_output_template_and_plugin() -> None:
    argv, env = server_argv(EngineOptions(max_model_len=2048), ServeOptions(port=8123))
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert flag_value(argv, "--scheduler-cls") == "agentrt.engine._tier_scheduler.TierScheduler"
    assert flag_value(argv, "--logits-processors") == "agentrt.engine._forced:ForcedOutputProcessor"
    assert Path(flag_value(argv, "--chat-template")).name == "hermes_tools.jinja"
    assert "--enable-prompt-tokens-details" in argv
    assert flag_value(argv, "--host") == "127.0.0.1" and flag_value(argv, "--port") == "8123"
    assert flag_value(argv, "--max-model-len") == "2048"
    assert env["VLLM_PLUGINS"] == "agentrt" and env["HF_HUB_OFFLINE"] == "1"


def test_no_hints_serves_vllms_own_scheduler() -> None:
    argv, _ = server_argv(EngineOptions(cache_hints=False), ServeOptions())
    assert "--scheduler-cls" not in argv


def test_tensor_and_pipeline_parallel_flags_reach_vllms_server() -> None:
    p = argparse.ArgumentParser()
    add_engine_flags(p)
    args = p.parse_args(["--tensor-parallel-size", "4", "--pipeline-parallel-size", "2"])
    argv, _ = server_argv(engine_options(args), ServeOptions())
    assert flag_value(argv, "--tensor-parallel-size") == "4"
    assert flag_value(argv, "--pipeline-parallel-size") == "2"
    plain, _ = server_argv(engine_options(p.parse_args([])), ServeOptions())
    assert "--tensor-parallel-size" not in plain  # one GPU (or the CPU) needs no flag
    with pytest.raises(SystemExit):
        p.parse_args(["--tensor-parallel-size", "0"])


def test_live_ttl_reaches_the_tier_scheduler_settings_and_only_with_hints() -> None:
    p = argparse.ArgumentParser()
    add_engine_flags(p)
    argv, _ = server_argv(engine_options(p.parse_args(["--live-ttl-s", "30"])), ServeOptions())
    settings = TierSettings.from_additional_config(
        json.loads(flag_value(argv, "--additional-config"))
    )
    assert settings == TierSettings(live_ttl_s=30.0)
    default, _ = server_argv(engine_options(p.parse_args([])), ServeOptions())
    assert "--additional-config" not in default  # the scheduler's own default (120 s)
    no_hints = engine_options(p.parse_args(["--live-ttl-s", "30", "--no-hints"]))
    assert "--additional-config" not in server_argv(no_hints, ServeOptions())[0]
    with pytest.raises(ValueError, match="live_ttl_s"):
        server_argv(engine_options(p.parse_args(["--live-ttl-s", "-1"])), ServeOptions())
