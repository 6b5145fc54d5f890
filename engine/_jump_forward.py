"""Jump-forward for forced tool calls: prefill the text the grammar leaves no choice about.

When a response must call one particular tool (``tool_choice`` required with one tool, or
a named tool) and may write only that call, its grammar fixes the first part of the
output: the format's opening and the call's head (``<tool_call>\\n{"name": "calc",
"arguments": `` for Hermes). Decoding those tokens one step at a time buys nothing — the
grammar masks every other token — but each step costs a full decode iteration of the
batch. The engine instead appends them to the prompt (one prefill pass) and decodes the
rest under a grammar for the remainder. To everything above the engine the response is
unchanged: the head's tokens are emitted as the first output tokens (with the first
decoded token, so time to first token still includes the prefill), counted as output,
and the next request's prompt — which holds them as output — hits their cached KV.

The split is computed on the structural tag itself (``split_head``), so it is exact for
every format whose grammar is built from the shared pieces, and absent (no jump) for any
shape it does not recognise. Requests whose sampling depends on output tokens being
generated (logprobs, presence/frequency penalties, stop strings or stop tokens inside
the head) are left alone, as are forced outputs (replays).

Both engines that hold a grammar backend jump the same way: the embedded ``VLLMEngine``
and ``HTTPEngine`` (the head goes to the server's completions endpoint as prompt tokens,
the rest as its structural tag). Each asks ``engine_jump`` and emits with ``HeadOnce``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._constraints import tool_call_structural_tag
from ._types import GenerateRequest, ToolCallConstraint

Fmt = dict[str, Any]

MIN_HEAD_TOKENS = 2
"""Fewer head tokens than this save less than the bookkeeping costs: no jump."""


@dataclass(frozen=True, slots=True)
class Jump:
    """One request's jump: ``head`` is prefilled and emitted as the first output tokens,
    ``rest`` (a structural tag) constrains what the engine still decodes.

    Invariant: ``head`` is the tokenizer's encoding of ``head_text``, and ``head_text``
    followed by any string ``rest`` accepts is a string the full grammar accepts.
    """

    head: tuple[int, ...]
    head_text: str
    rest: Fmt

    def engine_request(self, request: GenerateRequest) -> GenerateRequest:
        """``request`` as sent to the backend: the head moved from output to prompt (hint
        positions index prompt then output, so they stay where they were)."""
        sampling = replace(
            request.sampling, max_tokens=request.sampling.max_tokens - len(self.head)
        )
        return replace(request, prompt=(*request.prompt, *self.head), sampling=sampling)


def split_head(fmt: Fmt) -> tuple[str, Fmt | None]:
    """The fixed text every string of ``fmt`` starts with, and a format for what follows
    it (None when the fixed text is all of it). ``("", fmt)`` when nothing is fixed."""
    kind = fmt.get("type")
    if kind == "const_string":
        return str(fmt["value"]), None
    if kind == "tag":
        inner_head, inner_rest = split_head(fmt["content"])
        parts = [inner_rest] if inner_rest is not None else []
        if fmt.get("end"):
            parts.append({"type": "const_string", "value": fmt["end"]})
        return str(fmt.get("begin", "")) + inner_head, _sequence(parts)
    if kind == "tags_with_separator":
        tags = fmt.get("tags", [])
        if not fmt.get("at_least_one") or not tags:
            return "", fmt
        if len(tags) > 1:
            return _common_head(fmt)
        head, first_rest = split_head(tags[0])
        if fmt.get("stop_after_first"):
            return head, first_rest
        # Parallel calls of the one tool: the first call's head is still fixed; after
        # it, either the end or the separator and one or more further calls.
        sep = str(fmt.get("separator", ""))
        gap = {"type": "const_string", "value": sep}
        more: Fmt = {"type": "sequence", "elements": [gap, fmt]} if sep else fmt
        parts = ([first_rest] if first_rest is not None else []) + [
            {"type": "optional", "content": more}
        ]
        return head, _sequence(parts)
    if kind == "sequence":
        elements = list(fmt.get("elements", []))
        if not elements:
            return "", fmt
        first_head, first_rest = split_head(elements[0])
        parts = ([first_rest] if first_rest is not None else []) + elements[1:]
        return first_head, _sequence(parts)
    return "", fmt


def _common_head(fmt: Fmt) -> tuple[str, Fmt | None]:
    """One call among several tools: the begins' common prefix is fixed (the format's
    opening and the call's head up to the name). Only for a single call: a further call
    would need its whole begin, which the stripped tags no longer write."""
    tags = fmt["tags"]
    if not fmt.get("stop_after_first") or any(t.get("type") != "tag" for t in tags):
        return "", fmt
    head = _common_prefix([str(t.get("begin", "")) for t in tags])
    if not head:
        return "", fmt
    stripped = [{**t, "begin": str(t["begin"])[len(head) :]} for t in tags]
    return head, {**fmt, "tags": stripped}


def _common_prefix(texts: Sequence[str]) -> str:
    first, last = min(texts), max(texts)  # the sorted extremes share what all share
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _sequence(parts: Sequence[Fmt]) -> Fmt | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return {"type": "sequence", "elements": list(parts)}


def engine_jump(
    request: GenerateRequest, encode: Callable[[str], Sequence[int]], max_model_len: int
) -> Jump | None:
    """``plan_jump``, unless the head would fill the context (the engine then decodes it
    and cuts the response as it would without a jump)."""
    jump = plan_jump(request, encode)
    if jump is None or len(request.prompt) + len(jump.head) >= max_model_len:
        return None
    return jump


class HeadOnce:
    """Puts a jump's head in front of the first delta that carries tokens: the caller sees
    it as output, with the first decoded token (so time to first token includes the
    prefill). Never on a delta without tokens (an abort or error before the first one)."""

    def __init__(self, jump: Jump | None) -> None:
        self._ids, self._text = (jump.head, jump.head_text) if jump is not None else ((), "")

    def apply(self, ids: tuple[int, ...], text: str) -> tuple[tuple[int, ...], str]:
        if not self._ids or not ids:
            return ids, text
        out = (*self._ids, *ids), self._text + text
        self._ids, self._text = (), ""
        return out


def plan_jump(request: GenerateRequest, encode: Callable[[str], Sequence[int]]) -> Jump | None:
    """The jump for ``request``, or None when it has none (see the module docstring).

    ``encode``: text -> token ids (``ChatTokenizer.encode_text``).
    """
    c = request.constraint
    s = request.sampling
    if not isinstance(c, ToolCallConstraint) or not c.required or request.forced_output:
        return None
    if s.logprobs is not None or s.presence_penalty or s.frequency_penalty:
        return None
    head_text, rest = split_head(tool_call_structural_tag(c)["format"])
    # Trailing whitespace goes to the rest: the model writes it fused with the next
    # token (" {" is one token in most vocabularies), as it would without the jump.
    stripped = head_text.rstrip()
    if rest is None or not stripped:
        return None
    if stripped != head_text:
        gap = {"type": "const_string", "value": head_text[len(stripped) :]}
        rest = _sequence([gap, rest])
        assert rest is not None
    if any(stop in stripped for stop in s.stop):
        return None
    head = tuple(encode(stripped))
    if len(head) < MIN_HEAD_TOKENS or set(head) & set(s.stop_token_ids):
        return None
    if s.max_tokens <= len(head):
        return None  # the budget ends inside the head: decode it, as the cut path expects
    return Jump(head, stripped, {"type": "structural_tag", "format": rest})
