"""Reporting ``agentrt bench server`` results: the table, the overheads, the bar chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentrt.bench._output import markdown_table


@dataclass(frozen=True, slots=True)
class Result:
    """One engine x mode: throughput of concurrent streams, latency of one stream at a time."""

    engine: str
    mode: str  # "in-process" or "server"
    requests: int
    concurrency: int
    max_tokens: int
    rps: float
    tokens_per_s: float
    ttft_ms: float
    itl_us: float


def overheads(results: Sequence[Result]) -> dict[str, dict[str, float]]:
    """Per engine: server minus in-process (µs per token, ms TTFT) and the requests/s ratio."""
    by = {(r.engine, r.mode): r for r in results}
    out = {}
    for engine in dict.fromkeys(r.engine for r in results):
        s, p = by.get((engine, "server")), by.get((engine, "in-process"))
        if s and p:
            out[engine] = {
                "per_token_us": s.itl_us - p.itl_us,
                "ttft_ms": s.ttft_ms - p.ttft_ms,
                "rps_ratio": s.rps / p.rps,
            }
    return out


def table(results: Sequence[Result]) -> str:
    """A Markdown table of the results, then one line per engine with the server's overhead."""
    rows = [
        [
            r.engine,
            r.mode,
            r.requests,
            r.concurrency,
            f"{r.rps:.1f}",
            f"{r.tokens_per_s:.0f}",
            f"{r.ttft_ms:.2f}",
            f"{r.itl_us:.1f}",
        ]
        for r in results
    ]
    headers = ["engine", "mode", "req", "conc", "req/s", "tok/s", "TTFT ms", "µs/token"]
    lines = [markdown_table(headers, rows), ""]
    for engine, over in overheads(results).items():
        lines.append(
            f"- {engine}: server overhead {over['per_token_us']:+.1f} µs/token, "
            f"{over['ttft_ms']:+.2f} ms TTFT, requests/s x{over['rps_ratio']:.2f}"
        )
    return "\n".join(lines)


def plot(results: Sequence[Result], path: Path) -> None:
    """Per engine, in-process beside server: µs per streamed token, and requests/s (log
    scales: engines differ by orders of magnitude); the overhead is written on each pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = list(dict.fromkeys(r.engine for r in results))
    over = overheads(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    panels = (("itl_us", "µs per streamed token (one stream)"), ("rps", "requests/s (concurrent)"))
    for ax, (field, label) in zip(axes, panels, strict=True):
        for k, mode in enumerate(("in-process", "server")):
            vals = [
                next((getattr(r, field) for r in results if r.engine == e and r.mode == mode), 0.0)
                for e in engines
            ]
            xs = [i + (k - 0.5) * width for i in range(len(engines))]
            ax.bar(xs, vals, width, label=mode)
        ax.set_xticks(range(len(engines)), engines)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.legend()
    for i, e in enumerate(engines):
        if e in over:
            axes[0].annotate(
                f"{over[e]['per_token_us']:+.0f} µs",
                (i, 1),
                xycoords=("data", "axes fraction"),
                xytext=(0, -14),
                textcoords="offset points",
                ha="center",
                fontsize=9,
            )
    fig.suptitle("agentrt REST server vs in-process engine calls (same requests)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
