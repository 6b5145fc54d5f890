"""``call_hints``: a call's hints label its own response, and a final call is cold at once."""

from __future__ import annotations

import pytest

from agentrt._hints import call_hints
from agentrt.engine import CacheHint, GenerateRequest, SamplingOptions, Tier

PROMPT = (
    CacheHint(0, 10, Tier.SYSTEM),
    CacheHint(10, 20, Tier.USER_QUERY),
    CacheHint(20, 30, Tier.TOOL_OUTPUT),
)


def test_a_call_that_may_use_tools_labels_its_output_with_the_run_context() -> None:
    hints = call_hints(PROMPT, 30, 64, final=False)
    assert hints == (*PROMPT, CacheHint(30, 94, Tier.DEFAULT))


def test_a_final_call_is_response_tier_except_the_shared_system_prompt() -> None:
    hints = call_hints(PROMPT, 30, 64, final=True)
    assert hints == (
        CacheHint(0, 10, Tier.SYSTEM),
        CacheHint(10, 20, Tier.RESPONSE),
        CacheHint(20, 30, Tier.RESPONSE),
        CacheHint(30, 94, Tier.RESPONSE),
    )


def test_no_hints_stay_no_hints() -> None:
    assert call_hints((), 30, 64, final=False) == ()
    assert call_hints((), 30, 64, final=True) == ()


def test_hints_that_stop_before_the_prompt_end_get_no_output_hint() -> None:
    diverged = PROMPT[:2]  # a re-rendered prompt that left the log at token 20
    assert call_hints(diverged, 30, 64, final=False) == diverged


def test_bad_lengths_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        call_hints(PROMPT, 30, 0, final=False)


def test_a_request_takes_hints_over_its_output_and_no_further() -> None:
    prompt = tuple(range(30))
    sampling = SamplingOptions(max_tokens=64)
    ok = GenerateRequest(prompt, sampling, hints=call_hints(PROMPT, 30, 64, final=False))
    assert ok.hints[-1].end == 94
    with pytest.raises(ValueError, match="exceeds the prompt of 30 tokens and its 64 output"):
        GenerateRequest(prompt, sampling, hints=(CacheHint(30, 95, Tier.DEFAULT),))
    forced = GenerateRequest(
        prompt, sampling, hints=(CacheHint(30, 130, Tier.DEFAULT),), forced_output=(1,) * 100
    )
    assert forced.hints[0].end == 130
