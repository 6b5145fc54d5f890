"""``agentrt serve`` arguments: agents from ``module:attr``, built-ins, keys, limits."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest

from agentrt.server import load_agents
from agentrt.server._cli import add_arguments, build, main, parse_bytes

AGENTS_MODULE = textwrap.dedent("""
    from agentrt import Agent
    from agentrt.tools import calculator

    one = Agent(name="one", tools=[calculator])
    several = [Agent(name="two"), Agent(name="three")]

    def make():
        return Agent(name="made")

    class Holder:
        inner = Agent(name="inner")

    not_an_agent = 42
""")


@pytest.fixture
def agents_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "srv_test_agents.py").write_text(AGENTS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "srv_test_agents"


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


@pytest.mark.parametrize(
    ("attr", "names"),
    [
        ("one", ["one"]),
        ("several", ["two", "three"]),
        ("make", ["made"]),
        ("Holder.inner", ["inner"]),
    ],
)
def test_agents_load_from_module_attributes(
    agents_module: str, attr: str, names: list[str]
) -> None:
    assert [a.name for a in load_agents(f"{agents_module}:{attr}")] == names


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "expected 'package.module:attribute'"),
        ("{m}:missing", "has no attribute 'missing'"),
        ("{m}:not_an_agent", "expected an Agent or a list of Agents, got int"),
    ],
)
def test_bad_agent_specs_say_what_is_wrong(agents_module: str, spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_agents(spec.format(m=agents_module))


def test_build_combines_builtins_loaded_agents_keys_and_limits(
    agents_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_API_KEYS", "sk-env")
    args = parse(
        "--agents",
        f"{agents_module}:several",
        "--api-key",
        "sk-flag",
        "--max-concurrency",
        "3",
        "--max-body-bytes",
        "1MiB",
        "--served-model-name",
        "m",
    )
    agents, config = build(args)
    assert [a.name for a in agents] == ["calculator", "two", "three"]
    assert len(config.keys) == 2 and config.keys.check("Bearer sk-env") is not None
    assert (config.max_concurrency, config.max_body_bytes, config.model_name) == (3, 2**20, "m")
    assert args.host == "127.0.0.1"


def test_engine_flags_are_the_shared_ones() -> None:
    from agentrt.cli._engine_options import engine_options

    opts = engine_options(parse("--kv-cache-mib", "96", "--max-model-len", "2048", "--no-hints"))
    assert (opts.kv_cache_bytes, opts.max_model_len, opts.cache_hints) == (96 * 2**20, 2048, False)
    assert parse("--engine", "http://h:1").engine == "http://h:1"


def test_defaults_and_no_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTRT_API_KEYS", raising=False)
    agents, config = build(parse("--builtin-agents", ""))
    assert agents == [] and not config.keys.enabled
    with pytest.raises(ValueError, match="unknown agent 'nope'"):
        build(parse("--builtin-agents", "nope"))


def test_main_refuses_bad_arguments_before_starting_any_engine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(parse("--agents", "nowhere_such_module:x", "--log-level", "error")) == 2
    assert "nowhere_such_module" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "value"), [("1024", 1024), ("4MiB", 4 * 2**20), ("2kb", 2000), ("1.5GiB", 3 * 2**29)]
)
def test_sizes_parse_with_units(text: str, value: int) -> None:
    assert parse_bytes(text) == value


def test_a_bad_size_is_an_argument_error() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        parse_bytes("lots")


def test_chat_codesign_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTRT_API_KEYS", raising=False)
    _, on = build(parse())
    assert (on.session_reuse, on.chat_sessions, on.chat_split_prefill) == (True, True, True)
    _, off = build(
        parse(
            "--no-session-reuse",
            "--no-chat-sessions",
            "--no-chat-split-prefill",
            "--chat-session-idle",
            "30",
        )
    )
    assert (off.session_reuse, off.chat_sessions, off.chat_split_prefill) == (False, False, False)
    assert off.chat_session_idle_s == 30.0
