"""Read and validate WEKA kv-cache-tester conversation files (no interpretation yet).

A file is one conversation: its main thread of LLM requests, with sub-agent entries
nested among them (each with its own ``requests[]``, times relative to its start).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ._importers import TraceImportError

WEKA_BLOCK = 64


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded LLM request of a thread, validated."""

    t: float
    prompt: int
    output: int
    hash_ids: list[int]
    inputs: tuple[str, ...]
    stop: str
    think_s: float | None
    api_s: float | None


@dataclass(slots=True)
class Thread:
    """The main thread of a conversation or one sub-agent's requests."""

    name: str
    group_hint: str
    subagent: bool
    start_s: float
    system_tokens: int
    steps: list[Step]


def weka_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The conversation files of a folder (sorted), or the given file(s)."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            return sorted(
                p
                for p in path.iterdir()
                if p.name.startswith("trace_") and p.name.endswith((".json", ".json.gz"))
            )
        return [path]
    return [Path(p) for p in source]


def load_conversation(path: Path) -> dict[str, Any]:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        conv = orjson.loads(raw)
    except (OSError, EOFError, orjson.JSONDecodeError) as e:
        raise TraceImportError(path.name, "file", f"not a readable JSON conversation: {e}") from e
    if not isinstance(conv, dict) or not isinstance(conv.get("requests"), list):
        raise TraceImportError(path.name, "conversation", "expected an object with 'requests'")
    return conv


def conversation_threads(
    conv: dict[str, Any], conv_id: str, fname: str, include_subagents: bool
) -> Iterator[Thread]:
    """The main thread, then every sub-agent (nested ones too), each with its steps."""
    # (request-id prefix, group hint, start time, object holding "requests", its path)
    pending: list[tuple[str, str, float, dict[str, Any], str]] = [(conv_id, "main", 0.0, conv, "")]
    while pending:
        name, hint, start, holder, path = pending.pop(0)
        owner = path or "conversation"
        system = int_field(holder, "system_tokens", fname, owner, minimum=0, default=0)
        system += int_field(holder, "tool_tokens", fname, owner, minimum=0, default=0)
        steps: list[Step] = []
        for i, raw in enumerate(holder["requests"]):
            record = f"{path}.requests[{i}]" if path else f"requests[{i}]"
            if not isinstance(raw, dict):
                raise TraceImportError(fname, record, "expected an object")
            if raw.get("type") == "subagent":
                if not isinstance(raw.get("requests"), list):
                    raise TraceImportError(fname, record, "sub-agent without a 'requests' list")
                if include_subagents:
                    agent = str(raw.get("agent_id", f"agent{i}"))
                    kind = str(raw.get("subagent_type", "subagent"))
                    t = num_field(raw, "t", fname, record)
                    pending.append((f"{name}/{agent}", kind, start + t, raw, record))
                continue
            steps.append(_step(raw, fname, record))
        yield Thread(name, hint, bool(path), start, system, steps)


def _step(raw: dict[str, Any], fname: str, record: str) -> Step:
    hash_ids = raw.get("hash_ids")
    if not isinstance(hash_ids, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in hash_ids
    ):
        raise TraceImportError(fname, record, "hash_ids must be a list of integers")
    inputs = raw.get("input_types", [])
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise TraceImportError(fname, record, "input_types must be a list of strings")
    stop = raw.get("stop", "")
    if not isinstance(stop, str):
        raise TraceImportError(fname, record, f"stop must be a string, got {stop!r}")
    think = raw.get("think_time")
    api = raw.get("api_time")
    return Step(
        t=num_field(raw, "t", fname, record),
        prompt=int_field(raw, "in", fname, record, minimum=1),
        output=int_field(raw, "out", fname, record, minimum=0),
        hash_ids=hash_ids,
        inputs=tuple(inputs),
        stop=stop,
        think_s=None if think is None else num_field(raw, "think_time", fname, record),
        api_s=None if api is None else num_field(raw, "api_time", fname, record),
    )


def num_field(raw: dict[str, Any], key: str, fname: str, record: str) -> float:
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
        raise TraceImportError(fname, record, f"{key} must be a number >= 0, got {v!r}")
    return float(v)


def int_field(
    raw: dict[str, Any],
    key: str,
    fname: str,
    record: str,
    *,
    minimum: int,
    default: int | None = None,
) -> int:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise TraceImportError(fname, record, f"{key} must be an integer >= {minimum}, got {v!r}")
    return v
