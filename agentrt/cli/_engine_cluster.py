"""``agentrt engine cluster``: N local ``agentrt engine serve`` replicas behind vllm-router.

For tests and laptops: every process listens on loopback, replicas on the ports after the
router's. A real deployment runs the replicas and the router as separate services
(docs/SCALING.md); the commands here are what it runs, one process each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import httpx

SESSION_POLICIES = ("consistent_hash", "sticky_least_loaded")
"""vllm-router policies that keep a session on one replica (they key on ``X-Session-Id``)."""

POLICIES = (*SESSION_POLICIES, "cache_aware", "round_robin", "power_of_two", "random")


def router_argv(workers: Sequence[str], *, port: int, policy: str, metrics_port: int) -> list[str]:
    """The command that runs vllm-router on loopback over ``workers``, its Prometheus
    metrics on ``metrics_port`` (the router's own default, 29000, would clash between two
    routers on one machine).

    Dead replicas are noticed within seconds (health checks every 2 s), so new sessions
    move to the live ones; the router's own retries stay on (they only resend a request
    that never reached a replica).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    return [
        sys.executable, "-m", "vllm_router.launch_router",
        "--host", "127.0.0.1", "--port", str(port), "--policy", policy,
        "--worker-urls", *workers, "--prometheus-port", str(metrics_port),
        "--health-check-interval-secs", "2", "--health-failure-threshold", "1",
        "--log-level", "warning",
    ]  # fmt: skip


def replica_argv(port: int, serve_args: Sequence[str]) -> list[str]:
    """The command that runs one ``agentrt engine serve`` replica on loopback."""
    return [sys.executable, "-m", "agentrt", "engine", "serve", "--port", str(port), *serve_args]


@dataclass(frozen=True)
class Cluster:
    """Running replicas and their router.

    Invariant: ``replicas[i]`` serves ``replica_urls[i]``; ``url`` is the router's.
    """

    url: str
    replica_urls: tuple[str, ...]
    router: subprocess.Popen[bytes]
    replicas: tuple[subprocess.Popen[bytes], ...]

    def exited(self) -> list[str]:
        """What has exited, as ``"<url> (code n)"``; empty while everything runs."""
        procs = ((self.url, self.router), *zip(self.replica_urls, self.replicas, strict=True))
        return [f"{url} (code {p.returncode})" for url, p in procs if p.poll() is not None]


@contextmanager
def process(
    argv: list[str], log: str | None = None, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` in its own session (so a terminal's Ctrl-C reaches only us, and we stop
    it once); on leaving, SIGTERM, then SIGKILL after 60 s."""
    with ExitStack() as stack:
        out = stack.enter_context(open(log, "ab")) if log else subprocess.DEVNULL
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else {**os.environ, **env},
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float) -> None:
    """Poll ``url``/health until it answers 200 (a server offers no other ready signal).

    Raises:
        RuntimeError: the process exited first, or it was not ready within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} was not ready in {timeout_s:g} s")
        time.sleep(0.3)


@contextmanager
def cluster(
    replicas: int,
    *,
    port: int,
    policy: str,
    serve_args: Sequence[str] = (),
    log_dir: str | None = None,
    ready_timeout_s: float = 600.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """Start ``replicas`` engine servers on ``port+1...`` and the router on ``port`` (its
    metrics on the port after the last replica's); yield
    once the router answers; stop everything on leaving (router first). ``env`` adds to
    the replicas' environment.

    Raises:
        ValueError: fewer than one replica, or an unknown policy.
        RuntimeError: a process exited during start-up or was not ready in time.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    urls = tuple(f"http://127.0.0.1:{port + 1 + i}" for i in range(replicas))
    router_cmd = router_argv(urls, port=port, policy=policy, metrics_port=port + replicas + 1)

    def log(name: str) -> str | None:
        return os.path.join(log_dir, f"{name}.log") if log_dir else None

    with ExitStack() as stack:
        procs = tuple(
            stack.enter_context(
                process(replica_argv(port + 1 + i, serve_args), log(f"replica{i}"), env)
            )
            for i in range(replicas)
        )
        for proc, url in zip(procs, urls, strict=True):
            wait_ready(proc, url, ready_timeout_s)
        router = stack.enter_context(process(router_cmd, log("router")))
        wait_ready(router, f"http://127.0.0.1:{port}", 60)
        yield Cluster(f"http://127.0.0.1:{port}", urls, router, procs)


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replicas", type=int, default=2, help="engine servers to start")
    p.add_argument(
        "--port", type=int, default=8100, help="the router's; replicas, then its metrics follow"
    )
    p.add_argument("--policy", choices=POLICIES, default="consistent_hash")
    p.add_argument("--log-dir", default=None, help="write each process's output here")
    p.add_argument(
        "serve_args",
        nargs=argparse.REMAINDER,
        help="after --: flags for every replica's `agentrt engine serve`",
    )


def main(args: argparse.Namespace) -> int:
    serve_args = [a for a in args.serve_args if a != "--"]
    try:
        with cluster(
            args.replicas,
            port=args.port,
            policy=args.policy,
            serve_args=serve_args,
            log_dir=args.log_dir,
        ) as c:
            print(f"router {c.url} ({args.policy}) over {' '.join(c.replica_urls)}", flush=True)
            while not (gone := c.exited()):
                time.sleep(0.5)
            print(f"agentrt engine cluster: exited: {', '.join(gone)}", file=sys.stderr)
            return 1
    except (ValueError, RuntimeError) as exc:
        print(f"agentrt engine cluster: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
