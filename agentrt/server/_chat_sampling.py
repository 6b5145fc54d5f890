"""A chat request's sampling fields as the engine's ``SamplingOptions`` (issue 11.5).

Every sampling parameter the request model declares reaches the engine here, with the
meaning vLLM's ``SamplingParams`` gives it, or is refused with a 400 naming the field;
none is accepted and dropped. ``n`` above 1 is the one refusal: the completion's tokens
are remembered, its session's split prefill planned and its calls parsed as one choice
(docs/COMPATIBILITY.md).
"""

from __future__ import annotations

from agentrt.engine import SamplingOptions

from ._errors import APIError
from ._openai_models import ChatCompletionRequest


def chat_sampling(
    body: ChatCompletionRequest,
    *,
    max_tokens: int,
    default_temperature: float,
    vocab_size: int,
) -> SamplingOptions:
    """The engine's sampling options for ``body`` (``max_tokens``: the output budget).

    Raises:
        APIError: a field is out of range, refused or inconsistent (400, naming it).
    """
    if body.n is not None and body.n != 1:
        raise _error("n", f"only 1 choice per request is supported, got {body.n}", "unsupported")
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    try:
        return SamplingOptions(
            max_tokens=max_tokens,
            temperature=default_temperature if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            seed=body.seed,
            stop=stop,
            ignore_eos=bool(body.ignore_eos),
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
            repetition_penalty=1.0 if body.repetition_penalty is None else body.repetition_penalty,
            top_k=max(body.top_k or 0, 0),  # -1 is vLLM's old spelling of "off"
            min_p=body.min_p or 0.0,
            logit_bias=_logit_bias(body, vocab_size),
            stop_token_ids=_stop_token_ids(body, vocab_size),
            logprobs=_logprobs(body),
        )
    except ValueError as exc:
        raise APIError(400, str(exc), code="invalid_value") from None


def _logprobs(body: ChatCompletionRequest) -> int | None:
    """How many alternatives per token to report (None: no logprobs), as OpenAI means
    ``logprobs`` and ``top_logprobs``: the latter needs the former."""
    if not body.logprobs:
        if body.top_logprobs:
            raise _error(
                "top_logprobs", "needs logprobs set to true", "invalid", got=body.top_logprobs
            )
        return None
    return body.top_logprobs or 0


def _logit_bias(body: ChatCompletionRequest, vocab_size: int) -> tuple[tuple[int, float], ...]:
    out = []
    for key, bias in (body.logit_bias or {}).items():
        token = int(key) if key.isascii() and key.isdigit() else -1
        if not 0 <= token < vocab_size:
            raise _error(
                "logit_bias",
                f"keys must be token ids in [0, {vocab_size}), got {key!r}",
                "invalid",
            )
        out.append((token, float(bias)))
    return tuple(out)


def _stop_token_ids(body: ChatCompletionRequest, vocab_size: int) -> tuple[int, ...]:
    ids = tuple(body.stop_token_ids or ())
    for token in ids:
        if token >= vocab_size:
            raise _error(
                "stop_token_ids", f"token ids must be below {vocab_size}", "invalid", got=token
            )
    return ids


def _error(field: str, problem: str, kind: str, got: object = None) -> APIError:
    detail = "" if got is None else f" (got {got!r})"
    return APIError(400, f"{field}: {problem}{detail}", param=field, code=f"{kind}_value")
