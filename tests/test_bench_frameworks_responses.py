"""The frameworks bench's Responses row: its server-side calculator and its serve flags.

The row's fairness rests on the hosted calculator answering like the client-side one and
taking as long; both are checked on the real MCP server process the bench starts.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import pytest

from agentrt.bench._calc_mcp import TOOL_S
from agentrt.bench._frameworks import _calculator, calculate
from agentrt.bench._frameworks_responses import LABEL, is_tool_done, responses_serve_flags
from agentrt.server._cli import add_arguments, build
from agentrt.server._responses_tools import McpServerSpec
from agentrt.tools import mcp_stdio_tools

pytest.importorskip("mcp")
pytest.importorskip("agents")


def test_agentrt_serve_accepts_the_flags_beside_its_default_built_ins() -> None:
    flag, spec = responses_serve_flags()
    parsed = McpServerSpec.parse(spec)
    assert flag == "--mcp" and parsed.label == LABEL
    assert parsed.args == ("-m", "agentrt.bench._calc_mcp")
    p = argparse.ArgumentParser()
    add_arguments(p)
    _, config = build(p.parse_args(["--builtin-agents", "", *responses_serve_flags()]))
    assert [m.label for m in config.mcp_servers] == [LABEL]


@pytest.mark.anyio
async def test_the_hosted_calculator_answers_like_the_client_one_and_takes_as_long() -> None:
    _, spec = responses_serve_flags()
    parsed = McpServerSpec.parse(spec)
    async with mcp_stdio_tools(parsed.command, parsed.args) as tools:
        assert [t.name for t in tools] == [_calculator().name]
        t0 = time.perf_counter()
        hosted = await tools[0].invoke({"expression": "17 * 23 - 5"})
        elapsed = time.perf_counter() - t0
    client = await calculate("17 * 23 - 5")
    assert hosted == client == "386"
    assert elapsed >= TOOL_S


def test_the_client_side_tool_has_the_hosted_tools_name() -> None:
    assert _calculator().name == "calculator"


def test_only_a_finished_server_side_call_counts_as_a_tool_event() -> None:
    done = "response.output_item.done"
    assert is_tool_done(SimpleNamespace(type=done, item=SimpleNamespace(type="mcp_call")))
    assert not is_tool_done(SimpleNamespace(type=done, item=SimpleNamespace(type="message")))
    assert not is_tool_done(SimpleNamespace(type="response.output_text.delta"))
