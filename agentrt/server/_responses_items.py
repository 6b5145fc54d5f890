"""From a turn's events to Responses output items and the documented stream events.

One ``OutputBuilder`` follows the loop's events (``agentrt._events``) of one request and
keeps the output items in order: per LLM call, a ``message`` with its text (markup
removed by the shared chat assembler), then one item per tool call, in call order —
``function_call`` for the client's tools, ``mcp_call`` (with ``output`` once the tool
returns) for the server's. The non-streamed endpoint uses the same builder and ignores
the events, so both report the same items for the same tokens.

Stream events, as OpenAI documents them: ``response.output_item.added``,
``response.content_part.added``, ``response.output_text.delta``/``.done``,
``response.content_part.done``, ``response.function_call_arguments.delta``/``.done``,
``response.mcp_call_arguments.delta``/``.done``, ``response.mcp_call.in_progress``/
``.completed``/``.failed``, ``response.output_item.done``; framed by ``response.created``,
``response.in_progress`` and ``response.completed`` (or ``.incomplete``/``.failed``).

Log-probabilities (when asked for) are those of the message's text: each token is listed
once, on the first ``output_text.delta`` written after it arrives, and the message's
``output_text.done`` and content part list exactly the deltas' tokens. Tokens that write
no text of a message (tool-call markup, the end-of-sequence token after the last delta)
are not listed: OpenAI's shape has logprobs on output text only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from agentrt._events import (
    IterationFinished,
    RunEvent,
    TokenEvent,
    ToolCallDetected,
    ToolCallTruncated,
    ToolFinished,
)
from agentrt._executor import ToolOk
from agentrt.engine import TokenLogprob, ToolFormat

from ._chat_logprobs import Decode, content_entries
from ._chat_output import ChoiceAssembler

Json = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class OutputBuilder:
    """Output items of one response, and the stream events that build them.

    Args:
        tool_format: the format the model writes calls in (its parser strips the markup).
        labels: server-side tool name -> its group label (``mcp_call.server_label``).
        client_tools: names of the client's function tools.
        decode: token ids to text, given when the request asked for log-probabilities
            (None: every ``logprobs`` list is empty).

    Invariant: ``items`` holds every item announced so far, in announcement order; an
    item's ``output_index`` is its position there.
    """

    def __init__(
        self,
        tool_format: ToolFormat,
        labels: Mapping[str, str],
        client_tools: frozenset[str],
        decode: Decode | None = None,
    ) -> None:
        self.items: list[Json] = []
        self._decode = decode
        self._pending: list[TokenLogprob] = []  # arrived, not yet on a delta
        self._lps: list[Json] = []  # the open message's, in order
        self._format = tool_format
        self._labels = labels
        self._client = client_tools
        self._seq = 0
        self._asm: ChoiceAssembler | None = None
        self._message: int | None = None  # index of the open message item
        self._text: list[str] = []
        self._calls: dict[str, int] = {}
        self.cut_call = False
        """A response ended inside a call (``max_output_tokens``): the response is
        incomplete, and that call's item too."""

    def event(self, kind: str, **fields: Any) -> Json:
        """A stream event with the next sequence number."""
        ev = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return ev

    def on(self, ev: RunEvent) -> list[Json]:
        """The stream events ``ev`` causes (possibly none)."""
        if isinstance(ev, TokenEvent):
            if self._asm is None:
                self._asm = ChoiceAssembler(self._format)
            self._pending.extend(ev.logprobs)
            return self._pieces(self._asm.feed_text(ev.text))
        if isinstance(ev, ToolCallDetected):
            self._pending.clear()  # the call's markup: no text to carry them
            return [*self._close_message(), *self._call(ev)]
        if isinstance(ev, ToolFinished):
            return self._finished(ev)
        if isinstance(ev, ToolCallTruncated):
            self.cut_call = True
            return [*self._close_message(), *self._cut(ev)]
        if isinstance(ev, IterationFinished):
            out = self._pieces(self._asm.finish()) if self._asm is not None else []
            self._asm = None
            self._pending.clear()  # after the last text: the end of sequence
            return [*out, *self._close_message()]
        return []

    def _pieces(self, pieces: list[Any]) -> list[Json]:
        out: list[Json] = []
        for piece in pieces:
            if isinstance(piece, str):  # calls come from ToolCallDetected, with the loop's ids
                out.extend(self._delta(piece))
        return out

    def _delta(self, text: str) -> list[Json]:
        out: list[Json] = []
        if self._message is None:
            item = {
                "id": new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._message = len(self.items)
            self.items.append(item)
            self._text = []
            self._lps = []
            out.append(
                self.event("response.output_item.added", output_index=self._message, item=item)
            )
            out.append(self.event("response.content_part.added", **self._at(), part=_part("")))
        self._text.append(text)
        lps = self._entries(self._pending)
        self._pending.clear()
        self._lps.extend(lps)
        out.append(self.event("response.output_text.delta", **self._at(), delta=text, logprobs=lps))
        return out

    def _entries(self, lps: Sequence[TokenLogprob]) -> list[Json]:
        return content_entries(lps, self._decode) if self._decode is not None else []

    def _at(self) -> Json:
        assert self._message is not None
        return {
            "item_id": self.items[self._message]["id"],
            "output_index": self._message,
            "content_index": 0,
        }

    def _close_message(self) -> list[Json]:
        if self._message is None:
            return []
        text = "".join(self._text)
        at = self._at()
        item = self.items[self._message]
        item["status"] = "completed"
        item["content"] = [_part(text, self._lps)]
        out = [
            self.event("response.output_text.done", **at, text=text, logprobs=self._lps),
            self.event("response.content_part.done", **at, part=_part(text, self._lps)),
            self.event("response.output_item.done", output_index=at["output_index"], item=item),
        ]
        self._message = None
        return out

    def _call(self, ev: ToolCallDetected) -> list[Json]:
        args = orjson.dumps(ev.arguments).decode() if ev.arguments is not None else "{}"
        self._calls[ev.call_id] = len(self.items)
        client = ev.name in self._client
        item = self._item(ev.name, args, "completed" if client else "in_progress", ev.call_id)
        out = self._announce(item, done=client)
        if not client:
            at = {"item_id": item["id"], "output_index": len(self.items) - 1}
            out.append(self.event("response.mcp_call.in_progress", **at))
        return out

    def _cut(self, ev: ToolCallTruncated) -> list[Json]:
        """A call cut by the budget: an ``incomplete`` item with the arguments so far
        (nothing when even its name was cut: the chat endpoint's rule too). Never run."""
        if not ev.name:
            return []
        item = self._item(ev.name, ev.arguments_text, "incomplete", new_id("call"))
        return self._announce(item, done=True, arguments_done=False)

    def _item(self, name: str, args: str, status: str, call_id: str) -> Json:
        if name in self._client:
            return {
                "id": new_id("fc"),
                "type": "function_call",
                "status": status,
                "call_id": call_id,
                "name": name,
                "arguments": args,
            }
        return {
            "id": new_id("mcp"),
            "type": "mcp_call",
            "status": status,
            "server_label": self._labels.get(name, ""),
            "name": name,
            "arguments": args,
            "output": None,
            "error": None,
        }

    def _announce(self, item: Json, *, done: bool, arguments_done: bool = True) -> list[Json]:
        """Append ``item``: added, its arguments (delta, done), and (``done``) finished."""
        index = len(self.items)
        self.items.append(item)
        prefix = (
            "response.function_call_arguments"
            if item["type"] == "function_call"
            else "response.mcp_call_arguments"
        )
        at = {"item_id": item["id"], "output_index": index}
        args = item["arguments"]
        out = [
            self.event(
                "response.output_item.added", output_index=index, item={**item, "arguments": ""}
            ),
            self.event(f"{prefix}.delta", **at, delta=args),
        ]
        if arguments_done:
            out.append(self.event(f"{prefix}.done", **at, arguments=args))
        if done:
            out.append(self.event("response.output_item.done", output_index=index, item=item))
        return out

    def _finished(self, ev: ToolFinished) -> list[Json]:
        index = self._calls.get(ev.call_id)
        if index is None:
            return []
        item = self.items[index]
        ok = isinstance(ev.result, ToolOk)
        item["status"] = "completed" if ok else "failed"
        item["output" if ok else "error"] = ev.result.content
        at = {"item_id": item["id"], "output_index": index}
        return [
            self.event("response.mcp_call.completed" if ok else "response.mcp_call.failed", **at),
            self.event("response.output_item.done", output_index=index, item=item),
        ]


def _part(text: str, logprobs: list[Json] | None = None) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def usage_of(prompt: int, cached: int, output: int) -> Json:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }
