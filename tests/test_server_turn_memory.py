"""``TurnMemory`` and ``ChatSessions`` without a server: matching as JSON, per-scope
isolation, LRU and TTL bounds, session keys, learned tool latency, idle release."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentrt._run_priority import RunPriorities
from agentrt.engine import ChatMessage, SessionId, ToolCallPart
from agentrt.server._auth import make_key
from agentrt.server._echo import RememberedTurn, TurnMemory, fingerprint, scope_of
from agentrt.server._sessions import ChatSessions, client_key


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def turn(
    cid: str, content: str = "", calls: list[tuple[str, str, str]] | None = None
) -> RememberedTurn:
    calls = calls or []
    fp = fingerprint(content, [(n, a) for _, n, a in calls])
    assert fp is not None
    return RememberedTurn(cid, (1, 2, 3), fp, tuple(i for i, _, _ in calls), "s", not calls, 2)


def assistant(content: str, calls: list[tuple[str, str, str]] | None = None) -> ChatMessage:
    return ChatMessage("assistant", content, tuple(ToolCallPart(*c) for c in calls or []))


CALL = [("call_1", "add", '{"a": 1, "b": {"x": [1, 2]}}')]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5), st.booleans())
def test_any_re_serialization_of_the_arguments_matches(args: dict[str, Any], compact: bool) -> None:
    mem = TurnMemory(8, 60)
    mem.remember("", turn("c1", "hi", [("call_1", "f", json.dumps(args))]))
    reordered = dict(reversed(list(args.items())))
    text = json.dumps(
        reordered, separators=(",", ":") if compact else None, indent=None if compact else 3
    )
    found = mem.match("", assistant(" hi\n", [("call_1", "f", text)]))
    assert found is not None and found.completion_id == "c1"


def test_a_changed_argument_name_id_or_content_does_not_match() -> None:
    mem = TurnMemory(8, 60)
    mem.remember("", turn("c1", "hi", CALL))
    assert mem.match("", assistant("hi", CALL)) is not None
    assert (
        mem.match("", assistant("hi", [("call_1", "add", '{"a": 2, "b": {"x": [1, 2]}}')])) is None
    )
    assert mem.match("", assistant("hi", [("call_2", "add", CALL[0][2])])) is None
    assert mem.match("", assistant("hello", CALL)) is None
    assert mem.match("", assistant("hi", [*CALL, ("call_9", "add", "{}")])) is None
    assert mem.match("", ChatMessage("user", "hi")) is None


def test_content_only_turns_match_by_their_text() -> None:
    mem = TurnMemory(8, 60)
    mem.remember("", turn("c1", "  The answer is 4.\n"))
    assert mem.match("", assistant("The answer is 4.")).completion_id == "c1"  # type: ignore[union-attr]
    assert mem.match("", assistant("The answer is 5.")) is None


def test_memory_is_per_scope() -> None:
    a, b = scope_of(make_key("key-a")), scope_of(make_key("key-b"))
    assert a != b and "" not in (a, b)
    mem = TurnMemory(8, 60)
    mem.remember(a, turn("c1", "x", CALL))
    assert mem.match(a, assistant("x", CALL)) is not None
    assert mem.match(b, assistant("x", CALL)) is None
    assert mem.match("", assistant("x", CALL)) is None
    assert mem.by_completion(b, "c1") is None and mem.by_completion(a, "c1") is not None


def test_capacity_evicts_the_least_recently_used_and_its_aliases() -> None:
    mem = TurnMemory(2, 60)
    mem.remember("", turn("c1", "", [("id1", "f", "{}")]))
    mem.remember("", turn("c2", "", [("id2", "f", "{}")]))
    assert mem.match("", assistant("", [("id1", "f", "{}")])) is not None  # c1 now newest
    mem.remember("", turn("c3", "", [("id3", "f", "{}")]))
    assert len(mem) == 2
    assert mem.match("", assistant("", [("id2", "f", "{}")])) is None
    assert mem.match("", assistant("", [("id1", "f", "{}")])) is not None
    assert not any(v == "c2" for v in mem._aliases.values())


def test_an_unused_turn_expires() -> None:
    clock = Clock()
    mem = TurnMemory(8, 10, clock)
    mem.remember("", turn("c1", "hi"))
    clock.t = 9
    assert mem.match("", assistant("hi")) is not None  # a use refreshes it
    clock.t = 18
    assert mem.match("", assistant("hi")) is not None
    clock.t = 29
    assert mem.match("", assistant("hi")) is None
    assert len(mem) == 0 and mem._aliases == {}


def test_invalid_argument_text_matches_nothing() -> None:
    assert fingerprint("", [("f", "{not json")]) is None
    assert fingerprint("", [("f", "")]) == fingerprint("", [("f", "{}")])


def test_client_key_precedence() -> None:
    assert client_key("pck", "user", "hdr") == "pck"
    assert client_key(None, "user", "hdr") == "user"
    assert client_key("", None, "hdr") == "hdr"
    assert client_key(None, None, None) is None


def test_sessions_by_key_are_per_scope_and_keep_their_rank_for_a_run() -> None:
    s = ChatSessions(8, 60, priorities=RunPriorities())
    one = s.arrive("a", "conv", None)
    again = s.arrive("a", "conv", None)
    other_scope = s.arrive("b", "conv", None)
    assert one.id == again.id and one.rank == again.rank
    assert other_scope.id != one.id and other_scope.rank > one.rank


def test_a_session_takes_the_run_priorities_of_agent_runs() -> None:
    """A session's run holds a rank from its first request to its final answer (a new
    run of the same conversation takes a new one); eviction and close() let go of it, and
    its requests' priorities are bounded by the gap of the engine's batch."""
    clock = Clock()
    prios = RunPriorities()
    s = ChatSessions(8, 10, clock, prios)
    first = s.arrive("", "a", None)
    later = [s.arrive("", f"b{i}", None) for i in range(5)]
    assert prios.live() == 6
    assert [s.priority(x, max_num_seqs=4) for x in (first, *later)] == [0, 1, 2, 2, 2, 2]
    s.completed("", "a", first, final=True)  # its run is over: the others move up
    assert [s.priority(x, max_num_seqs=4) for x in later] == [1, 2, 3, 3, 3]
    again = s.arrive("", "a", None)  # the conversation goes on: a new run, ranked last
    assert again.id == first.id and again.rank > later[-1].rank
    clock.t = 11  # every session idles out
    assert len(s.take_expired()) == 6 and prios.live() == 0
    s.arrive("", "c", None)
    s.close()
    assert prios.live() == 0
    prios.check_integrity()


def test_a_session_evicted_while_it_ran_comes_back_with_a_live_rank() -> None:
    prios = RunPriorities()
    s = ChatSessions(1, 60, priorities=prios)
    a = s.arrive("", "a", None)
    s.arrive("", "b", None)  # capacity 1: a is evicted, its rank closed
    assert prios.live() == 1
    back = s.completed("", "a", a, final=False)  # a's tool calls: stored again, b evicted
    assert back.rank != a.rank and prios.live() == 1
    s.completed("", "a", back, final=True)
    assert prios.live() == 0
    prios.check_integrity()


def test_inferred_sessions_continue_only_while_live() -> None:
    clock = Clock()
    s = ChatSessions(8, 10, clock, RunPriorities())
    first = s.arrive("", None, None)
    assert s.arrive("", None, first.id).id == first.id
    assert s.arrive("b", None, first.id).id != first.id  # another scope cannot join it
    clock.t = 100
    assert s.arrive("", None, first.id).id != first.id


def test_tool_latency_is_learned_from_the_gap_before_the_next_request() -> None:
    clock = Clock()
    s = ChatSessions(8, 600, clock, RunPriorities())
    sess = s.arrive("", "k", None)
    assert sess.split_ttl() == 10.0  # twice the default before anything is learned
    s.completed("", "k", sess, final=False)
    clock.t = 2.0
    sess = s.arrive("", "k", None)
    assert sess.tool_latency_s == 2.0 and sess.split_ttl() == 4.0
    s.completed("", "k", sess, final=False)
    clock.t = 6.0
    assert s.arrive("", "k", None).tool_latency_s == 3.0  # moving average of 2 and 4


def test_idle_sessions_are_handed_out_for_release_unless_already_released() -> None:
    clock = Clock()
    s = ChatSessions(8, 10, clock, RunPriorities())
    live = s.arrive("", "live", None)
    done = s.arrive("", "done", None)
    s.completed("", "done", done, final=True)
    s.completed("", "live", live, final=False)
    clock.t = 11
    assert s.take_expired() == [SessionId(live.id)]
    assert s.take_expired() == [] and len(s) == 0


def test_capacity_bounds_sessions() -> None:
    s = ChatSessions(2, 60, priorities=RunPriorities())
    ids = [s.arrive("", f"k{i}", None).id for i in range(3)]
    assert len(s) == 2
    assert s.take_expired() == [ids[0]]


def test_a_turn_continues_the_prompt_it_answered() -> None:
    # The prompt ends with the generation prompt (1, 2), which the segment opens with.
    assert turn("c1", "hi").after((9, 1, 2)) == (9, 1, 2, 3)
