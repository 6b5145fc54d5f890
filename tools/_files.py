"""Read-only file tools confined to a workspace: ``read_file``, ``list_dir``, ``search_files``.

``file_tools(root)`` builds the three tools around one ``Workspace``; every path the model
gives goes through ``Workspace.resolve`` and every answer is bounded in size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._search import BINARY_SNIFF_BYTES, SearchBounds, compile_pattern, is_binary, search
from ._tool import Tool, ToolFailure, tool
from ._workspace import Workspace, file_kind, open_regular

_SEARCH_BUDGET_S = 20.0  # below search_files' 30 s timeout: the search stops on its own


@dataclass(frozen=True, slots=True)
class FileLimits:
    """Bounds on what the file tools read and return.

    Attributes:
        max_read_bytes: the most bytes ``read_file`` returns in one call.
        max_entries: the most entries ``list_dir`` lists.
        max_matches: the most matching lines ``search_files`` returns.
        max_search_file_bytes: larger files are skipped by ``search_files``.
        max_search_files: ``search_files`` stops after reading this many files.
    """

    max_read_bytes: int = 64_000
    max_entries: int = 500
    max_matches: int = 100
    max_search_file_bytes: int = 2_000_000
    max_search_files: int = 5_000

    def __post_init__(self) -> None:
        for name in (
            "max_read_bytes",
            "max_entries",
            "max_matches",
            "max_search_file_bytes",
            "max_search_files",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"FileLimits.{name} must be positive, got {getattr(self, name)}")


def _existing(workspace: Workspace, path: str, field: str) -> Path:
    resolved = workspace.resolve(path, field=field)
    if not resolved.exists():
        raise ToolFailure(f"{field}: {path!r} does not exist")
    return resolved


def _skip_lines(f: BinaryIO, count: int) -> int:
    """Skip up to ``count`` lines; answers how many were skipped (fewer at end of file)."""
    skipped = 0
    while skipped < count:
        # Bounded reads: one gigantic line must not be loaded whole just to be skipped.
        chunk = f.readline(1 << 20)
        if not chunk:
            break
        if chunk.endswith(b"\n"):
            skipped += 1
    return skipped


def _read_lines(
    target: Path, shown: str, start_line: int, max_lines: int | None, limit: int
) -> str:
    with open_regular(target, shown=shown) as f:
        if is_binary(f.read(BINARY_SNIFF_BYTES)):
            raise ToolFailure(f"path: {shown!r} is a binary file; only text files can be read")
        f.seek(0)
        skipped = _skip_lines(f, start_line - 1)
        if skipped < start_line - 1:
            raise ToolFailure(
                f"start_line: {start_line} is past the end of {shown!r} ({skipped} lines)"
            )
        out = bytearray()
        line_no = start_line
        while max_lines is None or line_no < start_line + max_lines:
            room = limit - len(out)
            line = f.readline(room + 1)  # one byte more than fits tells "too long" apart
            if not line:
                break
            if len(line) > room:
                # Cut on a line boundary (unless one line alone is too long) and say how
                # to continue, so the model can page through a big file.
                if not out:
                    out += line[:limit]
                    next_hint = f"line {line_no} was cut at {limit:,} bytes"
                else:
                    next_hint = f"continue with start_line={line_no}"
                text = out.decode("utf-8", errors="replace")
                size = target.stat().st_size
                newline = "" if text.endswith("\n") else "\n"
                return f"{text}{newline}[... truncated at {limit:,} bytes of {size:,}; {next_hint}]"
            out += line
            line_no += 1
        return out.decode("utf-8", errors="replace")


def _list(workspace: Workspace, target: Path, max_entries: int) -> str:
    with os.scandir(target) as it:
        entries = sorted(it, key=lambda e: e.name)
    lines: list[str] = []
    for entry in entries[:max_entries]:
        if entry.is_symlink():
            lines.append(f"{entry.name}@")
        elif entry.is_dir():
            lines.append(f"{entry.name}/")
        elif entry.is_file():
            lines.append(f"{entry.name}  {entry.stat().st_size:,} bytes")
        else:
            lines.append(f"{entry.name}  ({file_kind(entry.stat().st_mode)}, not readable)")
    if len(entries) > max_entries:
        lines.append(f"[... {len(entries) - max_entries:,} more entries not shown]")
    if not lines:
        return f"{workspace.relative(target)} is empty"
    return "\n".join(lines)


def file_tools(root: str | os.PathLike[str], *, limits: FileLimits | None = None) -> list[Tool]:
    """The read-only file tools ``read_file``, ``list_dir`` and ``search_files`` for ``root``.

    Args:
        root: an existing directory; the tools cannot see anything outside it.
        limits: size bounds of what the tools read and return (defaults: ``FileLimits()``).

    Returns:
        The three tools, each side-effect free.

    Raises:
        ValueError: ``root`` is not an existing directory.
    """
    workspace = Workspace.at(root)
    lim = limits or FileLimits()
    bounds = SearchBounds(
        max_matches=lim.max_matches,
        max_file_bytes=lim.max_search_file_bytes,
        max_files=lim.max_search_files,
        budget_s=_SEARCH_BUDGET_S,
    )

    @tool(name="read_file", timeout_s=10.0, expected_latency_s=0.005, side_effect_free=True)
    def read_file(path: str, start_line: int = 1, max_lines: int | None = None) -> str:
        """Read a text file of the workspace; a long file is cut, saying which start_line continues.

        Args:
            path: file path relative to the workspace root.
            start_line: first line to return (1-based).
            max_lines: return at most this many lines (default: as many as fit the size limit).
        """
        if start_line < 1:
            raise ToolFailure(f"start_line: must be >= 1, got {start_line}")
        if max_lines is not None and max_lines < 1:
            raise ToolFailure(f"max_lines: must be >= 1, got {max_lines}")
        target = _existing(workspace, path, "path")
        if target.is_dir():
            raise ToolFailure(f"path: {path!r} is a directory; use list_dir to see its contents")
        return _read_lines(target, path, start_line, max_lines, lim.max_read_bytes)

    @tool(name="list_dir", timeout_s=10.0, expected_latency_s=0.005, side_effect_free=True)
    def list_dir(path: str = ".") -> str:
        """List a workspace folder, one entry per line.

        Folders end with '/', symlinks with '@'; files show their size.

        Args:
            path: folder path relative to the workspace root ('.' is the root).
        """
        target = _existing(workspace, path, "path")
        if not target.is_dir():
            raise ToolFailure(f"path: {path!r} is a file, not a folder; use read_file")
        return _list(workspace, target, lim.max_entries)

    @tool(name="search_files", timeout_s=30.0, expected_latency_s=0.1, side_effect_free=True)
    def search_files(
        pattern: str,
        path: str = ".",
        glob: str = "*",
        regex: bool = False,
        ignore_case: bool = False,
    ) -> str:
        """Search text files of the workspace for lines containing a pattern (like grep -rn).

        Answers one 'file:line: text' per matching line, or 'no matches'. Binary files,
        very large files, special files (pipes, devices) and folders such as .git and
        node_modules are skipped.

        Args:
            pattern: the text to look for (a regular expression if regex is true).
            path: folder (searched recursively) or file to search, relative to the workspace root.
            glob: only search files whose name matches this pattern, e.g. '*.py'.
            regex: treat pattern as a regular expression (RE2 syntax: no backreferences or
                look-around).
            ignore_case: match regardless of letter case.
        """
        matcher = compile_pattern(pattern, regex, ignore_case)
        start = _existing(workspace, path, "path")
        return search(workspace, start, matcher, glob, bounds)

    return [read_file, list_dir, search_files]
