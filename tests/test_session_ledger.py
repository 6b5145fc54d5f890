"""SessionLedger: one engine's account of the sessions it served, bounded; its JSON form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.engine._session_ledger import SessionLedger, SessionRecord, decode_sessions


def test_requests_and_releases_are_counted_per_session() -> None:
    ledger = SessionLedger()
    ledger.on_request("a")
    ledger.on_request("a")
    ledger.on_request("b")
    ledger.on_release("a", 5)
    assert ledger.get("a") == SessionRecord(requests=2, releases=1, released_blocks=5)
    assert ledger.get("b") == SessionRecord(requests=1)
    assert ledger.get("c") is None


def test_the_least_recently_seen_session_is_forgotten_first_and_counted() -> None:
    ledger = SessionLedger(capacity=2)
    ledger.on_request("a")
    ledger.on_request("b")
    ledger.on_release("a", 0)  # a is now the most recently seen
    ledger.on_request("c")
    assert list(ledger.to_json()["sessions"]) == ["a", "c"]
    assert ledger.forgotten == 1 and len(ledger) == 2


def test_a_ledger_needs_room_for_one_session() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SessionLedger(capacity=0)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({}, "'sessions' must be an object"),
        ({"sessions": {"a": 3}}, "the record of 'a' must be an object"),
        ({"sessions": {"a": {"requests": -1}}}, "requests must be a non-negative integer"),
        ({"sessions": {"a": {"releases": True}}}, "releases must be a non-negative integer"),
        ({"sessions": {"a": {"released_blocks": "2"}}}, "released_blocks must be"),
    ],
)
def test_a_bad_sessions_payload_is_an_error_naming_the_field(
    payload: dict[str, object], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        decode_sessions(payload)


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.none() | st.integers(0, 9)),
        max_size=40,
    ),
    st.integers(1, 6),
)
def test_the_json_form_reads_back_as_what_the_ledger_holds(
    events: list[tuple[str, int | None]], capacity: int
) -> None:
    ledger = SessionLedger(capacity)
    for session, demoted in events:
        if demoted is None:
            ledger.on_request(session)
        else:
            ledger.on_release(session, demoted)
    decoded = decode_sessions(ledger.to_json())
    assert decoded == {s: ledger.get(s) for s in decoded}
    assert len(decoded) == len(ledger) <= capacity
    assert len(ledger) + ledger.forgotten >= len({s for s, _ in events})
