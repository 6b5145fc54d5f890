"""Shared by the example agents: print an answer and where the time went."""

from __future__ import annotations

import os

# The examples print their own report; keep vLLM's start-up chatter to warnings.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from agentrt import RunResult


def report(question: str, result: RunResult) -> None:
    """Print the question, every tool call, the answer and a timing breakdown."""
    print(f"Q: {question}")
    for span in result.tool_spans:
        print(
            f"  tool {span.name}: {span.result.content[:120]!r} ({span.duration_s * 1000:.0f} ms)"
        )
    print(f"A: {result.final_text.strip() or '(no answer)'}")
    print(f"[{result.status}] {result.timing_line()}")
    for it in result.iterations:
        ttft = f"{it.ttft_s:.2f}s" if it.ttft_s is not None else "n/a"
        print(
            f"  call {it.index}: {it.prompt_tokens} prompt tokens ({it.cached_tokens} cached), "
            f"{it.output_tokens} generated, TTFT {ttft}, overlap {it.tool_overlap_s:.2f}s"
        )
