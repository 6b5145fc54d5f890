"""Finds where a JSON value ends in a stream of characters, without parsing it.

The tool-call parsers use it to emit a call the moment its JSON closes, instead of
waiting for the closing tag or the end of the response.
"""

from __future__ import annotations


class JsonEndScanner:
    """Tracks nesting of one JSON object or array fed piecewise.

    Invariants: ``depth`` counts open brackets outside strings; the value is complete
    exactly when a closing bracket brings ``depth`` back to zero; a character other
    than whitespace before the value opens ends the scan (``blocked``), whatever the
    split of the input. Fed characters are kept in ``text`` so the caller can parse
    the value once it is complete.
    """

    __slots__ = ("_escaped", "_in_string", "blocked", "depth", "done", "started", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.depth = 0
        self.started = False
        self.done = False
        self.blocked = False
        self._in_string = False
        self._escaped = False

    def feed(self, chunk: str) -> int:
        """Consume characters until the value completes (or cannot begin).

        Returns:
            How many characters of ``chunk`` belong to the value (all of them if it is
            still open). Leading whitespace before the value is consumed too, and so
            is the first character that blocks it.
        """
        for i, ch in enumerate(chunk):
            if self.done or self.blocked:
                return i
            self.text.append(ch)
            if not self.started:
                if ch in "{[":
                    self.started = True
                    self.depth = 1
                elif not ch.isspace():
                    self.blocked = True
                continue
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
                continue
            if ch == '"':
                self._in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.done = True
                    return i + 1
        return len(chunk)

    @property
    def raw(self) -> str:
        """Everything fed so far, leading whitespace included."""
        return "".join(self.text)

    @property
    def value_text(self) -> str:
        return "".join(self.text).strip()
