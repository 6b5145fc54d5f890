"""Tool-format bundles: the grammar accepts what the renderer writes (and only well-formed
calls), and the format is chosen from the model's chat template unless overridden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xgrammar
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.engine import (
    TOOL_FORMAT_NAMES,
    ByteCodec,
    ChatMessage,
    ChatTokenizer,
    ToolCallConstraint,
    ToolCallPart,
    ToolSchema,
    detect_tool_format,
    prepare_default_model,
    tool_format,
)
from agentrt.engine._constraints import structured_outputs_args
from agentrt.engine._formats import read_chat_template
from agentrt.engine._messages import pieces_text

CALC = ToolSchema(
    "calc",
    "Evaluate an expression.",
    {
        "type": "object",
        "properties": {"expr": {"type": "string"}},
        "required": ["expr"],
        "additionalProperties": False,
    },
)
OPEN_TOOL = ToolSchema("fs.read", "Anything goes.", {"type": "object"})
TOOLS = (CALC, OPEN_TOOL)
_COMPILER = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo([]), cache_enabled=False)


def accepts(constraint: ToolCallConstraint, text: str) -> bool:
    """Whether the constraint's grammar (as vLLM gets it) accepts ``text`` and then ends."""
    tag = structured_outputs_args(constraint)["structural_tag"]
    grammar = _COMPILER.compile_grammar(xgrammar.Grammar.from_structural_tag(tag))
    matcher = xgrammar.GrammarMatcher(grammar, terminate_without_stop_token=True)
    return bool(matcher.accept_string(text)) and bool(matcher.is_terminated())


def rendered(fmt: str, calls: list[ToolCallPart]) -> str:
    return pieces_text(tool_format(fmt).call_pieces(calls))


_open_args = st.dictionaries(
    st.sampled_from(["path", "n", "deep"]),
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8),
    max_size=3,
)
_a_call = st.one_of(
    st.text(max_size=12).map(lambda e: ToolCallPart("c", "calc", json.dumps({"expr": e}))),
    _open_args.map(lambda a: ToolCallPart("c", "fs.read", json.dumps(a))),
)


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
@settings(max_examples=40, deadline=None)
@given(calls=st.lists(_a_call, min_size=1, max_size=3))
def test_the_grammar_accepts_the_calls_the_renderer_writes(
    fmt: str, calls: list[ToolCallPart]
) -> None:
    for required in (True, False):
        parallel = ToolCallConstraint(TOOLS, required=required, parallel=True, format=fmt)  # type: ignore[arg-type]
        single = ToolCallConstraint(TOOLS, required=required, parallel=False, format=fmt)  # type: ignore[arg-type]
        assert accepts(parallel, rendered(fmt, calls))
        assert accepts(single, rendered(fmt, calls[:1]))
        if len(calls) > 1:
            assert not accepts(single, rendered(fmt, calls))


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
@pytest.mark.parametrize("required", [True, False])
def test_the_grammar_refuses_unknown_tools_and_arguments_off_schema(
    fmt: str, required: bool
) -> None:
    c = ToolCallConstraint(TOOLS, required=required, format=fmt)  # type: ignore[arg-type]
    assert not accepts(c, rendered(fmt, [ToolCallPart("c", "rm", '{"expr": "1"}')]))
    assert not accepts(c, rendered(fmt, [ToolCallPart("c", "calc", '{"expr": 1}')]))
    assert not accepts(c, rendered(fmt, [ToolCallPart("c", "calc", '{"x": "1"}')]))


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
def test_required_allows_nothing_but_calls_and_auto_allows_plain_text(fmt: str) -> None:
    required = ToolCallConstraint(TOOLS, required=True, format=fmt)  # type: ignore[arg-type]
    auto = ToolCallConstraint(TOOLS, required=False, format=fmt)  # type: ignore[arg-type]
    assert not accepts(required, "The answer is 4.")
    assert accepts(auto, "The answer is 4.")


def test_the_json_format_constrains_a_bare_call_in_free_text() -> None:
    auto = ToolCallConstraint(TOOLS, required=False, format="json")
    assert accepts(auto, 'Let me see. {"name": "calc", "arguments": {"expr": "2*3"}}')
    assert not accepts(auto, 'Let me see. {"name": "calc", "arguments": {"oops": 1}}')


def test_llama3_auto_allows_text_or_calls_but_not_a_call_after_text() -> None:
    # Its parser reads calls only at the start of the answer; the grammar matches that.
    auto = ToolCallConstraint(TOOLS, required=False, format="llama3_json")
    call = '{"name": "calc", "parameters": {"expr": "1"}}'
    assert accepts(auto, call)
    assert not accepts(auto, "Sure. " + call)


def test_an_unknown_format_is_refused_by_the_constraint() -> None:
    with pytest.raises(ValueError, match="format"):
        ToolCallConstraint(TOOLS, format="xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "hermes"),
        ("{{ messages }}<|im_start|>", "hermes"),
        ("{% for t in tools %}<tool_call>{{ t }}</tool_call>{% endfor %}", "hermes"),
        ("{{ '[AVAILABLE_TOOLS]' }}{{ '[TOOL_CALLS]' }}", "mistral"),
        ('<|start_header_id|>ipython<|end_header_id|>{"parameters": ...}', "llama3_json"),
        ("{{- '<|python_tag|>' + tool_call.name }}", "llama3_json"),
    ],
)
def test_the_format_is_detected_from_the_chat_template(template: str | None, expected: str) -> None:
    assert detect_tool_format(template) == expected


def test_the_template_is_read_from_a_jinja_file_or_tokenizer_config(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "chat_template": [
                    {"name": "default", "template": "plain"},
                    {"name": "tool_use", "template": "[TOOL_CALLS]"},
                ]
            }
        )
    )
    assert read_chat_template(tmp_path) == "[TOOL_CALLS]"
    (tmp_path / "chat_template.jinja").write_text("<tool_call>")
    assert read_chat_template(tmp_path) == "<tool_call>"
    assert read_chat_template(tmp_path / "missing") is None


def test_the_default_model_gets_the_hermes_format_and_an_override_wins() -> None:
    folder = Path(prepare_default_model())  # its own template ignores tools
    assert read_chat_template(folder) is not None
    assert ChatTokenizer.from_folder(folder).tool_format.name == "hermes"
    assert ChatTokenizer.from_folder(folder, "mistral").tool_format.name == "mistral"


def test_with_tool_format_renders_the_other_format_on_the_same_codec() -> None:
    tok = ChatTokenizer(ByteCodec())
    assert tok.with_tool_format(None) is tok and tok.with_tool_format("hermes") is tok
    other = tok.with_tool_format("mistral")
    assert other.codec is tok.codec and tok.tool_format.name == "hermes"
    msg = ChatMessage("assistant", "", (ToolCallPart("c", "calc", '{"expr": "1"}'),))
    assert "[TOOL_CALLS][" in other.decode(other.render_message(msg))
    assert "<tool_call>" in tok.decode(tok.render_message(msg))


@pytest.mark.parametrize(
    ("fmt", "result_text"),
    [
        ("hermes", "<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n"),
        ("json", "<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n"),
        ("llama3_json", "<|im_start|>ipython\n42<|im_end|>\n"),
        (
            "mistral",
            '<|im_start|>tool\n[TOOL_RESULTS]{"content": "42", "call_id": "c"}'
            "[/TOOL_RESULTS]<|im_end|>\n",
        ),
    ],
)
def test_each_format_renders_results_its_own_way(fmt: str, result_text: str) -> None:
    tok = ChatTokenizer(ByteCodec(), fmt)  # type: ignore[arg-type]
    ids = tok.render_message(ChatMessage("tool", "42", tool_call_id="c"))
    assert tok.decode(ids) == result_text


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
def test_each_format_lists_the_tools_in_the_system_turn(fmt: str) -> None:
    tok = ChatTokenizer(ByteCodec(), fmt)  # type: ignore[arg-type]
    text = tok.decode(tok.render_header("Be brief.", [CALC]))
    assert text.startswith("<|im_start|>system\nBe brief.") and text.endswith("<|im_end|>\n")
    assert json.dumps(dict(CALC.parameters)) in text
