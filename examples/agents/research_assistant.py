"""A parallel multi-tool agent: looks facts up for several cities at once, then computes.

The fact lookup behaves like a remote API (a few hundred milliseconds per call), so the
runtime's streaming dispatch shows: each lookup starts the moment its call is written,
while the model is still writing the next one.

Run: python examples/agents/research_assistant.py ["Compare the populations of Paris and Lyon."]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import _common  # noqa: F401  (quiet engine logs; must come first)
import anyio
from _common import report

from agentrt import Agent, SamplingOptions, ToolFailure, tool
from agentrt.tools import calculator

CITIES = json.loads((Path(__file__).parent.parent / "data" / "cities.json").read_text())


@tool(expected_latency_s=0.4, side_effect_free=True)
async def city_facts(
    city: str, fact: Literal["population", "area_km2", "country", "founded"]
) -> str:
    """Look up one fact about a city in the city database (a slow remote service).

    Args:
        city: the city's name, e.g. "Paris"
        fact: which fact to return
    """
    await anyio.sleep(0.4)  # the service's round trip
    entry = CITIES.get(city.strip().lower())
    if entry is None:
        raise ToolFailure(f"unknown city {city!r}; known: {', '.join(sorted(CITIES))}")
    return f"{city.title()} {fact}: {entry[fact]}"


QUESTION = "Compare the populations of Paris and Lyon."

agent = Agent(
    name="research",
    instructions=(
        "You research facts about cities. Call city_facts once for every city and fact the "
        "question needs (several calls at once are fine), use the calculator for arithmetic, "
        "then answer in one or two sentences."
    ),
    tools=[city_facts, calculator],
    tool_choice="required",
    max_iterations=3,
    sampling=SamplingOptions(max_tokens=96),
)

if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or QUESTION
    report(question, agent.run_sync(question))
