"""A server-side agent run on the real embedded engine, end to end over REST."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from agentrt.engine import Engine
from agentrt.server import calculator_agent, create_app, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.engine]


@pytest.fixture(scope="module")
async def base_url(vllm_engine: Engine) -> AsyncIterator[str]:
    app = create_app(vllm_engine, agents=[calculator_agent(max_tokens=48, max_iterations=2)])
    async with running_server(app) as url:
        yield url


async def test_calculator_run_streams_its_events_and_result(base_url: str) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as c:
        async with c.stream(
            "POST", "/v1/agents/calculator/runs", json={"input": "What is 12 * 7?", "stream": True}
        ) as r:
            assert r.status_code == 200
            run_id = r.headers["x-agentrt-run-id"]
            name = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
        run = (await c.get(f"/v1/runs/{run_id}")).json()

    kinds = [k for k, _ in events if k != "token"]
    assert kinds[0] == "run_started" and kinds[-1] == "done"
    assert kinds.index("tool_call") < kinds.index("tool_started") < kinds.index("tool_finished")
    call = next(d for k, d in events if k == "tool_call")
    assert call["name"] == "calculator"
    finished = next(d for k, d in events if k == "tool_finished")
    assert finished["result"]["kind"] in ("ok", "error")  # type: ignore[index]
    assert any(k == "token" for k, _ in events)
    # A call the tiny model opens and max_tokens cuts ends the run with an error naming
    # max_tokens (issue 20); anything else is a failure.
    assert run["status"] == "completed" or (
        run["status"] == "error" and "reached max_tokens" in json.dumps(run)
    ), run
    roles = [m["role"] for m in run["result"]["messages"]]
    # One tool message per call (the model may call the calculator more than once).
    n_calls = sum(1 for k, _ in events if k == "tool_call")
    # A response cut inside a call is not logged as a message; a final answer is.
    answer = ["assistant"] if run["status"] == "completed" else []
    assert roles == ["system", "user", "assistant", *["tool"] * n_calls, *answer]
    iterations = run["result"]["iterations"]
    if run["status"] == "completed":  # a cut response ends the run before its record
        assert iterations[1]["cached_tokens"] > 0  # iteration 2 reused iteration 1's log
