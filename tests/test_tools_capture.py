"""OutputCapture: bounded head + tail of a stream, with exact byte accounting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentrt.tools._capture import OutputCapture, truncate_text


def test_short_output_is_kept_whole() -> None:
    capture = OutputCapture(100)
    capture.feed(b"hello ")
    capture.feed(b"world")
    assert capture.text() == "hello world"
    assert not capture.truncated


def test_long_output_keeps_head_and_tail_around_a_marker() -> None:
    capture = OutputCapture(9, tail_fraction=1 / 3)
    for chunk in (b"abcdef", b"ghijkl", b"mnop"):
        capture.feed(chunk)
    assert capture.text() == "abcdef\n[... 7 bytes truncated ...]\nnop"
    capture.check_integrity()


def test_truncate_text_cuts_to_the_limit() -> None:
    text = truncate_text("x" * 50 + "y" * 50, 30)
    assert text.startswith("x" * 20) and text.endswith("y" * 10)
    assert "[... 70 bytes truncated ...]" in text


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(0, 120))
def test_accounting_holds_and_kept_bytes_are_the_streams_head_and_tail(
    chunks: list[bytes], limit: int
) -> None:
    capture = OutputCapture(limit)
    for chunk in chunks:
        capture.feed(chunk)
    capture.check_integrity()
    whole = b"".join(chunks)
    assert bytes(capture.head) == whole[: len(capture.head)]
    assert whole.endswith(bytes(capture.tail))
    assert len(capture.head) + len(capture.tail) == min(len(whole), limit)
    if len(whole) <= limit:
        assert not capture.truncated
