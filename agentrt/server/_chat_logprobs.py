"""Token log-probabilities in OpenAI's chat shape (``logprobs.content``), from the engine's.

Each output token becomes ``{"token", "logprob", "bytes", "top_logprobs"}``; the token is
its text alone (as vLLM's server spells it, a lone piece of a multi-byte character is
U+FFFD), ``bytes`` its UTF-8. Every generated token is listed, the tokens of tool-call
markup included (vLLM's server does the same), so a client can account for them all.
The streamed form lists each token once, in the first chunk written after it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from agentrt.engine import TokenLogprob

Decode = Callable[[Sequence[int]], str]


def _entry(token_id: int, logprob: float, decode: Decode) -> dict[str, Any]:
    text = decode([token_id])
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def content_entries(lps: Iterable[TokenLogprob], decode: Decode) -> list[dict[str, Any]]:
    """The ``logprobs.content`` list for these tokens."""
    out = []
    for lp in lps:
        entry = _entry(lp.token_id, lp.logprob, decode)
        entry["top_logprobs"] = [_entry(t, v, decode) for t, v in lp.top]
        out.append(entry)
    return out


def choice_logprobs(lps: Iterable[TokenLogprob], decode: Decode) -> dict[str, Any]:
    """A choice's ``logprobs`` object."""
    return {"content": content_entries(lps, decode), "refusal": None}


def chunk_logprobs(lps: Iterable[TokenLogprob], decode: Decode) -> bytes:
    """A chunk's ``logprobs`` object, JSON-encoded (chunks are built from bytes)."""
    return orjson.dumps(choice_logprobs(lps, decode))
