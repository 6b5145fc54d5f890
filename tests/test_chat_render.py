"""The token-log invariant: rendering message by message equals rendering all at once, in
every tool format, and only the template puts chat markers into a conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrt.engine import (
    TOOL_FORMAT_NAMES,
    ByteCodec,
    ChatMessage,
    ChatTokenizer,
    ToolCallPart,
    ToolFormatName,
    ToolSchema,
    prepare_default_model,
    render_with_template,
)
from agentrt.engine._chat import message_to_openai, render_text, tool_schema_json
from agentrt.engine._formats import tool_format

# Text that includes the characters most likely to break token boundaries: newlines,
# spaces, JSON punctuation, tags, non-ASCII, the chat markers and their look-alikes.
_text = st.lists(
    st.sampled_from(
        [
            *'ab xyz\n\t{}[]":,<>/_-.!?0123456789éü中😀',
            "<tool_call>",
            "[TOOL_CALLS]",
            "<|im_start|>",
            "<|im_end|>",
            "<|endoftext|>",
            "im_",
            " the",
        ]
    ),
    max_size=25,
).map("".join)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_call = st.builds(
    lambda name, args: ToolCallPart("call_1", name, json.dumps(args, ensure_ascii=False)),
    st.sampled_from(["search", "calc", "read_file"]),
    st.dictionaries(st.sampled_from(["q", "x", "path"]), _json_value, max_size=3),
)
_message = st.one_of(
    st.builds(ChatMessage, st.just("user"), _text),
    st.builds(ChatMessage, st.just("assistant"), _text),
    st.builds(
        lambda c, calls: ChatMessage("assistant", c, tuple(calls)),
        _text,
        st.lists(_call, min_size=1, max_size=3),
    ),
    st.builds(lambda c: ChatMessage("tool", c, tool_call_id="call_1"), _text),
)
_tools = st.lists(
    st.builds(
        ToolSchema,
        st.sampled_from(["search", "calc"]),
        _text,
        st.just({"type": "object", "properties": {"q": {"type": "string"}}}),
    ),
    max_size=2,
)
_conversation = st.tuples(
    st.one_of(st.none(), _text),  # optional system prompt
    st.lists(_message, max_size=6),
    _tools,
    st.booleans(),
)


@pytest.fixture(scope="module")
def model_tokenizer() -> ChatTokenizer:
    return ChatTokenizer.from_folder(Path(prepare_default_model()))


def _messages(system: str | None, rest: list[ChatMessage]) -> list[ChatMessage]:
    return ([ChatMessage("system", system)] if system is not None else []) + rest


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_conversation, st.sampled_from(TOOL_FORMAT_NAMES))
def test_segments_concatenate_and_hold_only_the_templates_markers(
    model_tokenizer: ChatTokenizer,
    conv: tuple[str | None, list[ChatMessage], list[ToolSchema], bool],
    fmt: ToolFormatName,
) -> None:
    system, rest, tools, gen = conv
    msgs = _messages(system, rest)
    for base in (model_tokenizer, ChatTokenizer(ByteCodec())):
        tok = base.with_tool_format(fmt)
        segments = tok.render_segment_ids(msgs, tools, gen)
        assert [t for seg in segments for t in seg] == tok.render(msgs, tools, gen)
        # Each segment opens one turn and (but the generation prompt) closes it, whatever
        # the messages hold.
        for seg in segments:
            assert seg[0] == tok.im_start_id and seg.count(tok.im_start_id) == 1
        closes = [seg.count(tok.im_end_id) for seg in segments]
        assert closes == [1] * (len(segments) - gen) + [0] * gen


@settings(max_examples=300, deadline=None)
@given(_conversation)
def test_segment_text_matches_the_shipped_jinja_template(
    conv: tuple[str | None, list[ChatMessage], list[ToolSchema], bool],
) -> None:
    system, rest, tools, gen = conv
    msgs = _messages(system, rest)
    via_template = render_with_template(
        [message_to_openai(m) for m in msgs], [tool_schema_json(t) for t in tools], gen
    )
    assert render_text(msgs, tools, gen, tool_format("hermes")) == via_template


def test_template_accepts_arguments_as_objects_like_vllm_passes_them() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "calc", "arguments": {"x": "é"}}}
    text = render_with_template([{"role": "assistant", "content": "", "tool_calls": [call]}])
    assert '<tool_call>\n{"name": "calc", "arguments": {"x": "é"}}\n</tool_call>' in text


def test_byte_codec_round_trips_markers_and_unicode() -> None:
    codec = ByteCodec()
    text = "<|im_start|>user\nhé 😀<|im_end|>\n"
    ids = codec.encode(text)
    assert ids[0] == 256 and 257 in ids
    assert codec.decode(ids) == text


def test_turn_close_follows_a_generated_end_marker(model_tokenizer: ChatTokenizer) -> None:
    closing = [model_tokenizer.im_end_id, *model_tokenizer.turn_close]
    assert model_tokenizer.decode(closing) == "<|im_end|>\n"
