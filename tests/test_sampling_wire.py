"""Every ``SamplingOptions`` field reaches vLLM, in-process (``SamplingParams``) and over
HTTP (the completions request), and logprobs come back from both (model-free: vLLM's
parameter types are built, no engine starts)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.engine import (
    GenerateRequest,
    HTTPEngine,
    SamplingOptions,
    TokenLogprob,
    prepare_default_model,
)
from agentrt.engine._http_sampling import completion_logprobs, sampling_body
from agentrt.engine._vllm_args import sampling_params, token_logprobs

FULL = SamplingOptions(
    max_tokens=9,
    temperature=0.7,
    top_p=0.9,
    seed=5,
    stop=("END",),
    presence_penalty=0.5,
    frequency_penalty=-0.5,
    repetition_penalty=1.3,
    top_k=20,
    min_p=0.05,
    logit_bias=((7, -100.0), (9, 2.5)),
    stop_token_ids=(3, 4),
    logprobs=2,
)


def test_in_process_params_carry_every_field() -> None:
    p = sampling_params(GenerateRequest((1, 2), FULL), (), 9, structured=None, hints=False)
    assert (p.max_tokens, p.temperature, p.top_p, p.seed, p.stop) == (9, 0.7, 0.9, 5, ["END"])
    assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.5, -0.5, 1.3)
    assert (p.top_k, p.min_p, p.logprobs) == (20, 0.05, 2)
    assert p.logit_bias == {7: -100.0, 9: 2.5}
    assert p.stop_token_ids == [3, 4]


def test_defaults_stay_vllms_defaults() -> None:
    p = sampling_params(GenerateRequest((1,)), (), 4, structured=None, hints=False)
    assert (p.top_k, p.min_p, p.logprobs, p.logit_bias, p.stop_token_ids) == (
        0,
        0.0,
        None,
        None,
        [],
    )
    assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.0, 0.0, 1.0)


def test_forced_output_ignores_stop_token_ids() -> None:
    req = GenerateRequest((1,), FULL, forced_output=(3, 4, 5))
    assert sampling_params(req, (), 3, structured=None, hints=False).stop_token_ids == []


def test_http_body_carries_every_field_beyond_the_basic_ones() -> None:
    assert sampling_body(FULL) == {
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "repetition_penalty": 1.3,
        "top_k": 20,
        "min_p": 0.05,
        "logit_bias": {"7": -100.0, "9": 2.5},
        "stop_token_ids": [3, 4],
        "logprobs": 2,
        "return_tokens_as_token_ids": True,
    }
    assert sampling_body(SamplingOptions()) == {}


@dataclass
class _Lp:
    logprob: float
    rank: int | None


def test_vllm_logprobs_become_ours() -> None:
    # Position 0: sampled token 5 is the best; position 1: sampled 8 ranks 3rd (outside top 2).
    raw = [
        {5: _Lp(-0.1, 1), 6: _Lp(-2.0, 2)},
        {8: _Lp(-3.0, 3), 1: _Lp(-0.5, 1), 2: _Lp(float("-inf"), 2)},
    ]
    got = token_logprobs((5, 8), raw, 2)
    assert got == (
        TokenLogprob(5, -0.1, ((5, -0.1), (6, -2.0))),
        TokenLogprob(8, -3.0, ((1, -0.5), (2, -9999.0))),
    )
    assert token_logprobs((5,), raw, None) is None
    assert token_logprobs((5,), raw[:1], 0) == (TokenLogprob(5, -0.1, ()),)


def test_completion_logprobs_become_ours() -> None:
    raw = {
        "tokens": ["token_id:5", "token_id:8"],
        "token_logprobs": [-0.1, -3.0],
        "top_logprobs": [
            {"token_id:5": -0.1, "token_id:6": -2.0},
            {"token_id:8": -3.0, "token_id:1": -0.5, "token_id:2": -9999.0},
        ],
    }
    assert completion_logprobs(raw, (5, 8), 2) == (
        TokenLogprob(5, -0.1, ((5, -0.1), (6, -2.0))),
        TokenLogprob(8, -3.0, ((1, -0.5), (2, -9999.0))),
    )
    assert completion_logprobs(raw, (5, 8), None) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("presence_penalty", 2.5),
        ("frequency_penalty", float("nan")),
        ("repetition_penalty", 0.0),
        ("top_k", -1),
        ("min_p", 1.1),
        ("logit_bias", ((-1, 1.0),)),
        ("logit_bias", ((1, 200.0),)),
        ("stop_token_ids", (True,)),
        ("logprobs", 21),
    ],
)
def test_sampling_options_refuse_out_of_range_values_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SamplingOptions(**{field: value})  # type: ignore[arg-type]


@given(
    top=st.integers(0, 5),
    dist=st.lists(st.floats(-50, 0), min_size=6, max_size=12),
    sampled=st.integers(0, 11),
)
def test_completion_logprobs_keep_the_best_first(top: int, dist: list[float], sampled: int) -> None:
    """As vLLM writes them: the sampled token, then the ``top`` best by rank."""
    sampled %= len(dist)
    best = sorted(range(len(dist)), key=lambda t: -dist[t])[:top]
    listed = {f"token_id:{t}": dist[t] for t in [sampled, *best]}
    raw = {"token_logprobs": [dist[sampled]], "top_logprobs": [listed]}
    got = completion_logprobs(raw, (sampled,), top)
    assert got is not None and got[0].logprob == dist[sampled]
    assert sorted(v for _, v in got[0].top) == sorted(dist[t] for t in best)
    assert [v for _, v in got[0].top] == sorted((v for _, v in got[0].top), reverse=True)


def _plain_vllm(seen: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """A plain vLLM server as HTTPEngine sees it; completions stream two tokens with logprobs."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 512}]})
        if path != "/v1/completions":
            return httpx.Response(404, json={"detail": "Not Found"})
        seen.append(json.loads(request.content))
        chunks = [
            # As vLLM lists them (top 1): the sampled token, then the best unless it is it.
            {"text": "a", "token_ids": [5], "lp": {"token_id:5": -0.1}},
            {"text": "b", "token_ids": [8], "lp": {"token_id:8": -3.0, "token_id:1": -0.5}},
        ]
        events = [
            {
                "choices": [
                    {
                        "index": 0,
                        "text": c["text"],
                        "token_ids": c["token_ids"],
                        "logprobs": {
                            "token_logprobs": [next(iter(c["lp"].values()))],  # type: ignore[attr-defined]
                            "top_logprobs": [c["lp"]],
                        },
                        "finish_reason": "length" if i else None,
                    }
                ]
            }
            for i, c in enumerate(chunks)
        ]
        events.append({"choices": [], "usage": {"prompt_tokens": 2, "prompt_tokens_details": {}}})
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=body)

    return handle


@pytest.mark.anyio
async def test_http_engine_sends_the_fields_and_reads_logprobs_back() -> None:
    seen: list[dict[str, Any]] = []
    engine = await HTTPEngine.connect(
        "http://vllm:8000",
        tokenizer=prepare_default_model(),
        transport=httpx.MockTransport(_plain_vllm(seen)),
    )
    async with engine:
        options = replace(FULL, logprobs=1)
        deltas = [d async for d in engine.generate(GenerateRequest((1, 2), options))]
    (body,) = seen
    assert body["logit_bias"] == {"7": -100.0, "9": 2.5} and body["stop_token_ids"] == [3, 4]
    assert (body["top_k"], body["min_p"], body["logprobs"]) == (20, 0.05, 1)
    assert body["return_tokens_as_token_ids"] is True
    got = [lp for d in deltas for lp in d.logprobs or ()]
    assert got == [TokenLogprob(5, -0.1, ((5, -0.1),)), TokenLogprob(8, -3.0, ((1, -0.5),))]
