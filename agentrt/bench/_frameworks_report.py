"""The frameworks bench's summary over repeats: pooled medians, each repeat's median, the
ratio to vLLM's server at the same concurrency, the table and the plot.

A repeat is one phase of ``runs`` agent runs (after its own warm-up) on the same server
process. The headline median pools every run of every repeat; each repeat's own median is
kept beside it so the spread between repeats is visible (the noise the ratio must beat).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._output import bar_chart, markdown_table

REFERENCE = "vllm"
"""The server every ratio is taken against."""


@dataclass(frozen=True, slots=True)
class RunSample:
    """One agent run: times from its start, and what each of its responses cost."""

    ftr_s: float | None
    e2e_s: float
    prompt_tokens: int
    cached_tokens: int
    call_outputs: tuple[int, ...]  # output tokens of each response that called tools
    final_outputs: tuple[int, ...]  # output tokens of each response that did not
    calls_per_response: tuple[int, ...]
    repeats: int


def _q(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10)[int(p * 10) - 1]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    samples: Sequence[RunSample], per_repeat: Sequence[Sequence[RunSample]] = ()
) -> dict[str, Any]:
    """Medians, p90s and per-response means of ``samples`` (every repeat pooled), with
    the FTR median of each repeat in ``per_repeat`` (in order) beside them."""
    ftr = [s.ftr_s for s in samples if s.ftr_s is not None]
    e2e = [s.e2e_s for s in samples]
    calls = [n for s in samples for n in s.call_outputs]
    finals = [n for s in samples for n in s.final_outputs]
    per = [n for s in samples for n in s.calls_per_response]
    return {
        "runs": len(samples),
        "ftr_median_s": _median(ftr),
        "ftr_p90_s": _q(ftr, 0.9),
        "ftr_median_per_repeat_s": [
            _median([s.ftr_s for s in rep if s.ftr_s is not None]) for rep in per_repeat
        ],
        "e2e_median_s": statistics.median(e2e),
        "e2e_p90_s": _q(e2e, 0.9),
        "out_tokens_per_tool_response": statistics.fmean(calls) if calls else None,
        "out_tokens_per_final_response": statistics.fmean(finals) if finals else None,
        "calls_per_tool_response": statistics.fmean(per) if per else None,
        "repeated_calls": sum(s.repeats for s in samples),
        "prompt_tokens_per_run": statistics.fmean(s.prompt_tokens for s in samples),
        "cached_tokens_per_run": statistics.fmean(s.cached_tokens for s in samples),
    }


def add_ratios(results: Mapping[str, dict[str, Any]]) -> None:
    """Give every row the ratio of its FTR median and output tokens per tool response to
    vLLM's server's row at the same concurrency (``None`` without that row)."""
    for key, row in results.items():
        _, _, conc = key.rpartition("@")
        ref = results.get(f"{REFERENCE}@{conc}")
        for field, name in (
            ("ftr_median_s", "ftr_vs_vllm"),
            ("out_tokens_per_tool_response", "out_tokens_vs_vllm"),
        ):
            mine, theirs = row.get(field), ref.get(field) if ref else None
            row[name] = mine / theirs if mine is not None and theirs else None


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The Markdown table the bench prints and the results page quotes."""
    headers = [
        "server@concurrency",
        "runs",
        "FTR p50 s",
        "FTR p50 per repeat s",
        "FTR vs vLLM",
        "FTR p90 s",
        "E2E p50 s",
        "out tok/tool resp",
        "out tok vs vLLM",
        "calls/tool resp",
        "repeats",
        "out tok/final resp",
        "prompt tok/run",
        "cached tok/run",
    ]
    rows = [
        [
            key,
            r["runs"],
            _f(r["ftr_median_s"]),
            " ".join(_f(v, 2) for v in r["ftr_median_per_repeat_s"]) or "-",
            _f(r.get("ftr_vs_vllm"), 2),
            _f(r["ftr_p90_s"]),
            _f(r["e2e_median_s"]),
            _f(r["out_tokens_per_tool_response"], 1),
            _f(r.get("out_tokens_vs_vllm"), 2),
            _f(r["calls_per_tool_response"], 2),
            r["repeated_calls"],
            _f(r["out_tokens_per_final_response"], 1),
            _f(r["prompt_tokens_per_run"], 0),
            _f(r["cached_tokens_per_run"], 0),
        ]
        for key, r in results.items()
    ]
    return markdown_table(headers, rows)


def plot(path: Path, results: Mapping[str, Mapping[str, Any]]) -> None:
    """Median FTR per server, one group per concurrency."""
    concs = sorted({k.rpartition("@")[2] for k in results}, key=int)
    servers = list(dict.fromkeys(k.rpartition("@")[0] for k in results))
    series = {
        s: [float(results.get(f"{s}@{c}", {}).get("ftr_median_s") or 0.0) for c in concs]
        for s in servers
    }
    bar_chart(
        path,
        "OpenAI Agents SDK agent: median FTR (all repeats pooled)",
        [f"concurrency {c}" for c in concs],
        series,
        "FTR p50 (s)",
    )
