"""Router policies side by side: one twin replay per policy over the same replicas, loads
and arrivals, compared by KV hit rate (overall and per replica) and median FTR.

Written by ``agentrt replay --engine twin --replicas N --router a,b,c`` beside each
policy's own report: ``routers.json`` (every row), ``routers.md`` (a table per mode) and
``routers.png`` (median FTR and KV hit rate against load, a line per policy). Every
figure is simulated, and the files say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ._intervals import pooled_runs
from ._results import ReplayRun

ROUTERS_SCHEMA = "agentrt-router-comparison/1"
SIMULATED = "simulated (vLLM twin)"


@dataclass(frozen=True, slots=True)
class RouterRow:
    """One (policy, mode, load): requests pooled over repeats; per-replica numbers are
    sums over repeats of what the router model counted (``engine_facts``)."""

    policy: str
    mode: str
    load: float
    done: int
    requests: int
    ftr_p50_s: float | None
    kv_hit: float | None
    kv_max: float | None
    replica_kv_hit: tuple[float | None, ...]
    replica_requests: tuple[int, ...]
    sessions: int
    sessions_split: int


def router_rows(policy: str, runs: Sequence[ReplayRun]) -> list[RouterRow]:
    """The comparison rows of one policy's runs (their ``engine_facts`` from the twin)."""
    rows = []
    for pooled in pooled_runs(runs):
        facts = [
            r.config["engine_facts"]
            for r in runs
            if r.mode == pooled.mode and r.load == pooled.load and "engine_facts" in r.config
        ]
        replicas = len(facts[0]["replicas"]) if facts else 0
        prompt = [sum(f["replicas"][i]["prompt_tokens"] for f in facts) for i in range(replicas)]
        cached = [sum(f["replicas"][i]["cached_tokens"] for f in facts) for i in range(replicas)]
        s = pooled.summary
        rows.append(
            RouterRow(
                policy=policy,
                mode=pooled.mode,
                load=pooled.load,
                done=s.n_requests - s.n_failed,
                requests=s.n_requests,
                ftr_p50_s=s.ftr_p50_s,
                kv_hit=s.hit_rate,
                kv_max=s.max_hit_rate,
                replica_kv_hit=tuple(
                    c / p if p else None for c, p in zip(cached, prompt, strict=True)
                ),
                replica_requests=tuple(
                    sum(f["replicas"][i]["requests"] for f in facts) for i in range(replicas)
                ),
                sessions=sum(int(f["sessions"]) for f in facts),
                sessions_split=sum(int(f["sessions_split"]) for f in facts),
            )
        )
    return rows


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def render_routers(rows: Sequence[RouterRow], *, replicas: int, title: str) -> str:
    """A table per mode: each load, each policy; per-replica columns in replica order."""
    lines = [
        f"# {title}",
        "",
        f"All figures are {SIMULATED}: {replicas} replicas behind a model of vllm-router.",
        "",
    ]
    order = list(dict.fromkeys(r.policy for r in rows))
    for mode in _modes(rows):
        lines += [
            f"## Mode {mode}",
            "",
            "| load (req/s) | router | done | FTR p50 (s) | KV hit | KV max "
            "| KV hit per replica | requests per replica | sessions on >1 replica |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ranked = sorted(
            (r for r in rows if r.mode == mode), key=lambda r: (r.load, order.index(r.policy))
        )
        for r in ranked:
            per = " / ".join("—" if h is None else f"{100 * h:.0f}%" for h in r.replica_kv_hit)
            reqs = " / ".join(str(n) for n in r.replica_requests)
            lines.append(
                f"| {r.load:g} | {r.policy} | {r.done}/{r.requests} | {_s(r.ftr_p50_s)} "
                f"| {_pct(r.kv_hit)} | {_pct(r.kv_max)} | {per} | {reqs} "
                f"| {r.sessions_split}/{r.sessions} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_routers(
    rows: Sequence[RouterRow],
    out_dir: Path,
    *,
    replicas: int,
    title: str,
    config: Mapping[str, Any],
    plots: bool = True,
) -> tuple[Path, ...]:
    """Write ``routers.json``, ``routers.md`` and (``plots``) ``routers.png``; returns them.

    Raises:
        ValueError: no rows.
    """
    if not rows:
        raise ValueError("write_routers needs at least one row")
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": ROUTERS_SCHEMA,
        "simulated": True,
        "title": title,
        "replicas": replicas,
        "config": dict(config),
        "rows": [asdict(r) for r in rows],
    }
    js = out_dir / "routers.json"
    js.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    md = out_dir / "routers.md"
    md.write_text(render_routers(rows, replicas=replicas, title=title))
    files = [js, md]
    if plots:
        files.append(_plot(rows, out_dir / "routers.png", replicas=replicas))
    return tuple(files)


def _plot(rows: Sequence[RouterRow], path: Path, *, replicas: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ftr, hit = fig.subplots(1, 2)
    modes = _modes(rows)
    styles = ["-", "--", ":", "-."]
    for m, mode in enumerate(modes):
        for policy in dict.fromkeys(r.policy for r in rows):
            pts = sorted((r for r in rows if r.mode == mode and r.policy == policy), key=_load)
            label = policy if len(modes) == 1 else f"{policy} ({mode})"
            style = styles[m % len(styles)]
            loads = [r.load for r in pts]
            ftr.plot(loads, [r.ftr_p50_s for r in pts], style, marker="o", label=label)
            hit.plot(loads, [100 * (r.kv_hit or 0.0) for r in pts], style, marker="o", label=label)
    ftr.set(xlabel="agent requests/s", ylabel="median FTR (s)", title="median FTR (simulated)")
    hit.set(xlabel="agent requests/s", ylabel="KV hit rate (%)", title="KV hit rate (simulated)")
    hit.set_ylim(0, 100)
    ftr.legend(fontsize=8)
    fig.suptitle(f"{replicas} replicas behind a model of vllm-router — {SIMULATED}")
    fig.savefig(path, dpi=110)
    return path


def _load(r: RouterRow) -> float:
    return r.load


def _modes(rows: Sequence[RouterRow]) -> list[str]:
    """Baseline first, then the others in order of first appearance."""
    seen = list(dict.fromkeys(r.mode for r in rows))
    return sorted(seen, key=lambda m: (m != "baseline", seen.index(m)))
