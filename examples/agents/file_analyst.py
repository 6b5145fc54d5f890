"""A file-analysis agent confined to one folder: lists, searches and reads files there.

Run: python examples/agents/file_analyst.py [FOLDER] ["What is still to do in this project?"]
"""

from __future__ import annotations

import sys
from pathlib import Path

import _common  # noqa: F401  (quiet engine logs; must come first)
from _common import report

from agentrt import Agent, SamplingOptions
from agentrt.tools import file_tools

DEFAULT_FOLDER = Path(__file__).parent.parent / "data" / "project"

QUESTION = "Which files mention eviction?"


def make_agent(folder: Path) -> Agent:
    return Agent(
        name="files",
        instructions=(
            "You answer questions about the files in a project folder. Search the files for "
            "the words that matter, read what you find, then answer briefly and name the files."
        ),
        tools=file_tools(folder),
        tool_choice="search_files",
        max_iterations=3,
        sampling=SamplingOptions(max_tokens=96),
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    folder = Path(args.pop(0)) if args and Path(args[0]).is_dir() else DEFAULT_FOLDER
    question = " ".join(args) or QUESTION
    report(question, make_agent(folder).run_sync(question))
