"""agentrt — an agent runtime whose orchestrator and LLM engine are designed together."""

from __future__ import annotations

__all__: list[str] = []
