"""The text search behind ``search_files``: RE2 patterns, a bounded walk, a time budget.

Patterns come from the model, so they are matched with RE2 (google-re2), whose running
time is linear in the text: no pattern can backtrack catastrophically. RE2 also releases
the GIL while it matches, so the tool's timeout and the rest of the process keep running.
A pattern RE2 does not support (backreferences, look-around) is refused with a clear
error; there is deliberately no fallback to Python's backtracking ``re``.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2

from ._tool import ToolFailure
from ._workspace import Workspace, open_regular

# Folders that are large, generated, and almost never what a text search is after.
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox"})
BINARY_SNIFF_BYTES = 8192
MAX_PATTERN_CHARS = 500
_MAX_LINE_CHARS = 400  # one matching line of a minified file must not fill the answer


@dataclass(frozen=True, slots=True)
class SearchBounds:
    """How much one search may read and answer, and for how long it may run."""

    max_matches: int
    max_file_bytes: int
    max_files: int
    budget_s: float


def is_binary(head: bytes) -> bool:
    """Whether data looks binary (a NUL byte in its first few kilobytes)."""
    return b"\0" in head[:BINARY_SNIFF_BYTES]


def compile_pattern(pattern: str, regex: bool, ignore_case: bool) -> Any:
    """The RE2 matcher for ``pattern`` (a literal text unless ``regex``), matching bytes.

    Raises:
        ToolFailure: empty or too long, or not a regular expression RE2 accepts.
    """
    if not pattern:
        raise ToolFailure("pattern: must not be empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ToolFailure(f"pattern: longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern on stderr
    options.literal = not regex
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern.encode("utf-8", errors="surrogatepass"), options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise ToolFailure(
            f"pattern: invalid regular expression ({reason}); search_files uses RE2 syntax, "
            "which has no backreferences or look-around assertions (use \\z, not \\Z)"
        ) from None


def _candidate_files(start: Path, glob: str) -> Iterator[Path]:
    if not start.is_dir():
        yield start
        return
    # followlinks=False: a linked folder could lead out of the workspace or into a cycle.
    # A generator, so a search that hits its limits stops walking a huge tree early.
    for folder, dirs, files in os.walk(start, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            if fnmatch.fnmatch(name, glob):
                yield Path(folder, name)


def _read_for_search(workspace: Workspace, path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes, or None when it is skipped (special, too large, unreadable, outside)."""
    if not workspace.contains(path):
        return None  # a symlinked file pointing out of the workspace
    try:
        with open_regular(path, shown=workspace.relative(path)) as f:
            if os.fstat(f.fileno()).st_size > max_bytes:
                return None
            return f.read(max_bytes + 1)
    except (ToolFailure, OSError):
        return None  # FIFOs, devices, unreadable or vanished files: not the model's concern


def search(workspace: Workspace, start: Path, matcher: Any, glob: str, bounds: SearchBounds) -> str:
    """Lines matching ``matcher`` under ``start``, one 'file:line: text' each, bounded.

    Raises:
        ToolFailure: ``start`` itself is a special file (a FIFO, a device...).
    """
    if not start.is_dir():
        # A named start must be readable; inside a folder, special files are just skipped.
        open_regular(start, shown=workspace.relative(start)).close()
    deadline = time.monotonic() + bounds.budget_s
    hits: list[str] = []
    files_read = 0
    for path in _candidate_files(start, glob):
        if time.monotonic() > deadline:
            hits.append(f"[... stopped after {bounds.budget_s:g} s; narrow the search]")
            break
        data = _read_for_search(workspace, path, bounds.max_file_bytes)
        if data is None:
            continue
        files_read += 1
        if is_binary(data):
            continue
        shown = workspace.relative(path)
        for line_no, line in enumerate(data.splitlines(), 1):
            if matcher.search(line):
                if len(hits) == bounds.max_matches:
                    limit = bounds.max_matches
                    hits.append(f"[... stopped after {limit} matches; narrow the search]")
                    return "\n".join(hits)
                text = line.decode("utf-8", errors="replace")
                hits.append(f"{shown}:{line_no}: {text[:_MAX_LINE_CHARS]}")
        if files_read >= bounds.max_files:
            hits.append(f"[... stopped after reading {files_read:,} files; narrow the search]")
            break
    return "\n".join(hits) if hits else "no matches"
