"""The ``agentrt`` command line: sub-commands resolve lazily and their help shows defaults."""

from __future__ import annotations

import signal

import pytest

from agentrt import cli


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    top = help_text(capsys)
    for name in cli.COMMANDS:
        assert name in top


def test_benchmark_options_show_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "bench", "agents")
    assert "--runs RUNS agent runs per mode and concurrency (default: 8)" in text
    assert "--tool-latency-s TOOL_LATENCY_S (default: 0.5)" in text


def test_a_help_that_names_its_default_is_not_given_a_second(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_text(capsys, "serve")
    assert text.count("(default: 127.0.0.1)") == 1


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["frobnicate"])
    assert stop.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_call_from_python_leaves_signal_handling_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["bench", "agents", "--modes", "nonsense"]) == 2
    assert signal.getsignal(signal.SIGTERM) is before
