"""The frameworks bench's server-side calculator: an MCP stdio server (``python -m ...``).

It answers like the bench's client-side calculator and takes as long (``TOOL_S``), so the
Responses rows (the tool runs inside ``agentrt serve``) and the chat-completions rows (the
client runs it) compare the same work. Started by ``agentrt serve --mcp bench_calculator=...``.
"""

from __future__ import annotations

import asyncio

TOOL_S = 0.5
"""Seconds every call takes: the bench's tool latency, the same on both sides."""


def build_server() -> object:
    """The MCP server with its one tool, ``calculator(expression)``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from agentrt.tools import ToolFailure
    from agentrt.tools._calculator import evaluate, format_number

    server = MCPServer("bench-calculator")

    @server.tool()
    async def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression, e.g. "2 * (3 + 4)"."""
        await asyncio.sleep(TOOL_S)
        try:
            return format_number(evaluate(expression))
        except (ToolFailure, ValueError) as exc:
            raise ToolError(str(exc)) from exc

    return server


if __name__ == "__main__":
    build_server().run("stdio")  # type: ignore[attr-defined]
