"""Sampling options in the form of vLLM's completions endpoint, and its logprobs back.

The remote engine (``HTTPEngine``) sends every ``SamplingOptions`` field that differs from
its no-op default, under the name vLLM's ``/v1/completions`` takes it, so a remote
engine samples as the in-process one does (``_vllm_args.sampling_params``). Logprobs come
back in the completions API's shape with tokens spelled ``token_id:N``
(``return_tokens_as_token_ids``), so no token text has to be mapped back to an id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._types import SamplingOptions, TokenLogprob

_TOKEN_ID = "token_id:"


def sampling_body(s: SamplingOptions) -> dict[str, Any]:
    """The completions-request fields for ``s`` beyond max_tokens, temperature, top_p,
    seed, stop and ignore_eos (which the engine sends itself); defaults are left out."""
    body: dict[str, Any] = {}
    if s.presence_penalty:
        body["presence_penalty"] = s.presence_penalty
    if s.frequency_penalty:
        body["frequency_penalty"] = s.frequency_penalty
    if s.repetition_penalty != 1.0:
        body["repetition_penalty"] = s.repetition_penalty
    if s.top_k:
        body["top_k"] = s.top_k
    if s.min_p:
        body["min_p"] = s.min_p
    if s.logit_bias:
        body["logit_bias"] = {str(t): b for t, b in s.logit_bias}
    if s.stop_token_ids:
        body["stop_token_ids"] = list(s.stop_token_ids)
    if s.logprobs is not None:
        body["logprobs"] = s.logprobs
        body["return_tokens_as_token_ids"] = True
    return body


def completion_logprobs(
    raw: Mapping[str, Any] | None, ids: Sequence[int], top: int | None
) -> tuple[TokenLogprob, ...] | None:
    """Our form of one streamed choice's ``logprobs`` (None when none were asked for).

    vLLM's completions API lists the sampled token first, then the ``top`` most likely
    (one entry fewer when the sampled token is one of them); the ``top`` most likely
    are kept, most likely first.
    """
    if top is None or raw is None:
        return None
    values = raw.get("token_logprobs") or []
    alternatives = raw.get("top_logprobs") or []
    out = []
    for i, tid in enumerate(ids):
        value = values[i] if i < len(values) else None
        alts = alternatives[i] if i < len(alternatives) else None
        pairs = [(_token_id(k), float(v)) for k, v in (alts or {}).items()]
        if len(pairs) > top:
            pairs = pairs[1:]  # vLLM lists the sampled token first, then the best ``top``
        ranked = sorted(pairs, key=lambda pair: -pair[1])
        out.append(
            TokenLogprob(
                tid,
                -9999.0 if value is None else float(value),
                tuple((t, v) for t, v in ranked if t is not None)[:top],
            )
        )
    return tuple(out)


def _token_id(key: str) -> int | None:
    if not key.startswith(_TOKEN_ID):
        return None
    try:
        return int(key[len(_TOKEN_ID) :])
    except ValueError:
        return None
