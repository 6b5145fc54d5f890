"""Import WEKA kv-cache-tester Claude Code sessions as agent requests.

Segmentation (one conversation thread -> agent requests): a recorded LLM request
*continues* the current agent request when the previous one stopped for ``tool_use``,
its own input is exactly ``["tool_result"]`` and its prompt did not shrink; anything
else (a user message, a resumed or compacted context) starts a new agent request. Per
continued step: tool latency = the step's ``think_time``, tool result size = growth of
``in`` minus the previous ``out`` (at least one token: the growth is negative when
earlier thinking is dropped from the context, which is not compaction — the prefix
holds). Sub-agents become their own agent requests arriving at their recorded time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

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
from ._schema import Call, ToolCall, TraceHeader, TraceRequest, TraceRequestId
from ._trace import Trace
from ._weka_raw import (
    WEKA_BLOCK,
    Step,
    Thread,
    conversation_threads,
    int_field,
    load_conversation,
    weka_files,
)

WEKA_LICENSE = "Apache-2.0 (github.com/callanjfox/kv-cache-tester)"


@dataclass(slots=True)
class _Stats:
    conversations: int = 0
    requests: int = 0
    subagent_requests: int = 0
    ended_in_tool_call: int = 0
    clamped_results: int = 0
    derived_latencies: int = 0
    clipped_latencies: int = 0
    max_latency_s: float | None = None


def import_weka(
    source: str | Path | Sequence[str | Path],
    *,
    token_scale: float = 1.0,
    max_conversations: int | None = None,
    max_requests: int | None = None,
    time_compression: float = 1.0,
    stagger_s: float = 0.0,
    include_subagents: bool = True,
    max_tool_latency_s: float | None = None,
) -> Trace:
    """Read WEKA Claude Code conversations into a trace of agent requests.

    Args:
        source: a folder of ``trace_*.json[.gz]`` files, one file, or a list of files.
        token_scale: factor for every token count; hash blocks scale to
            ``max(1, round(64 * token_scale))`` tokens (see ``_importers``).
        max_conversations: read at most this many files (in name order).
        max_requests: stop after this many agent requests (in conversation order).
        time_compression: arrival times within a conversation are divided by this
            (tool latencies are not: replay has its own factor for those).
        stagger_s: conversation ``i`` starts at ``i * stagger_s`` (all at 0 by default).
        include_subagents: import sub-agent requests too.
        max_tool_latency_s: clip tool latencies to this (``think_time`` includes a person
            approving the tool: median 9 s, p99 ~600 s over the first 120 files).

    Raises:
        TraceImportError: naming the file and the record path (``requests[3]``,
            ``requests[7].requests[2]``) of malformed input.
    """
    if not time_compression > 0:
        raise ValueError(f"time_compression must be > 0, got {time_compression!r}")
    block = scaled_block_tokens(WEKA_BLOCK, token_scale)
    ids = HashIds()
    stats = _Stats(max_latency_s=max_tool_latency_s)
    out: list[TraceRequest] = []
    files = weka_files(source)[:max_conversations]
    for conv_index, path in enumerate(files):
        if max_requests is not None and len(out) >= max_requests:
            break
        conv = load_conversation(path)
        raw_id = conv.get("id")
        conv_id = raw_id if isinstance(raw_id, str) and raw_id else path.name.split(".")[0]
        if int_field(conv, "block_size", path.name, "conversation", minimum=1) != WEKA_BLOCK:
            raise TraceImportError(
                path.name, "conversation", f"block_size must be {WEKA_BLOCK} (as recorded)"
            )
        stats.conversations += 1
        offset = conv_index * stagger_s
        threads = list(conversation_threads(conv, conv_id, path.name, include_subagents))
        segments = [list(_segments(t.steps)) for t in threads]
        systems = _system_groups(threads, segments, conv_id)
        for thread, ranges, system in zip(threads, segments, systems, strict=True):
            for k, ((lo, hi), (n_sys, group)) in enumerate(zip(ranges, system, strict=True)):
                if max_requests is not None and len(out) >= max_requests:
                    break
                first = thread.steps[lo]
                out.append(
                    _request(
                        thread,
                        k,
                        lo,
                        hi,
                        n_sys=n_sys,
                        group=group,
                        block=block,
                        ids=ids,
                        scope=conv_id,
                        arrival_s=offset + (thread.start_s + first.t) / time_compression,
                        stats=stats,
                    )
                )
                stats.requests += 1
                if thread.subagent:
                    stats.subagent_requests += 1
    scale = block / WEKA_BLOCK
    header = TraceHeader(
        source="weka-claude-code",
        description=_describe(stats, scale, token_scale, time_compression),
        token_scale=scale,
        hash_block_tokens=block,
        license=WEKA_LICENSE,
    )
    return Trace(header, by_arrival(out))


def _describe(stats: _Stats, scale: float, asked: float, compression: float) -> str:
    text = (
        f"WEKA Claude Code sessions: {stats.conversations} conversations, "
        f"{stats.requests} agent requests ({stats.subagent_requests} from sub-agents). "
        f"Token scale {scale:g}"
        + (
            f" (asked {asked:g}; hash blocks need a whole number of tokens)"
            if scale != asked
            else ""
        )
        + f"; arrival times compressed x{compression:g}. One tool call per tool-using LLM "
        f"call (the source does not count them), completing at the end of the output. "
        f"Fixes: {stats.ended_in_tool_call} requests ended in a tool call (that call made "
        f"final), {stats.clamped_results} tool results with non-positive context growth "
        f"set to 1 recorded token, {stats.derived_latencies} tool latencies derived from "
        f"timestamps (no think_time)"
        + (
            f", {stats.clipped_latencies} tool latencies clipped to {stats.max_latency_s:g} s."
            if stats.max_latency_s is not None
            else "."
        )
    )
    return text


def _system_groups(
    threads: list[Thread], segments: list[list[tuple[int, int]]], scope: str
) -> list[list[tuple[int, str | None]]]:
    """For each agent request: how many leading blocks form its system prompt, and its
    group.

    Requests of one kind of thread (main, or a sub-agent type) whose prompts start with
    the same block form a group; its system is the longest run of whole leading blocks
    that all of them share, bounded by the recorded ``system_tokens + tool_tokens``
    (whose tail is not always stable: a resumed session re-renders it) and leaving each
    query at least one token.
    """
    keys: list[list[tuple[str, int]]] = []
    shared: dict[tuple[str, int], int] = {}
    firsts: dict[tuple[str, int], list[int]] = {}
    for thread, ranges in zip(threads, segments, strict=True):
        keys.append([])
        for lo, _ in ranges:
            step = thread.steps[lo]
            key = (thread.group_hint, step.hash_ids[0] if step.hash_ids else -1)
            keys[-1].append(key)
            n = min(
                thread.system_tokens // WEKA_BLOCK,
                len(step.hash_ids),
                (step.prompt - 1) // WEKA_BLOCK,
                shared.get(key, len(step.hash_ids)),
            )
            ref = firsts.setdefault(key, step.hash_ids)
            k = 0
            while k < n and step.hash_ids[k] == ref[k]:
                k += 1
            shared[key] = k
    # Name groups by kind, numbering a kind's groups in order of first appearance.
    names: dict[tuple[str, int], str] = {}
    per_hint: dict[str, int] = {}
    for key in firsts:
        per_hint[key[0]] = per_hint.get(key[0], 0) + 1
        n = per_hint[key[0]]
        names[key] = f"{scope}/{key[0]}" + (f"#{n}" if n > 1 else "")
    return [[(shared[k], names[k] if shared[k] else None) for k in ks] for ks in keys]


def _segments(steps: list[Step]) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` index ranges of the steps forming each agent request."""
    lo = 0
    for i in range(1, len(steps)):
        if not _continues(steps[i - 1], steps[i]):
            yield lo, i
            lo = i
    if steps:
        yield lo, len(steps)


def _continues(prev: Step, step: Step) -> bool:
    return (
        prev.stop == "tool_use" and step.inputs == ("tool_result",) and (step.prompt >= prev.prompt)
    )


def _request(
    thread: Thread,
    k: int,
    lo: int,
    hi: int,
    *,
    n_sys: int,
    group: str | None,
    block: int,
    ids: HashIds,
    scope: str,
    arrival_s: float,
    stats: _Stats,
) -> TraceRequest:
    steps = thread.steps
    first = steps[lo]
    scale = block / WEKA_BLOCK
    sys_ids = tuple(ids.get(scope, h) for h in first.hash_ids[:n_sys])
    system = token_content(n_sys * block, sys_ids or None)

    # The query (user message, plus the conversation so far for later turns) starts on a
    # block boundary; its partial last block is named by a later prompt that completed
    # it, when the next step's prompt extends this one.
    full = first.prompt // WEKA_BLOCK
    src = list(first.hash_ids[n_sys:full])
    if lo + 1 < len(steps):
        nxt = steps[lo + 1]
        if len(nxt.hash_ids) > full and nxt.hash_ids[:full] == first.hash_ids[:full]:
            src.append(nxt.hash_ids[full])
    q_tokens, q_count = hashed_content(src, first.prompt - n_sys * WEKA_BLOCK, WEKA_BLOCK, block)
    query = token_content(q_tokens, padded_ids((ids.get(scope, h) for h in src), q_count, ids))

    calls: list[Call] = []
    for i in range(lo, hi):
        step = steps[i]
        output = token_content(max(1, scale_count(step.output, scale)))
        tool_calls: tuple[ToolCall, ...] = ()
        if i + 1 < hi:
            nxt = steps[i + 1]
            growth = nxt.prompt - step.prompt - step.output
            if growth < 1:
                stats.clamped_results += 1
                growth = 1
            tool_calls = (
                ToolCall(
                    name="tool",
                    latency_s=_latency(step, nxt, stats),
                    result=token_content(scale_count(growth, scale)),
                ),
            )
        elif step.stop == "tool_use":
            stats.ended_in_tool_call += 1
        calls.append(Call(output=output, tool_calls=tool_calls))

    return TraceRequest(
        id=TraceRequestId(f"{thread.name}/{k}"),
        arrival_s=arrival_s,
        group=group,
        system=system,
        query=query,
        calls=tuple(calls),
    )


def _latency(step: Step, nxt: Step, stats: _Stats) -> float:
    """The client gap before ``nxt``: tool execution (and any approval wait)."""
    if nxt.think_s is not None:
        latency = nxt.think_s
    else:
        stats.derived_latencies += 1
        latency = max(0.0, nxt.t - step.t - (step.api_s or 0.0))
    if stats.max_latency_s is not None and latency > stats.max_latency_s:
        stats.clipped_latencies += 1
        latency = stats.max_latency_s
    return latency
