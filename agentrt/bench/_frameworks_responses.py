"""The frameworks bench's Responses row: the Agents SDK's default model, server-side tools.

The same agent as the chat-completions rows (same instructions, questions, temperature 0,
``tool_choice="required"``, a calculator that takes ``TOOL_S``), but on the SDK's default
model class (``OpenAIResponsesModel``) with the calculator as a hosted MCP tool that
``agentrt serve`` runs itself (``--mcp bench_calculator=python -m agentrt.bench._calc_mcp``). The
whole tool loop is one response: the server dispatches the call while decoding, prefills
the continuation while the tool runs, and streams the final answer.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from ._servers import SERVED_NAME

RESPONSES_SERVER = "agentrt-responses"
"""The ``--servers`` name of this row."""

LABEL = "bench_calculator"
"""The MCP server's label (its one tool is ``calculator``, as the client-side one; the label
differs from the default built-in ``calculator`` group, which stays configured)."""


def responses_serve_flags() -> list[str]:
    """``agentrt serve`` flags that start the bench's calculator as a server-side MCP tool."""
    command = shlex.join([sys.executable, "-m", "agentrt.bench._calc_mcp"])
    return ["--mcp", f"{LABEL}={command}"]


def responses_agent(client: Any, instructions: str) -> Any:
    """The Agents SDK agent on its default model class (on ``client``, an ``AsyncOpenAI``),
    the calculator hosted by the server."""
    from agents import (
        Agent,
        HostedMCPTool,
        ModelSettings,
        OpenAIResponsesModel,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)  # the SDK would export traces to OpenAI's servers
    hosted = HostedMCPTool(
        tool_config={"type": "mcp", "server_label": LABEL, "require_approval": "never"}
    )
    return Agent(
        name="calculator",
        instructions=instructions,
        tools=[hosted],
        model=OpenAIResponsesModel(model=SERVED_NAME, openai_client=client),
        model_settings=ModelSettings(temperature=0, tool_choice="required", max_tokens=256),
    )


def is_tool_done(event: Any) -> bool:
    """A raw Responses event that ends a tool call: a server-side ``mcp_call`` item done."""
    if getattr(event, "type", "") != "response.output_item.done":
        return False
    return getattr(getattr(event, "item", None), "type", "") in ("mcp_call", "function_call")
