"""Importers: exact results on small hand-made sources, shipped samples, the real public
files (a few records, skipped when absent), and errors that name the broken record."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from agentrt.replay import (
    TextContent,
    TokenContent,
    TraceImportError,
    TraceRequest,
    import_mooncake,
    import_swe,
    import_weka,
    load_trace,
)
from agentrt.replay.trace._samples import sample_builders

REPO_TRACES = Path(__file__).resolve().parents[1] / "traces"
SHARED = Path("/work/shared/traces")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="public traces folder absent")


def _tokens(c: object) -> int:
    assert isinstance(c, TokenContent)
    return c.tokens


def _ids(c: object) -> tuple[int, ...]:
    assert isinstance(c, TokenContent) and c.hash_ids is not None
    return c.hash_ids


# --- WEKA -------------------------------------------------------------------------------


def _step(
    t: float, n_in: int, out: int, ids: list[int], inputs: str, stop: str, think: float
) -> dict[str, Any]:
    return {
        "t": t,
        "type": "n",
        "model": "m",
        "in": n_in,
        "out": out,
        "hash_ids": ids,
        "input_types": [inputs],
        "stop": stop,
        "api_time": 1.0,
        "think_time": think,
    }


def _conversation() -> dict[str, Any]:
    """A user turn with two tool steps, a sub-agent, then a second user turn.

    System + tools = 128 tokens = 2 blocks of 64.
    """
    sub = {
        "t": 3.5,
        "type": "subagent",
        "agent_id": "agent_001",
        "subagent_type": "Explore",
        "system_tokens": 64,
        "tool_tokens": 0,
        "requests": [
            _step(0.0, 100, 7, [50], "text", "tool_use", 0.0),
            _step(2.0, 130, 9, [50, 51], "tool_result", "end_turn", 1.0),
        ],
    }
    return {
        "id": "conv",
        "block_size": 64,
        "hash_id_scope": "local",
        "system_tokens": 100,
        "tool_tokens": 28,
        "requests": [
            _step(0.0, 200, 10, [1, 2, 3], "text", "tool_use", 0.0),
            sub,
            _step(5.0, 260, 20, [1, 2, 3, 4], "tool_result", "tool_use", 2.5),
            _step(9.0, 300, 30, [1, 2, 3, 4], "tool_result", "end_turn", 1.0),
            _step(100.0, 400, 5, [1, 2, 3, 4, 5, 6], "text", "end_turn", 60.0),
        ],
    }


def _write_conv(tmp_path: Path, conv: dict[str, Any], name: str = "trace_0001.json.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(json.dumps(conv).encode()))
    return path


def _by_id(requests: tuple[TraceRequest, ...]) -> dict[str, TraceRequest]:
    return {r.id: r for r in requests}


def test_weka_segments_a_conversation_into_agent_requests(tmp_path: Path) -> None:
    trace = import_weka(_write_conv(tmp_path, _conversation()))
    assert [r.id for r in trace] == ["conv/0", "conv/agent_001/0", "conv/1"]  # by arrival
    first, sub, second = (
        _by_id(trace.requests)[i] for i in ("conv/0", "conv/agent_001/0", "conv/1")
    )
    assert (first.arrival_s, sub.arrival_s, second.arrival_s) == (0.0, 3.5, 100.0)
    assert [_tokens(c.output) for c in first.calls] == [10, 20, 30]
    assert [[(t.latency_s, _tokens(t.result)) for t in c.tool_calls] for c in first.calls] == [
        [(2.5, 50)],
        [(1.0, 20)],
        [],
    ]  # growth of `in` minus the previous `out`
    assert [t.at for c in first.calls for t in c.tool_calls] == [None, None]
    assert trace.header.token_scale == 1.0 and trace.header.hash_block_tokens == 64


def test_weka_system_is_shared_whole_blocks_and_queries_share_history(tmp_path: Path) -> None:
    trace = _by_id(import_weka(_write_conv(tmp_path, _conversation())).requests)
    first, second = trace["conv/0"], trace["conv/1"]
    assert first.group == second.group == "conv/main"
    assert first.system == second.system and _tokens(first.system) == 128
    # 200 - 128 = 72 query tokens: one full block and a tail named by the next prompt.
    assert _tokens(first.query) == 72 and len(_ids(first.query)) == 2
    assert _tokens(second.query) == 400 - 128
    assert _ids(second.query)[:2] == _ids(first.query)
    sub = trace["conv/agent_001/0"]
    assert sub.group == "conv/Explore" and _tokens(sub.system) == 64
    assert not set(_ids(sub.system)) & set(_ids(first.system))


def test_weka_scaling_keeps_blocks_whole(tmp_path: Path) -> None:
    trace = import_weka(_write_conv(tmp_path, _conversation()), token_scale=0.5)
    first = _by_id(trace.requests)["conv/0"]
    assert trace.header.hash_block_tokens == 32 and trace.header.token_scale == 0.5
    assert _tokens(first.system) == 64 and _tokens(first.query) == 36
    assert [_tokens(c.output) for c in first.calls] == [5, 10, 15]
    assert [_tokens(t.result) for c in first.calls for t in c.tool_calls] == [25, 10]


def test_weka_limits_and_time_compression(tmp_path: Path) -> None:
    path = _write_conv(tmp_path, _conversation())
    assert [r.id for r in import_weka(path, max_requests=1)] == ["conv/0"]
    assert [r.id for r in import_weka(path, include_subagents=False)] == ["conv/0", "conv/1"]
    assert [r.arrival_s for r in import_weka(path, time_compression=10)] == [0.0, 0.35, 10.0]
    clipped = _by_id(import_weka(path, max_tool_latency_s=2.0).requests)["conv/0"]
    assert [t.latency_s for c in clipped.calls for t in c.tool_calls] == [2.0, 1.0]


def test_weka_request_ending_in_a_tool_call_is_made_final(tmp_path: Path) -> None:
    conv = _conversation()
    conv["requests"][-1]["stop"] = "tool_use"
    trace = import_weka(_write_conv(tmp_path, conv))
    assert not _by_id(trace.requests)["conv/1"].calls[-1].tool_calls
    assert "1 requests ended in a tool call" in trace.header.description


def test_weka_shrinking_prompt_starts_a_new_request(tmp_path: Path) -> None:
    conv = _conversation()
    conv["requests"][3].update({"in": 250, "hash_ids": [1, 2, 3]})  # smaller than 260
    ids = [r.id for r in import_weka(_write_conv(tmp_path, conv))]
    assert ids == ["conv/0", "conv/agent_001/0", "conv/1", "conv/2"]


@pytest.mark.parametrize(
    ("break_it", "record"),
    [
        (lambda c: c["requests"][2].pop("in"), "requests[2]"),
        (lambda c: c["requests"][0].update(hash_ids="1,2"), "requests[0]"),
        (lambda c: c["requests"][1]["requests"][1].update(t=-1), "requests[1].requests[1]"),
        (lambda c: c.update(block_size=16), "conversation"),
    ],
    ids=["missing-in", "bad-hash-ids", "subagent-time", "block-size"],
)
def test_weka_malformed_record_is_named(tmp_path: Path, break_it: Any, record: str) -> None:
    conv = _conversation()
    break_it(conv)
    with pytest.raises(TraceImportError) as info:
        import_weka(_write_conv(tmp_path, conv, "trace_0009.json.gz"))
    assert info.value.source == "trace_0009.json.gz" and info.value.record == record


def test_weka_unreadable_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "trace_0002.json.gz").write_bytes(b"not gzip")
    with pytest.raises(TraceImportError, match=r"trace_0002\.json\.gz: file"):
        import_weka(tmp_path)


@needs_shared
def test_weka_real_conversations() -> None:
    trace = import_weka(SHARED / "weka-claude-code", token_scale=1 / 64, max_conversations=3)
    assert len(trace) > 10 and trace.header.hash_block_tokens == 1
    assert [r.arrival_s for r in trace] == sorted(r.arrival_s for r in trace)
    subs = [r for r in trace if r.id.count("/") == 2]
    assert subs and all(r.group and r.group.endswith("/Explore") for r in subs)
    assert sum(len(r.calls) for r in trace) > len(trace)  # real tool loops


# --- Mooncake ---------------------------------------------------------------------------


def _mooncake(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "mc.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


MOONCAKE_ROWS = [
    {"timestamp": 0, "input_length": 1100, "output_length": 40, "hash_ids": [0, 1, 2]},
    {"timestamp": 1500, "input_length": 600, "output_length": 3, "hash_ids": [0, 9]},
]


def test_mooncake_lines_become_one_call_requests(tmp_path: Path) -> None:
    trace = import_mooncake(_mooncake(tmp_path, MOONCAKE_ROWS), token_scale=1 / 64)
    a, b = trace.requests
    assert trace.header.hash_block_tokens == 8 and [a.arrival_s, b.arrival_s] == [0.0, 1.5]
    assert a.system == b.system and _tokens(a.system) == 8 and a.group == "mooncake"
    # 1100 tokens = 2 whole blocks + 76: the query holds 1 block + round(76 / 64) tokens.
    assert _tokens(a.query) == 8 + 1 and len(_ids(a.query)) == 2
    assert _tokens(b.query) == 1  # 600 - 512 = 88 recorded tokens -> round(88 * 8 / 512)
    assert [len(r.calls) for r in trace] == [1, 1]
    assert [_tokens(r.calls[0].output) for r in trace] == [1, 1]


def test_mooncake_without_shared_system(tmp_path: Path) -> None:
    trace = import_mooncake(_mooncake(tmp_path, MOONCAKE_ROWS), shared_system=False)
    assert all(_tokens(r.system) == 0 and r.group is None for r in trace)
    assert _tokens(trace.requests[0].query) == 1100


@pytest.mark.parametrize(
    "bad",
    [
        {"timestamp": 5, "input_length": 600, "output_length": 3, "hash_ids": [0]},
        {"timestamp": -1, "input_length": 600, "output_length": 3, "hash_ids": [0, 1]},
        "[1, 2]",
    ],
    ids=["hash-count", "negative-time", "not-an-object"],
)
def test_mooncake_malformed_line_is_named(tmp_path: Path, bad: Any) -> None:
    path = _mooncake(tmp_path, [MOONCAKE_ROWS[0], bad])
    with pytest.raises(TraceImportError, match=r"mc\.jsonl: line 2"):
        import_mooncake(path)


@needs_shared
def test_mooncake_real_file_head() -> None:
    trace = import_mooncake(SHARED / "mooncake" / "conversation_trace.jsonl", max_requests=20)
    assert len(trace) == 20 and trace.requests[0].group == "mooncake"


# --- Sutradhara SWE-bench ---------------------------------------------------------------


EXAMPLE = REPO_TRACES / "sources" / "swe-style-example.json"


def test_swe_turns_become_calls_and_tool_calls() -> None:
    trace = import_swe(EXAMPLE)
    calc = _by_id(trace.requests)["calc__add-overflow__a1"]
    assert isinstance(calc.system, TextContent) and calc.system.text.startswith("You drive")
    assert isinstance(calc.query, TextContent)
    assert calc.query.text.startswith("Task Description:")
    assert [len(c.tool_calls) for c in calc.calls] == [2, 2, 0]  # final mark_task_complete dropped
    first = calc.calls[0].tool_calls
    assert [t.latency_s for t in first] == [0.1, 0.1] and first[0].at is None
    assert first[0].result == TextContent(text="")  # the batch's screen goes to its last call
    assert isinstance(first[1].result, TextContent) and "test_ops.py" in first[1].result.text
    assert [t.latency_s for t in calc.calls[1].tool_calls] == [0.1, 3.0]
    assert all(r.arrival_s == 0 for r in trace)


def test_swe_turn_without_tool_calls_hands_feedback_to_next_call() -> None:
    notes = _by_id(import_swe(EXAMPLE).requests)["notes__empty-title__b2"]
    assert not notes.calls[0].tool_calls
    assert isinstance(notes.calls[1].extra_input, TextContent)
    assert "no tool calls" in notes.calls[1].extra_input.text
    assert notes.calls[1].tool_calls[0].latency_s == 1.0  # terminus' default duration


def _swe(tmp_path: Path, messages: Any) -> Path:
    path = tmp_path / "swe.json"
    path.write_text(json.dumps({"task-1": {"request_id": "task-1", "messages": messages}}))
    return path


@pytest.mark.parametrize(
    ("messages", "record"),
    [
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            r"task-1: messages\[1\]",
        ),
        ([{"role": "user", "content": 3}], r"task-1: messages\[0\]"),
        ("nope", "task-1"),
        ([{"role": "user", "content": "hi"}], "task-1"),
    ],
    ids=["not-alternating", "non-text", "no-list", "no-assistant"],
)
def test_swe_malformed_trajectory_is_named(tmp_path: Path, messages: Any, record: str) -> None:
    with pytest.raises(TraceImportError, match=rf"swe\.json: {record}"):
        import_swe(_swe(tmp_path, messages))


def test_swe_broken_tool_call_block_stays_text(tmp_path: Path) -> None:
    trace = import_swe(
        _swe(
            tmp_path,
            [
                {"role": "user", "content": "do it"},
                {"role": "assistant", "content": "<tool_call>{broken</tool_call>"},
                {"role": "user", "content": "could not parse"},
                {"role": "assistant", "content": "done"},
            ],
        )
    )
    (req,) = trace.requests
    assert not req.calls[0].tool_calls and req.calls[1].extra_input is not None
    assert "1 unparseable" in trace.header.description


@needs_shared
def test_swe_real_trajectories() -> None:
    trace = import_swe(SHARED / "sutradhara-swe" / "swe_bench_trace.json", max_requests=4)
    assert len(trace) == 4 and len({r.group for r in trace}) == 1
    for r in trace:
        assert len(r.calls) >= 3
        assert all(
            t.name in ("bash_command", "mark_task_complete") for c in r.calls for t in c.tool_calls
        )


# --- shipped samples --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["sample-websearch.jsonl", "sample-swe.jsonl", "sample-weka.jsonl", "sample-mooncake.jsonl"],
)
def test_shipped_samples_are_what_the_importers_produce(name: str) -> None:
    if name in ("sample-weka.jsonl", "sample-mooncake.jsonl") and not SHARED.is_dir():
        pytest.skip("public traces folder absent")
    built = sample_builders(SHARED, REPO_TRACES)[name]()
    assert load_trace(REPO_TRACES / name) == built
