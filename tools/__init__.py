"""agentrt.tools — the tool type, built-in tools and MCP tool servers."""

from __future__ import annotations

__all__: list[str] = []
