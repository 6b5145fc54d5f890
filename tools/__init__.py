"""agentrt.tools — the tool type, built-in tools and MCP tool servers."""

from __future__ import annotations

from ._arguments import InvalidArguments, ValidArguments
from ._calculator import calculator
from ._files import FileLimits, file_tools
from ._http import http_get_tool
from ._latency import LatencyTracker
from ._limits import ProcessLimits
from ._mcp import MCPConnectionError, mcp_http_tools, mcp_stdio_tools
from ._python import python_tool
from ._shell import shell_tool
from ._shell_options import ProgramOptions
from ._tool import Tool, ToolFailure, result_text, schema_from_function, tool
from ._units import convert_units
from ._workspace import Workspace

__all__ = [
    "FileLimits",
    "InvalidArguments",
    "LatencyTracker",
    "MCPConnectionError",
    "ProcessLimits",
    "ProgramOptions",
    "Tool",
    "ToolFailure",
    "ValidArguments",
    "Workspace",
    "calculator",
    "convert_units",
    "file_tools",
    "http_get_tool",
    "mcp_http_tools",
    "mcp_stdio_tools",
    "python_tool",
    "result_text",
    "schema_from_function",
    "shell_tool",
    "tool",
]
