"""A small MCP server for the tests: run as a script it serves over stdio.

Tools: ``add`` (read-only), ``echo``, ``fail`` (an MCP error result), ``pid`` (the
server's process id), ``slow`` (sleeps), ``crash`` (the server process exits mid-call).
``build_server()`` is also used in-process for the streamable-HTTP test.
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def build_server() -> MCPServer:
    """The fixture server with its tools registered."""
    server = MCPServer("fixture")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Answer the text unchanged."""
        return text

    @server.tool()
    def fail(message: str) -> str:
        """Always fail with the given message."""
        raise ToolError(message)

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    def slow(seconds: float) -> str:
        """Sleep, then answer."""
        time.sleep(seconds)
        return "done"

    @server.tool()
    def crash() -> str:
        """Exit the server process in the middle of the call."""
        print("fixture: crashing on purpose", file=sys.stderr, flush=True)
        os._exit(3)

    return server


if __name__ == "__main__":
    build_server().run("stdio")
