"""The "agentrt-trace/1" format: round trips, and errors that name file, line and request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentrt.replay as replay
from agentrt.replay import (
    Call,
    SyntheticConfig,
    TextContent,
    TokenContent,
    ToolCall,
    Trace,
    TraceError,
    TraceHeader,
    TraceRequest,
    TraceRequestId,
    content_token_ids,
    dump_trace,
    generate_synthetic,
    load_trace,
)

REPO_TRACES = Path(__file__).resolve().parents[1] / "traces"


def _request(rid: str = "r1", **overrides: object) -> TraceRequest:
    fields: dict[str, object] = {
        "id": TraceRequestId(rid),
        "arrival_s": 1.5,
        "group": "g",
        "system": TokenContent(tokens=6, hash_ids=(1, 2)),
        "query": TextContent(text="find the weather in Oslo"),
        "calls": (
            Call(
                output=TokenContent(tokens=10),
                tool_calls=(
                    ToolCall(
                        name="search",
                        at=4,
                        latency_s=0.25,
                        result=TextContent(text="rain"),
                        arguments={"q": "oslo"},
                    ),
                ),
            ),
            Call(output=TextContent(text="{not json"), gap_s=0.5),
            Call(output=TextContent(text="It rains."), extra_input=TextContent(text="answer!")),
        ),
    }
    fields.update(overrides)
    return TraceRequest.model_validate(fields)


def _header(**overrides: object) -> TraceHeader:
    fields: dict[str, object] = {"source": "test", "hash_block_tokens": 4}
    fields.update(overrides)
    return TraceHeader.model_validate(fields)


def _write_lines(path: Path, lines: Sequence[object]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    return path


def _valid_lines() -> list[dict[str, object]]:
    trace = Trace(_header(), (_request("a"), _request("b")))
    return [
        trace.header.model_dump(mode="json"),
        *(r.model_dump(mode="json") for r in trace.requests),
    ]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    trace = Trace(_header(license="CC0"), (_request("a"), _request("b", group=None)))
    dump_trace(trace, tmp_path / "t.jsonl")
    assert load_trace(tmp_path / "t.jsonl") == trace


def test_round_trip_through_gzip(tmp_path: Path) -> None:
    trace = generate_synthetic(SyntheticConfig(n_requests=3))
    dump_trace(trace, tmp_path / "t.jsonl.gz")
    assert load_trace(tmp_path / "t.jsonl.gz") == trace


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 4), scale=st.sampled_from([1.0, 0.25]))
def test_round_trip_of_generated_traces(
    tmp_path_factory: pytest.TempPathFactory, seed: int, n: int, scale: float
) -> None:
    path = tmp_path_factory.mktemp("rt") / "t.jsonl"
    trace = generate_synthetic(SyntheticConfig(n_requests=n, seed=seed, token_scale=scale))
    dump_trace(trace, path)
    assert load_trace(path) == trace


def test_dump_leaves_defaults_out_and_writes_header_first(tmp_path: Path) -> None:
    dump_trace(Trace(_header(), (_request(),)), tmp_path / "t.jsonl")
    lines = [orjson.loads(x) for x in (tmp_path / "t.jsonl").read_bytes().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["schema"] == "agentrt-trace/1"
    assert lines[1]["type"] == "request"
    assert "gap_s" not in lines[1]["calls"][0] and lines[1]["calls"][1]["gap_s"] == 0.5


@pytest.mark.parametrize(
    "shipped", sorted(REPO_TRACES.glob("sample-*.jsonl")), ids=lambda p: p.name
)
def test_shipped_samples_load(shipped: Path) -> None:
    trace = load_trace(shipped)
    assert len(trace) >= 2
    assert all(not r.calls[-1].tool_calls for r in trace)


def _error_for(tmp_path: Path, lines: Sequence[object]) -> TraceError:
    path = _write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    return info.value


def test_error_names_file_line_and_request(tmp_path: Path) -> None:
    lines = _valid_lines()
    lines[2]["calls"][0]["tool_calls"][0]["latency_s"] = -1.0  # type: ignore[index]
    err = _error_for(tmp_path, lines)
    assert (err.line, err.request_id) == (3, "b")
    assert "bad.jsonl" in str(err) and "line 3" in str(err) and "'b'" in str(err)
    assert "calls.0.tool_calls.0.latency_s" in str(err)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: r["calls"][2].update(
                tool_calls=[{"name": "s", "latency_s": 0, "result": {"tokens": 1}}]
            ),
            "the last call must make no tool calls",
        ),
        (lambda r: r["calls"][0]["tool_calls"][0].update(at=11), "past the output"),
        (lambda r: r["calls"][1]["output"].update(text=""), "at least one token"),
        (lambda r: r.update(colour="red"), "colour"),
        (lambda r: r.update(calls=[]), "calls"),
        (lambda r: r.update(arrival_s="1"), "arrival_s"),
        (lambda r: r["system"].update(hash_ids=[1, 2, 3]), "need 2 ids"),
        (lambda r: r["system"].update(hash_ids=[1, 9]), "group 'g'"),
        (lambda r: r.update(id="a"), "duplicate"),
        (lambda r: r["calls"][2].pop("extra_input"), "followed by a call with extra_input"),
    ],
    ids=[
        "final-tool-call",
        "at-past-output",
        "empty-output",
        "unknown-field",
        "no-calls",
        "string-number",
        "hash-count",
        "group-system",
        "duplicate-id",
        "dangling-no-tool-call",
    ],
)
def test_invalid_requests_are_rejected_with_their_line(
    tmp_path: Path, mutate: object, expected: str
) -> None:
    lines = _valid_lines()
    mutate(lines[2])  # type: ignore[operator]
    err = _error_for(tmp_path, lines)
    assert err.line == 3
    assert expected in str(err)


def test_position_needs_a_token_count_output() -> None:
    with pytest.raises(ValueError, match="token-count output"):
        Call(
            output=TextContent(text="call search"),
            tool_calls=(ToolCall(name="s", at=1, latency_s=0, result=TextContent(text="")),),
        )


def test_positions_may_not_go_backwards() -> None:
    tc = [ToolCall(name="s", at=a, latency_s=0, result=TokenContent(tokens=1)) for a in (5, 3)]
    with pytest.raises(ValueError, match="before the previous"):
        Call(output=TokenContent(tokens=9), tool_calls=tuple(tc))


def test_bad_header_and_empty_file_name_line_one(tmp_path: Path) -> None:
    err = _error_for(tmp_path, [{"type": "header", "schema": "agentrt-trace/2", "source": "x"}])
    assert err.line == 1 and "schema" in str(err)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(TraceError, match="line 1"):
        load_trace(tmp_path / "empty.jsonl")


def test_non_json_line_is_reported(tmp_path: Path) -> None:
    lines = _valid_lines()
    path = _write_lines(tmp_path / "bad.jsonl", lines)
    path.write_bytes(path.read_bytes() + b"{oops\n")
    with pytest.raises(TraceError, match="line 4"):
        load_trace(path)


def test_hash_ids_need_a_block_size_in_the_header(tmp_path: Path) -> None:
    lines = _valid_lines()
    lines[0]["hash_block_tokens"] = None
    assert "declares no hash_block_tokens" in str(_error_for(tmp_path, lines))


def test_building_a_trace_in_code_runs_the_same_checks() -> None:
    with pytest.raises(TraceError, match=r"requests\[1\]\.id: duplicate"):
        Trace(_header(), (_request("a"), _request("a")))


def test_equal_hash_ids_give_equal_tokens_and_partial_blocks_are_prefixes() -> None:
    def ids(tokens: int, hash_ids: tuple[int, ...], key: str) -> list[int]:
        content = TokenContent(tokens=tokens, hash_ids=hash_ids)
        return content_token_ids(content, block_tokens=4, key=key, low=10, high=1000)

    full, part, other = ids(8, (7, 8), "x"), ids(6, (7, 8), "y"), ids(4, (9,), "x")
    assert len(full) == 8 and part == full[:6] and other != full[:4]
    assert all(10 <= t < 1000 for t in full)


def test_unique_content_is_deterministic_per_key() -> None:
    def ids(key: str) -> list[int]:
        content = TokenContent(tokens=20)
        return content_token_ids(content, block_tokens=None, key=key, low=0, high=50000)

    assert ids("r1/calls.0.output") == ids("r1/calls.0.output")
    assert ids("r1/calls.0.output") != ids("r2/calls.0.output")


def _isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_public_names_are_sorted_and_exist() -> None:
    assert replay.__all__ == sorted(replay.__all__, key=_isort_key)
    assert all(hasattr(replay, name) for name in replay.__all__)
