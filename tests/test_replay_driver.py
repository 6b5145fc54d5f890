"""The replay driver on ScriptedEngine and virtual time: exact FTRs, determinism, forced
outputs, and the stable vocabulary's round trip with the real model tokenizer."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.cli._replay import add_arguments, main
from agentrt.engine import (
    ByteCodec,
    ChatMessage,
    ChatTokenizer,
    Engine,
    ModelNotAvailableError,
    ScriptedEngine,
    TimingModel,
    prepare_default_model,
)
from agentrt.replay import (
    Call,
    SyntheticConfig,
    TokenContent,
    ToolCall,
    Trace,
    TraceHeader,
    TraceRequest,
    generate_synthetic,
    load_trace,
)
from agentrt.replay.report._page import render_page
from agentrt.replay.report._results import ReplayRun
from agentrt.replay.run._driver import replay_all
from agentrt.replay.run._layout import PlannedCall, call_positions, markup_text, token_output
from agentrt.replay.run._plan import ReplayPlan, build_plan
from agentrt.replay.run._replay_engine import ReplayEngine
from agentrt.replay.run._replay_tools import replay_tools
from agentrt.replay.run._sources import PoissonLoad, ScriptedSource, mode_switches
from agentrt.replay.run._vocab import stable_vocab
from agentrt.testing import run_virtual

P = 0.001  # prefill seconds per uncached token
D = 0.01  # seconds per decode step
BS = 16
TOOL_S = 0.5
AT = 70  # the recorded position at which the tool call's JSON closes
TAIL = len("\n</tool_call>")
TRACES = Path(__file__).resolve().parents[1] / "traces"


def two_call_trace() -> Trace:
    """One request: a call whose tool call closes at AT (the output ends right after its
    markup), then the final answer."""
    n0 = AT + TAIL + 1  # ... JSON | "\n</tool_call>" | <|im_end|>
    first = Call(
        output=TokenContent(tokens=n0),
        tool_calls=(
            ToolCall(name="search", at=AT, latency_s=TOOL_S, result=TokenContent(tokens=30)),
        ),
    )
    request = TraceRequest(
        id="r0",
        arrival_s=0.0,
        group="g",
        system=TokenContent(tokens=40, hash_ids=tuple(range(10))),
        query=TokenContent(tokens=10),
        calls=(first, Call(output=TokenContent(tokens=20))),
    )
    return Trace(TraceHeader(source="test", hash_block_tokens=4), (request,))


def replay(plan: ReplayPlan, modes: list[str], rate: float = 1.0, seed: int = 0) -> list[ReplayRun]:
    source = ScriptedSource(TimingModel(prefill_s_per_token=P, decode_step_s=D), block_size=BS)

    async def go() -> list[ReplayRun]:
        loads = [PoissonLoad(rate, seed)]
        return await replay_all(plan, [mode_switches(m) for m in modes], loads, source)

    return run_virtual(go)


def test_ftr_per_mode_equals_the_timing_model() -> None:
    tok = ChatTokenizer(ByteCodec())
    plan = build_plan(two_call_trace(), tok)
    base, all_on = (run.records[0] for run in replay(plan, ["baseline", "all"]))
    # Prompt 0 by hand: header with the replay tool, the query, the generation prompt.
    schemas = [t.schema for t in replay_tools(plan.replies, plan.tool_names)]
    req = plan.requests[0]
    msgs = [ChatMessage("system", req.system), ChatMessage("user", req.turns[0].message)]
    p0 = len(tok.render(msgs, schemas, add_generation_prompt=True))
    n0 = AT + TAIL + 1
    assert len(req.outputs[0].ids) == n0 and req.outputs[0].closes == (AT,)
    first_token = p0 * P
    result_msg = tok.render_message(ChatMessage("tool", plan.replies["0"].text, tool_call_id="x"))
    split_a = p0 + n0 + len(tok.turn_close)
    p1 = split_a + len(result_msg) + len(tok.generation_prompt)
    for rec in (base, all_on):
        prompts = [c.prompt_tokens for c in rec.calls if c.kind == "generate"]
        assert rec.error is None and prompts[1] == p1
    # Baseline: the tool starts after the last token; the cache holds prompt 0 + output 0.
    tool_end = first_token + (n0 - 1) * D + TOOL_S
    cached = (p0 + n0) // BS * BS
    assert base.ftr_s == pytest.approx(tool_end + (p1 - cached) * P, abs=1e-9)
    # All on: the tool starts on the token closing its JSON; split A was prefilled meanwhile.
    tool_end = first_token + (AT - 1) * D + TOOL_S
    cached = split_a // BS * BS
    assert all_on.ftr_s == pytest.approx(tool_end + (p1 - cached) * P, abs=1e-9)
    assert [c.kind for c in all_on.calls] == ["generate", "prefill", "generate"]


def test_canonical_outputs_keep_the_baseline_from_diverging() -> None:
    plan = build_plan(
        generate_synthetic(SyntheticConfig(n_requests=3, token_scale=0.25)),
        ChatTokenizer(ByteCodec()),
    )
    (run,) = replay(plan, ["baseline"])
    assert run.summary.n_failed == 0 and run.summary.diverged_calls == 0


def _streams(run: ReplayRun) -> tuple[object, ...]:
    t0 = min(r.arrival_t for r in run.records)
    return tuple(
        (r.arrival_t - t0, tuple((c.kind, c.prompt_ids, c.output_ids) for c in r.calls))
        for r in run.records
    )


def test_same_seed_replays_identical_arrivals_and_tokens_and_another_seed_differs() -> None:
    trace = generate_synthetic(SyntheticConfig(n_requests=4, token_scale=0.2))
    tok = ChatTokenizer(ByteCodec())

    def streams(seed: int) -> tuple[object, ...]:
        (run,) = replay(build_plan(trace, tok, seed=seed), ["all"], rate=2.0, seed=seed)
        return _streams(run)

    a, b, c = streams(1), streams(1), streams(2)
    assert a == b
    assert [x[0] for x in a] != [x[0] for x in c]  # arrivals
    assert [x[1] for x in a] != [x[1] for x in c]  # tokens


def test_forced_outputs_are_the_same_in_every_mode() -> None:
    plan = build_plan(
        generate_synthetic(SyntheticConfig(n_requests=3, token_scale=0.2)),
        ChatTokenizer(ByteCodec()),
    )
    runs = replay(plan, ["baseline", "stream_tools", "all"])
    outputs = {
        tuple(tuple(c.output_ids for c in r.calls if c.kind == "generate") for r in run.records)
        for run in runs
    }
    assert len(outputs) == 1


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 400),
    steps=st.lists(st.integers(1, 150), max_size=3),
    last_at_end=st.booleans(),
)
def test_each_calls_json_closes_on_its_recorded_token(
    n: int, steps: list[int], last_at_end: bool
) -> None:
    tok = ChatTokenizer(ByteCodec())
    ats = [sum(steps[: j + 1]) for j in range(len(steps))]
    calls = [PlannedCall("search", str(j), at) for j, at in enumerate(ats)]
    if calls and last_at_end:
        calls[-1] = PlannedCall("search", calls[-1].key, None)
    out = token_output(tok, stable_vocab(tok), n, calls, list(range(n)))
    # Where the orchestrator's parser completes each call is where the layout says.
    assert [p for p, _ in call_positions(tok, out.ids)] == list(out.closes)
    assert out.ids[-1] == tok.im_end_id and len(out.ids) == n + out.lengthened
    # Recorded positions that leave room for the markup are met exactly (byte tokens).
    m = len(markup_text("search", {"id": "0"}))
    fits = bool(ats) and ats[0] >= m - TAIL and n >= ats[-1] + TAIL + 1
    fits = fits and all(b - a >= m + 1 for a, b in itertools.pairwise(ats))
    if fits and not last_at_end:
        assert out.closes == tuple(ats) and out.shifted == 0 and len(out.ids) == n
    if fits and last_at_end:
        assert out.closes[:-1] == tuple(ats[:-1]) and out.closes[-1] == n - 1 - TAIL


@functools.cache
def _model_tokenizer() -> ChatTokenizer:
    return ChatTokenizer.from_folder(prepare_default_model())


def real_tokenizer() -> ChatTokenizer:
    try:
        return _model_tokenizer()  # loaded (and its vocabulary scanned) once
    except ModelNotAvailableError as exc:
        pytest.skip(f"default model not prepared: {exc}")


@settings(max_examples=200, deadline=None)
@given(indices=st.lists(st.integers(0, 10**6), max_size=60), head=st.booleans())
def test_stable_vocabulary_round_trips_with_the_model_tokenizer(
    indices: list[int], head: bool
) -> None:
    tok = real_tokenizer()
    vocab = stable_vocab(tok)
    text, ids = vocab.text(indices, head=head), vocab.ids(indices, head=head)
    assert tok.encode(text) == ids
    # ... also where the orchestrator puts content: a message body and a tool response.
    contexts = [
        ("<|im_start|>user\n", "<|im_end|>\n"),
        ("<|im_start|>user\n<tool_response>\n", "\n</tool_response><|im_end|>\n"),
    ]
    for before, after in contexts:
        assert tok.encode(before + text + after) == tok.encode(before) + ids + tok.encode(after)


def test_model_tokenizer_outputs_close_on_their_recorded_tokens() -> None:
    tok = real_tokenizer()
    calls = [PlannedCall("web_search", "12", 40), PlannedCall("web_search", "13", 80)]
    out = token_output(tok, stable_vocab(tok).shuffled(3), 100, calls, list(range(100)))
    assert out.closes == (40, 80) and len(out.ids) == 100 and out.shifted == 0
    assert [p for p, _ in call_positions(tok, out.ids)] == [40, 80]


def test_text_traces_replay_verbatim_tool_results() -> None:
    trace = load_trace(TRACES / "sample-swe.jsonl")
    (run,) = replay(build_plan(trace, ChatTokenizer(ByteCodec())), ["all"])
    assert run.summary.n_failed == 0
    tok = ChatTokenizer(ByteCodec())
    last_prompt = tok.decode(run.records[0].calls[-1].prompt_ids)
    assert "3 passed in 0.02s" in last_prompt


def test_extra_input_starts_a_new_turn_of_the_same_session() -> None:
    calls = (
        Call(output=TokenContent(tokens=5)),
        Call(output=TokenContent(tokens=5), extra_input=TokenContent(tokens=7)),
    )
    request = TraceRequest(
        id="r",
        arrival_s=0.0,
        system=TokenContent(tokens=8),
        query=TokenContent(tokens=3),
        calls=calls,
    )
    plan = build_plan(Trace(TraceHeader(source="test"), (request,)), ChatTokenizer(ByteCodec()))
    assert [t.n_calls for t in plan.requests[0].turns] == [1, 1]
    (run,) = replay(plan, ["all"])
    (rec,) = run.records
    first, second = (c for c in rec.calls if c.kind == "generate")
    assert rec.error is None and second.prompt_ids[: len(first.prompt_ids)] == first.prompt_ids


def test_replay_engine_is_an_engine() -> None:
    assert isinstance(ReplayEngine(ScriptedEngine()), Engine)


def test_cli_replays_on_the_scripted_engine_and_writes_the_report(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--trace",
            str(TRACES / "sample-websearch.jsonl"),
            "--engine",
            "scripted",
            "--modes",
            "baseline,all",
            "--rates",
            "1,4",
            "--out",
            str(tmp_path),
            "--no-plots",
        ]
    )
    assert main(args) == 0
    text = (tmp_path / "summary.md").read_text()
    assert "| baseline | 6/6 |" in text and "| all | 6/6 |" in text
    page = render_page([tmp_path], tmp_path.parent / "RESULTS.md")
    assert f"| {tmp_path.name} | all |" in page


@pytest.mark.parametrize("switch", ["token_log", "stream_tools", "split_prefill", "run_priority"])
def test_leave_one_out_modes_turn_off_exactly_one_switch(switch: str) -> None:
    s = mode_switches(f"all-{switch}")
    assert not getattr(s, switch)
    assert sum(getattr(s, f.name) for f in dataclasses.fields(s)) == len(dataclasses.fields(s)) - 1
    assert s.label() == f"all-{switch}"
    assert mode_switches(switch).label() == switch


@pytest.mark.parametrize("bad", ["all-", "all-baseline", "everything", "all-all"])
def test_unknown_modes_are_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad)):
        mode_switches(bad)
