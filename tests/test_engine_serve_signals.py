"""``agentrt engine serve`` stops cleanly on Ctrl-C (SIGINT). SIGTERM is covered by the
session's ``engine_server`` fixture, whose teardown asserts the same."""

from __future__ import annotations

import signal

import httpx
import pytest
from engine_server_helpers import engine_server_process

pytestmark = [pytest.mark.server, pytest.mark.engine]


def test_sigint_stops_the_server_and_every_process_it_started() -> None:
    with engine_server_process(32, 512, stop=signal.SIGINT) as (url, exit_):
        # Ready and serving: a tokenize round trip through vLLM's API server.
        r = httpx.post(f"{url}/tokenize", json={"prompt": "hello"}, timeout=30)
        assert r.status_code == 200 and r.json()["count"] > 0
    # Exits on its own (not killed: that raises), with no process left behind.
    assert exit_.returncode is not None and exit_.returncode >= 0
    assert exit_.leftover == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)
