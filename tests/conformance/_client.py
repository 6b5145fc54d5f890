"""Asking one server one case, streamed or not, and comparing two answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

MARKUP = ("<tool_call>", "</tool_call>", "<|im_end|>", "<|im_start|>")


@dataclass(frozen=True)
class Answer:
    """What a client reads of one completion (a streamed one reassembled)."""

    content: str
    calls: tuple[tuple[str, str], ...]  # (name, arguments text)
    finish: str | None
    usage: dict[str, Any] | None

    @property
    def output_tokens(self) -> int | None:
        return None if self.usage is None else self.usage.get("completion_tokens")

    def call_keys(self) -> list[tuple[str, str]]:
        """Calls with arguments canonicalized (text kept when it is not JSON)."""
        return [(n, canonical(a)) for n, a in self.calls]


def canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, ensure_ascii=False)
    except json.JSONDecodeError:
        return arguments


def ask(client: httpx.Client, body: dict[str, Any], *, stream: bool) -> Answer:
    full = {"model": "default", "temperature": 0, **body}
    if not stream:
        r = client.post("/v1/chat/completions", json=full)
        if r.status_code != 200:
            return refused(r.status_code, r.text)
        data = r.json()
        choice = data["choices"][0]
        m = choice["message"]
        calls = tuple(
            (c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls") or []
        )
        return Answer(m.get("content") or "", calls, choice["finish_reason"], data.get("usage"))
    full |= {"stream": True, "stream_options": {"include_usage": True}}
    content, parts, finish, usage = "", {}, None, None
    with client.stream("POST", "/v1/chat/completions", json=full) as r:
        if r.status_code != 200:
            return refused(r.status_code, r.read().decode())
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            usage = event.get("usage") or usage
            for ch in event.get("choices") or []:
                delta = ch.get("delta") or {}
                content += delta.get("content") or ""
                for tc in delta.get("tool_calls") or []:
                    name, args = parts.get(tc["index"], ("", ""))
                    fn = tc.get("function") or {}
                    parts[tc["index"]] = (
                        name + (fn.get("name") or ""),
                        args + (fn.get("arguments") or ""),
                    )
                finish = ch.get("finish_reason") or finish
    return Answer(content, tuple(parts[i] for i in sorted(parts)), finish, usage)


def refused(status: int, text: str) -> Answer:
    """A request the server refused: ``finish`` is ``http_<status>``, ``content`` its body."""
    return Answer(text[:300], (), f"http_{status}", None)


def problems(a: Answer) -> list[str]:
    """What is wrong with one answer on its own (empty: nothing)."""
    out = []
    if a.finish not in ("stop", "length", "tool_calls"):
        out.append(f"finish_reason {a.finish!r}")
    if a.calls and a.finish == "stop":
        out.append("calls with finish_reason stop")
    if a.finish == "tool_calls" and not a.calls:
        out.append("finish_reason tool_calls without calls")
    for name, args in a.calls[:-1] if a.finish == "length" else a.calls:
        try:
            json.loads(args)
        except json.JSONDecodeError:
            out.append(f"arguments of {name} are not JSON: {args[:60]!r}")
    keys = a.call_keys()
    if len(set(keys)) != len(keys):
        out.append("repeated calls")
    if any(m in a.content for m in MARKUP):
        out.append("markup in content")
    u = a.usage
    if u is None:
        out.append("no usage")
    elif u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) != u.get("total_tokens"):
        out.append(f"usage does not add up: {u}")
    return out


def differences(v: Answer, a: Answer) -> list[str]:
    """Where agentrt's answer (``a``) differs from vLLM's (``v``)."""
    out = []
    if v.finish != a.finish:
        out.append("finish_reason")
    if len(v.calls) != len(a.calls):
        out.append("call count")
    elif [n for n, _ in v.calls] != [n for n, _ in a.calls]:
        out.append("call names")
    elif v.call_keys() != a.call_keys():
        out.append("arguments")
    if v.content.strip() != a.content.strip():
        out.append("content")
    if v.output_tokens != a.output_tokens:
        out.append("output tokens")
    return out


def same_answer(whole: Answer, streamed: Answer) -> bool:
    """Streamed deltas reassemble to the non-streamed answer (call ids aside)."""
    return (
        whole.content.strip() == streamed.content.strip()
        and whole.call_keys() == streamed.call_keys()
        and whole.finish == streamed.finish
        and whole.output_tokens == streamed.output_tokens
    )
