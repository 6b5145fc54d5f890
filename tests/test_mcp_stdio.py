"""MCP tool servers over stdio: listing, calls, error results, and a server dying mid-call.

The server is ``tests/mcp_server_fixture.py`` (built on the ``mcp`` package); it is
started once for the module, except where a test needs to kill its own server.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from process_helpers import running

from agentrt.tools import MCPConnectionError, Tool, ToolFailure, mcp_stdio_tools

pytest.importorskip("mcp")

FIXTURE = str(Path(__file__).with_name("mcp_server_fixture.py"))


@pytest.fixture(scope="module")
async def fixture_tools() -> AsyncIterator[dict[str, Tool]]:
    async with mcp_stdio_tools(
        sys.executable, [FIXTURE], timeout_s=5.0, max_result_bytes=1_000
    ) as tools:
        yield {t.name: t for t in tools}


@pytest.mark.anyio
async def test_tools_are_listed_with_the_servers_schemas(fixture_tools: dict[str, Tool]) -> None:
    assert list(fixture_tools) == ["add", "echo", "fail", "pid", "slow", "crash"]
    add = fixture_tools["add"]
    assert add.description == "Add two integers."
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.metadata["mcp_tool"] == "add"
    assert add.timeout_s == 5.0


@pytest.mark.anyio
async def test_read_only_hint_marks_a_tool_side_effect_free(fixture_tools: dict[str, Tool]) -> None:
    assert fixture_tools["add"].side_effect_free
    assert not fixture_tools["echo"].side_effect_free


@pytest.mark.anyio
async def test_a_call_through_the_tool_reaches_the_server(fixture_tools: dict[str, Tool]) -> None:
    assert await fixture_tools["add"].invoke({"a": 2, "b": 40}) == "42"
    assert await fixture_tools["echo"].invoke({"text": "héllo\nworld"}) == "héllo\nworld"


@pytest.mark.anyio
async def test_a_long_result_is_truncated_with_a_marker(fixture_tools: dict[str, Tool]) -> None:
    text = await fixture_tools["echo"].invoke({"text": "a" * 3_000 + "END"})
    assert text == "a" * 667 + "\n[... 2,003 bytes truncated ...]\n" + "a" * 330 + "END"


@pytest.mark.anyio
async def test_calls_run_concurrently_on_one_server(fixture_tools: dict[str, Tool]) -> None:
    results: list[str] = []

    async def add(a: int) -> None:
        results.append(await fixture_tools["add"].invoke({"a": a, "b": 1}))

    async with anyio.create_task_group() as tg:
        for a in range(5):
            tg.start_soon(add, a)
    assert sorted(results) == ["1", "2", "3", "4", "5"]


@pytest.mark.anyio
async def test_an_mcp_error_result_becomes_a_tool_failure(fixture_tools: dict[str, Tool]) -> None:
    with pytest.raises(ToolFailure, match="disk is full"):
        await fixture_tools["fail"].invoke({"message": "disk is full"})
    # The server is still usable afterwards.
    assert await fixture_tools["add"].invoke({"a": 1, "b": 1}) == "2"


@pytest.mark.anyio
async def test_a_server_dying_mid_call_raises_quickly_and_the_server_is_gone() -> None:
    async with mcp_stdio_tools(sys.executable, [FIXTURE], timeout_s=30.0) as tools:
        by_name = {t.name: t for t in tools}
        pid = int(await by_name["pid"].invoke({}))
        started = anyio.current_time()
        with pytest.raises(MCPConnectionError, match="closed the connection during 'crash'") as err:
            await by_name["crash"].invoke({})
        # The closing pipe fails the pending call at once; no timeout is involved.
        assert anyio.current_time() - started < 2.0
        assert "crashing on purpose" in str(err.value)  # the server's stderr explains it
        with pytest.raises(MCPConnectionError):
            await by_name["add"].invoke({"a": 1, "b": 1})
    assert not running(pid)
    with pytest.raises(MCPConnectionError, match="no longer mounted"):
        await by_name["add"].invoke({"a": 1, "b": 1})


@pytest.mark.anyio
async def test_a_prefixed_mount_is_stopped_when_the_block_ends() -> None:
    async with mcp_stdio_tools(sys.executable, [FIXTURE], name_prefix="calc.") as tools:
        by_name = {t.name: t for t in tools}
        assert list(by_name)[:2] == ["calc.add", "calc.echo"]
        assert by_name["calc.add"].metadata["mcp_tool"] == "add"
        pid = int(await by_name["calc.pid"].invoke({}))
        assert running(pid)
    assert not running(pid)


@pytest.mark.anyio
async def test_a_slow_call_is_cut_at_the_tool_timeout() -> None:
    async with mcp_stdio_tools(sys.executable, [FIXTURE], timeout_s=0.2) as tools:
        slow = {t.name: t for t in tools}["slow"]
        with pytest.raises(ToolFailure, match=r"no answer from the MCP server within 0\.2 s"):
            await slow.invoke({"seconds": 0.8})


@pytest.mark.anyio
async def test_a_missing_server_program_is_reported() -> None:
    with pytest.raises(MCPConnectionError, match="could not be started"):
        async with mcp_stdio_tools("/nonexistent/mcp-server"):
            pass


@pytest.mark.anyio
async def test_a_server_that_exits_at_start_is_reported_with_its_stderr() -> None:
    code = "import sys; print('missing API key', file=sys.stderr); sys.exit(1)"
    with pytest.raises(MCPConnectionError, match="did not complete the handshake") as caught:
        async with mcp_stdio_tools(sys.executable, ["-c", code]):
            pass
    assert "missing API key" in str(caught.value)
