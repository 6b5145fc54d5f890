"""Import the Mooncake conversation trace: each line becomes a one-call agent request.

Mooncake records no sessions and no tools, only arrival times, lengths and 512-token
prefix-block ids; it exercises arrival patterns and cross-request prefix sharing. The
leading blocks common to every imported request become a shared system prompt (group
``"mooncake"``); the rest of each prompt is its query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ._importers import (
    HashIds,
    TraceImportError,
    by_arrival,
    hashed_content,
    padded_ids,
    scale_count,
    scaled_block_tokens,
    token_content,
)
from ._schema import Call, TraceHeader, TraceRequest, TraceRequestId
from ._trace import Trace

MOONCAKE_BLOCK = 512
MOONCAKE_LICENSE = "Apache-2.0 (github.com/kvcache-ai/Mooncake)"


def import_mooncake(
    path: str | Path,
    *,
    token_scale: float = 1.0,
    max_requests: int | None = None,
    shared_system: bool = True,
) -> Trace:
    """Read a Mooncake JSONL trace (``timestamp`` ms, lengths, ``hash_ids``).

    Args:
        path: the ``.jsonl`` file.
        token_scale: factor for every token count; blocks scale to
            ``max(1, round(512 * token_scale))`` tokens.
        max_requests: read at most this many lines.
        shared_system: split the blocks common to all requests off as the system prompt
            (otherwise the system is empty and the query holds the whole prompt).

    Raises:
        TraceImportError: naming the file and line of a malformed record.
    """
    path = Path(path)
    block = scaled_block_tokens(MOONCAKE_BLOCK, token_scale)
    rows = _read(path, max_requests)
    n_sys = _common_blocks(rows) if shared_system else 0
    ids = HashIds()
    sys_ids = tuple(ids.get(None, h) for h in rows[0][1]["hash_ids"][:n_sys]) if rows else ()
    system = token_content(n_sys * block, sys_ids or None)
    scale = block / MOONCAKE_BLOCK
    requests = []
    for lineno, row in rows:
        src = row["hash_ids"][n_sys:]
        q_tokens, q_count = hashed_content(
            src, row["input_length"] - n_sys * MOONCAKE_BLOCK, MOONCAKE_BLOCK, block
        )
        query = token_content(q_tokens, padded_ids((ids.get(None, h) for h in src), q_count, ids))
        output = token_content(max(1, scale_count(row["output_length"], scale)))
        requests.append(
            TraceRequest(
                id=TraceRequestId(f"mooncake-{lineno:05d}"),
                arrival_s=row["timestamp"] / 1000.0,
                group="mooncake" if sys_ids else None,
                system=system,
                query=query,
                calls=(Call(output=output),),
            )
        )
    header = TraceHeader(
        source="mooncake-conversation",
        description=(
            f"Mooncake conversation trace (FAST'25): {len(requests)} requests, one LLM call "
            f"each, no tools. Token scale {scale:g} (512-token blocks -> {block}); "
            f"{n_sys} leading block(s) shared by every request form the system prompt."
        ),
        token_scale=scale,
        hash_block_tokens=block,
        license=MOONCAKE_LICENSE,
    )
    return Trace(header, by_arrival(requests))


def _read(path: Path, max_requests: int | None) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if max_requests is not None and len(rows) >= max_requests:
                break
            if raw.strip():
                rows.append((lineno, _row(raw, path.name, lineno)))
    return rows


def _row(raw: bytes, fname: str, lineno: int) -> dict[str, Any]:
    record = f"line {lineno}"
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise TraceImportError(fname, record, f"not JSON: {e}") from None
    if not isinstance(row, dict):
        raise TraceImportError(fname, record, "expected a JSON object")
    for key, minimum in (("timestamp", 0), ("input_length", 1), ("output_length", 1)):
        v = row.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v >= minimum:
            raise TraceImportError(fname, record, f"{key} must be a number >= {minimum}, got {v!r}")
        if key != "timestamp" and not isinstance(v, int):
            raise TraceImportError(fname, record, f"{key} must be an integer, got {v!r}")
    hash_ids = row.get("hash_ids")
    if not isinstance(hash_ids, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in hash_ids
    ):
        raise TraceImportError(fname, record, "hash_ids must be a list of integers")
    need = -(-row["input_length"] // MOONCAKE_BLOCK)
    if len(hash_ids) != need:
        raise TraceImportError(
            fname,
            record,
            f"hash_ids has {len(hash_ids)} ids; input_length {row['input_length']} needs {need}",
        )
    return row


def _common_blocks(rows: list[tuple[int, dict[str, Any]]]) -> int:
    """Whole leading blocks shared by every row, leaving each query at least one token."""
    if not rows:
        return 0
    ref = rows[0][1]["hash_ids"]
    n = len(ref)
    for _, row in rows:
        ids = row["hash_ids"]
        n = min(n, (row["input_length"] - 1) // MOONCAKE_BLOCK)
        k = 0
        while k < n and ids[k] == ref[k]:
            k += 1
        n = k
    return n
