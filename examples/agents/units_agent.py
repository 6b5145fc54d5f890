"""A calculator and unit-conversion agent on the embedded default model.

Run: python examples/agents/units_agent.py ["How many miles is 42 km?"]
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (quiet engine logs; must come first)
from _common import report

from agentrt import Agent, SamplingOptions
from agentrt.tools import calculator

QUESTION = "How many miles is 42 km?"

agent = Agent(
    name="units",
    instructions=(
        "You answer arithmetic and unit-conversion questions. Always call the calculator "
        "with an expression such as '42 km in mi' or '12 * 7', then answer in one sentence "
        "using its result."
    ),
    tools=[calculator],
    tool_choice="calculator",  # the first response must call it (grammar-constrained)
    # One conversion, one call: the grammar ends the response after it. (With several
    # allowed, the default model in bf16 starts a second, identical call and runs out of
    # tokens inside it.)
    parallel_tool_calls=False,
    max_iterations=2,
    sampling=SamplingOptions(max_tokens=64),
)

if __name__ == "__main__":  # vLLM starts its engine core in a spawned process
    question = " ".join(sys.argv[1:]) or QUESTION
    report(question, agent.run_sync(question))
