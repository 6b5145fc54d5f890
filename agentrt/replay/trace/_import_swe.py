"""Import Sutradhara's SWE-bench trajectories (terminus-2 agent, full text).

Each trajectory is one agent request: the shared instructions of the first user message
(everything before ``Task Description:``) are the system prompt, the rest is the query.
Every assistant turn is an LLM call; each Hermes ``<tool_call>`` block in it is a tool
call. terminus returns one terminal screen per batch of commands, so the next user turn
is the result of the batch's *last* call and earlier calls return empty text. A tool's
latency is the ``duration`` it asked to wait (terminus' default 1.0 s for
``bash_command`` without one, 0 for other tools); the paper's x3.1 replay factor is a
replay option, not applied here. No arrival times are recorded: all arrive at 0.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ._importers import TraceImportError
from ._schema import Call, TextContent, ToolCall, TraceHeader, TraceRequest, TraceRequestId
from ._trace import Trace

SYSTEM_MARKER = "Task Description:"
TERMINUS_DEFAULT_DURATION_S = 1.0
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


SUTRADHARA_LICENSE = (
    "none visible upstream (github.com/microsoft/sutradhara): development and tests only"
)


def import_swe(
    path: str | Path, *, max_requests: int | None = None, license: str | None = SUTRADHARA_LICENSE
) -> Trace:
    """Read a Sutradhara ``swe_bench_trace.json`` (object keyed by request id).

    Args:
        path: the JSON file.
        max_requests: import at most this many trajectories (file order).
        license: recorded in the header (the default states the upstream file's terms).

    Raises:
        TraceImportError: naming the file and the trajectory (and turn) of malformed
            input.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TraceImportError(path.name, "file", f"not readable JSON: {e}") from None
    if not isinstance(data, dict):
        raise TraceImportError(path.name, "file", "expected an object keyed by request id")
    notes = {"final_calls_dropped": 0, "unparsed_blocks": 0, "trailing_user_dropped": 0}
    requests = []
    for key, record in list(data.items())[:max_requests]:
        requests.append(_request(key, record, path.name, notes))
    header = TraceHeader(
        source="sutradhara-swe-bench",
        description=(
            f"SWE-bench agent trajectories in the Sutradhara format (full text): "
            f"{len(requests)} agent requests. Tool latency = each command's requested "
            f"duration; a batch's terminal output is the result of its last call. No "
            f"arrivals recorded (all 0). Fixes: {notes['final_calls_dropped']} tool calls "
            f"in final turns dropped, {notes['trailing_user_dropped']} trailing user turns "
            f"dropped, {notes['unparsed_blocks']} unparseable tool-call blocks left as text."
        ),
        license=license,
    )
    return Trace(header, tuple(requests))


def _request(key: str, record: Any, fname: str, notes: dict[str, int]) -> TraceRequest:
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise TraceImportError(fname, key, "expected an object with a 'messages' list")
    messages = record["messages"]
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or m.get("role") not in ("user", "assistant")
            or not isinstance(m.get("content"), str)
        ):
            raise TraceImportError(
                fname,
                f"{key}: messages[{i}]",
                "expected {'role': 'user'|'assistant', 'content': str}",
            )
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            raise TraceImportError(
                fname, f"{key}: messages[{i}]", "turns must alternate, starting with the user"
            )
    if messages and messages[-1]["role"] == "user":
        # Ends on an observation the agent never answered: its last turn is the answer.
        messages = messages[:-1]
        notes["trailing_user_dropped"] += 1
    if len(messages) < 2:
        raise TraceImportError(fname, key, "needs a user message and an assistant turn")

    first = messages[0]["content"]
    cut = first.find(SYSTEM_MARKER)
    system, query = (first[:cut], first[cut:]) if cut > 0 else ("", first)

    calls: list[Call] = []
    extra: TextContent | None = None
    turns = messages[1:]
    for n in range(0, len(turns), 2):
        text: str = turns[n]["content"]
        observation: str | None = turns[n + 1]["content"] if n + 1 < len(turns) else None
        parsed = _tool_calls(text, fname, f"{key}: messages[{n + 2}]", notes)
        if observation is None:
            notes["final_calls_dropped"] += len(parsed)
            parsed = []
        tool_calls = tuple(
            ToolCall(
                name=name,
                latency_s=_duration(name, args),
                result=TextContent(text=observation or "" if j == len(parsed) - 1 else ""),
                arguments=args,
            )
            for j, (name, args) in enumerate(parsed)
        )
        if not text:
            raise TraceImportError(fname, f"{key}: messages[{n + 2}]", "empty assistant turn")
        calls.append(Call(output=TextContent(text=text), tool_calls=tool_calls, extra_input=extra))
        # A turn without calls is answered by a user message (terminus' parse-error
        # feedback): it reaches the model as new input before the next call.
        extra = TextContent(text=observation) if not tool_calls and observation else None
    digest = hashlib.sha256(system.encode()).hexdigest()[:12]
    return TraceRequest(
        id=TraceRequestId(str(record.get("request_id", key))),
        arrival_s=0.0,
        group=f"swe-{digest}" if system else None,
        system=TextContent(text=system),
        query=TextContent(text=query),
        calls=tuple(calls),
    )


def _tool_calls(
    text: str, fname: str, record: str, notes: dict[str, int]
) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in _TOOL_CALL.findall(text):
        try:
            call = json.loads(block)
        except json.JSONDecodeError:
            call = None
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("name"), str)
            or not call["name"]
            or not isinstance(call.get("arguments", {}), dict)
        ):
            # The model wrote a broken call; the agent treated it as text, so do we.
            notes["unparsed_blocks"] += 1
            continue
        out.append((call["name"], dict(call.get("arguments", {}))))
    return out


def _duration(name: str, args: dict[str, Any]) -> float:
    d = args.get("duration")
    if isinstance(d, int | float) and not isinstance(d, bool) and d >= 0:
        return float(d)
    return TERMINUS_DEFAULT_DURATION_S if name == "bash_command" else 0.0
