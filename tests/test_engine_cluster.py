"""`agentrt engine cluster` without a model: the router's command, bad arguments, and a
replica that cannot start (a clear error, nothing left running)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentrt.cli._engine_cluster import POLICIES, cluster, replica_argv, router_argv


def test_the_router_command_names_every_replica_and_the_policy() -> None:
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    argv = router_argv(urls, port=9, policy="round_robin", metrics_port=10)
    assert argv[:3] == [sys.executable, "-m", "vllm_router.launch_router"]
    i = argv.index("--worker-urls")
    assert argv[i + 1 : i + 3] == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert argv[argv.index("--policy") + 1] == "round_robin"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--prometheus-port") + 1] == "10"  # not 29000, shared by all


def test_every_policy_offered_is_one_vllm_router_accepts() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "vllm_router.launch_router", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for policy in POLICIES:
        assert policy in help_text


def test_an_unknown_policy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"policy must be one of .* got 'sticky'"):
        router_argv(["http://127.0.0.1:1"], port=9, policy="sticky", metrics_port=10)


def test_a_cluster_needs_a_replica() -> None:
    with (
        pytest.raises(ValueError, match="replicas must be >= 1"),
        cluster(0, port=9, policy="random"),
    ):
        pass


def test_a_replica_that_cannot_start_is_a_clear_error() -> None:
    # argparse rejects the flag before any engine starts: no model, no lock needed.
    assert replica_argv(5, ["--bogus"])[-3:] == ["--port", "5", "--bogus"]
    with (
        pytest.raises(RuntimeError, match=r"127\.0\.0\.1:\d+: process exited with 2"),
        cluster(1, port=39990, policy="random", serve_args=["--bogus"]),
    ):
        pass


def test_the_command_reports_a_failed_start_and_exits_1() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agentrt", "engine", "cluster", "--replicas", "1",
         "--port", "39980", "--", "--bogus"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "agentrt engine cluster:" in out.stderr and "exited with 2" in out.stderr
