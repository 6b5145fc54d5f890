"""The conversation: what each append writes, the prompts and hints it builds, rollback."""

from __future__ import annotations

import json

from agentrt._conversation import Conversation, Prompt, pending_split
from agentrt._executor import ToolCallId
from agentrt.engine import (
    ByteCodec,
    CacheHint,
    ChatMessage,
    ChatTokenizer,
    Tier,
    ToolCallPart,
    ToolSchema,
)

TOK = ChatTokenizer(ByteCodec())
SEARCH = ToolSchema(
    "search", "Search.", {"type": "object", "properties": {"q": {"type": "string"}}}
)
CALL_ID = ToolCallId("call_1")


def conversation(*, token_log: bool = True, cache_hints: bool = True) -> Conversation:
    return Conversation(TOK, "Be brief.", [SEARCH], token_log=token_log, cache_hints=cache_hints)


def call_tokens(args_json: str) -> list[int]:
    body = '{"name": "search", "arguments": ' + args_json + "}"
    return TOK.encode(f"<tool_call>\n{body}\n</tool_call><|im_end|>")


def one_tool_iteration(conv: Conversation, args_json: str = '{"q": "x"}') -> None:
    conv.open_turn("Find x.")
    conv.open_response(0)
    part = ToolCallPart(CALL_ID, "search", args_json)
    conv.close_response(call_tokens(args_json), "", [part], final=False)
    conv.add_tool_result(CALL_ID, "results for x")


def test_a_turn_appends_segments_with_their_tiers_in_order() -> None:
    conv = conversation()
    one_tool_iteration(conv)
    conv.log.check_integrity()
    assert [(s.role, s.tier) for s in conv.log.segments] == [
        ("system", Tier.SYSTEM),
        ("user", Tier.USER_QUERY),
        ("generation_prompt", Tier.DEFAULT),
        ("assistant", Tier.DEFAULT),
        ("turn_close", Tier.DEFAULT),
        ("tool", Tier.TOOL_OUTPUT),
    ]
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "tool"]


def test_with_the_token_log_each_prompt_extends_the_previous_by_what_was_appended() -> None:
    conv = conversation()
    conv.open_turn("Find x.")
    first = conv.open_response(0)
    generated = call_tokens('{"q":"x"}')  # not the template's canonical JSON
    conv.close_response(generated, "", [ToolCallPart(CALL_ID, "search", '{"q":"x"}')], final=False)
    conv.add_tool_result(CALL_ID, "results for x")
    second = conv.open_response(1)
    assert second.tokens[: len(first.tokens)] == first.tokens
    assert second.tokens[len(first.tokens) : len(first.tokens) + len(generated)] == tuple(generated)
    assert first.divergence is None and second.divergence is None


def test_without_the_token_log_a_rerendered_prompt_reports_where_it_left_the_log() -> None:
    conv = conversation(token_log=False)
    conv.open_turn("Find x.")
    before = len(conv.open_response(0).tokens)
    # The model writes compact JSON; the message keeps the parsed call, which the template
    # writes back canonically ('{"name": "search", ...').
    generated = TOK.encode('<tool_call>\n{"name":"search","arguments":{"q":"x"}}\n</tool_call>')
    part = ToolCallPart(CALL_ID, "search", '{"q": "x"}')
    conv.close_response(generated, "", [part], final=False)
    conv.add_tool_result(CALL_ID, "results for x")
    prompt = conv.open_response(1)
    div = prompt.divergence
    assert div is not None and div.iteration == 1
    assert TOK.decode(conv.log.tokens[before : div.position]) == '<tool_call>\n{"name":'
    assert (div.log_tokens, div.rendered_tokens) == (len(conv.log), len(prompt.tokens))
    # Hints describe the log's tokens, so they stop where the rendered prompt leaves them.
    assert max(h.end for h in prompt.hints) == div.position


def test_rendered_and_logged_prompts_agree_when_the_model_writes_canonical_json() -> None:
    logged, rendered = conversation(), conversation(token_log=False)
    for conv in (logged, rendered):
        one_tool_iteration(conv, json.dumps({"q": "x"}))
    a, b = logged.open_response(1), rendered.open_response(1)
    assert a.tokens == b.tokens and b.divergence is None and a.hints == b.hints


def test_split_a_is_everything_before_the_first_tool_result_marked_pending() -> None:
    conv = conversation()
    conv.open_turn("Find x.")
    conv.open_response(0)
    conv.close_response(call_tokens('{"q": "x"}'), "", [], final=False)
    split = conv.split_a(pending_ttl_s=2.0)
    assert split.tokens == conv.log.tokens
    assert {(h.tier, h.ttl_s) for h in split.hints} == {(Tier.SPLIT_PENDING, 2.0)}
    assert [h.base for h in split.hints] == [Tier.SYSTEM, Tier.USER_QUERY, Tier.DEFAULT]


def test_split_a_with_a_tail_is_the_one_builder_of_the_rest_endpoints() -> None:
    conv = conversation()
    conv.open_turn("Find x.")
    conv.open_response(0)
    conv.close_response(call_tokens('{"q": "x"}'), "", [], final=False)
    tail = tuple(TOK.encode("<|im_start|>user\n"))
    split = conv.split_a(pending_ttl_s=3.0, tail=tail)
    logged = conv.log.tokens
    assert split.tokens == logged + tail
    assert split.hints[-1] == CacheHint(
        len(logged), len(logged) + len(tail), Tier.SPLIT_PENDING, 3.0, Tier.DEFAULT
    )
    same = pending_split(Prompt(logged, conv.log.hints()), tail, 3.0)
    assert same == split
    # Hints off: the tail gets none either.
    assert pending_split(Prompt(logged, ()), tail, 3.0).hints == ()


def test_without_cache_hints_prompts_carry_none() -> None:
    conv = conversation(cache_hints=False)
    conv.open_turn("Hi.")
    assert conv.open_response(0).hints == ()
    assert conv.split_a(pending_ttl_s=1.0).hints == ()


def test_a_response_cut_off_by_max_tokens_is_closed_like_the_template_would() -> None:
    conv = conversation()
    conv.open_turn("Hi.")
    conv.open_response(0)
    conv.close_response(TOK.encode("Hel"), "Hel", [], final=True)
    closing = [s for s in conv.log.segments if s.role == "turn_close"]
    assert [s.length for s in closing] == [1, len(TOK.turn_close)]
    assert {s.tier for s in conv.log.segments[-3:]} == {Tier.RESPONSE}
    assert conv.log.tokens[closing[0].start] == TOK.im_end_id


def test_rollback_forgets_log_and_messages_after_the_mark() -> None:
    conv = conversation()
    conv.open_turn("First.")
    conv.open_response(0)
    conv.close_response(TOK.encode("Done.<|im_end|>"), "Done.", [], final=True)
    mark, tokens, messages = conv.checkpoint(), conv.log.tokens, conv.messages
    one_tool_iteration(conv)
    conv.rollback(mark)
    conv.log.check_integrity()
    assert (conv.log.tokens, conv.messages) == (tokens, messages)
    assert messages[-1] == ChatMessage("assistant", "Done.")
