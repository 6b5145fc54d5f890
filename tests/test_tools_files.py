"""read_file, list_dir and search_files: normal use, size limits, and refused path escapes."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Awaitable, Iterator
from pathlib import Path

import anyio
import pytest

from agentrt.tools import FileLimits, Tool, ToolFailure, file_tools


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A workspace with a few files, plus a secret file beside (outside) it."""
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.py").write_text("import pkg\nprint('hello')\n# TODO: more\n")
    (root / "src" / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02TODO")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("TODO inside git\n")
    (tmp_path / "secret.txt").write_text("TOP SECRET TODO\n")
    return root


def _tools(root: Path, **limits: int) -> dict[str, Tool]:
    return {t.name: t for t in file_tools(root, limits=FileLimits(**limits))}


@pytest.mark.anyio
async def test_read_file_returns_the_text(layout: Path) -> None:
    tools = _tools(layout)
    assert await tools["read_file"].invoke({"path": "notes.txt"}) == "alpha\nbeta\ngamma\n"


@pytest.mark.anyio
async def test_read_file_pages_by_line(layout: Path) -> None:
    tools = _tools(layout)
    text = await tools["read_file"].invoke({"path": "notes.txt", "start_line": 2, "max_lines": 1})
    assert text == "beta\n"


@pytest.mark.anyio
async def test_read_file_cuts_long_files_and_says_where_to_continue(layout: Path) -> None:
    (layout / "long.txt").write_text("".join(f"line {i}\n" for i in range(1000)))
    tools = _tools(layout, max_read_bytes=100)
    text = await tools["read_file"].invoke({"path": "long.txt"})
    assert text.startswith("line 0\nline 1\n")
    assert text.endswith(
        "line 12\n[... truncated at 100 bytes of 8,890; continue with start_line=14]"
    )


@pytest.mark.anyio
async def test_read_file_cuts_a_single_huge_line(layout: Path) -> None:
    (layout / "minified.js").write_text("x" * 10_000 + "\nnext\n")
    text = await _tools(layout, max_read_bytes=50)["read_file"].invoke({"path": "minified.js"})
    assert text == "x" * 50 + "\n[... truncated at 50 bytes of 10,006; line 1 was cut at 50 bytes]"
    second = await _tools(layout)["read_file"].invoke({"path": "minified.js", "start_line": 2})
    assert second == "next\n"


@pytest.mark.anyio
async def test_read_file_refuses_a_start_line_past_the_end(layout: Path) -> None:
    with pytest.raises(
        ToolFailure, match=r"start_line: 5 is past the end of 'notes.txt' \(3 lines\)"
    ):
        await _tools(layout)["read_file"].invoke({"path": "notes.txt", "start_line": 5})


@pytest.mark.anyio
async def test_read_file_accepts_an_absolute_path_inside_the_workspace(layout: Path) -> None:
    tools = _tools(layout)
    assert (
        await tools["read_file"].invoke({"path": str(layout / "notes.txt")})
        == "alpha\nbeta\ngamma\n"
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing.txt", "does not exist"),
        ("src", "is a directory"),
        ("blob.bin", "binary file"),
        ("", "empty path"),
    ],
)
async def test_read_file_refuses_what_it_cannot_read(layout: Path, path: str, message: str) -> None:
    with pytest.raises(ToolFailure, match=message):
        await _tools(layout)["read_file"].invoke({"path": path})


@pytest.mark.anyio
@pytest.mark.parametrize("tool_name", ["read_file", "list_dir", "search_files"])
@pytest.mark.parametrize("escape", ["dotdot", "absolute", "symlink", "symlinked_dir", "home"])
async def test_paths_outside_the_workspace_are_refused(
    layout: Path, tool_name: str, escape: str
) -> None:
    outside = layout.parent
    os.symlink(outside / "secret.txt", layout / "link.txt")
    os.symlink(outside, layout / "linkdir")
    path = {
        "dotdot": "src/../../secret.txt",
        "absolute": str(outside / "secret.txt"),
        "symlink": "link.txt",
        "symlinked_dir": "linkdir/secret.txt",
        "home": "~/secret.txt",
    }[escape]
    if tool_name == "list_dir":
        path = str(Path(path).parent) if escape != "symlink" else "linkdir"
    arguments = {"path": path}
    if tool_name == "search_files":
        arguments["pattern"] = "SECRET"
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await _tools(layout)[tool_name].invoke(arguments)


@pytest.mark.anyio
async def test_list_dir_marks_folders_links_and_sizes(layout: Path) -> None:
    os.symlink(layout / "notes.txt", layout / "alias")
    listing = await _tools(layout)["list_dir"].invoke({"path": "."})
    assert listing.splitlines() == [
        ".git/",
        "alias@",
        "blob.bin  7 bytes",
        "notes.txt  17 bytes",
        "src/",
    ]


@pytest.mark.anyio
async def test_list_dir_limits_the_number_of_entries(layout: Path) -> None:
    for i in range(10):
        (layout / f"f{i}").write_text("")
    listing = await _tools(layout, max_entries=3)["list_dir"].invoke({})
    assert listing.splitlines()[-1] == "[... 11 more entries not shown]"
    assert len(listing.splitlines()) == 4


@pytest.mark.anyio
async def test_search_files_reports_file_line_and_text(layout: Path) -> None:
    hits = await _tools(layout)["search_files"].invoke({"pattern": "TODO"})
    # Binary files, .git and files outside the workspace are not searched.
    assert hits == "src/main.py:3: # TODO: more"


@pytest.mark.anyio
async def test_search_files_skips_a_symlink_pointing_out(layout: Path) -> None:
    os.symlink(layout.parent / "secret.txt", layout / "link.txt")
    hits = await _tools(layout)["search_files"].invoke({"pattern": "SECRET"})
    assert hits == "no matches"


@pytest.mark.anyio
async def test_search_files_supports_regex_case_and_glob(layout: Path) -> None:
    tools = _tools(layout)
    hits = await tools["search_files"].invoke(
        {"pattern": r"^(import|value)\b", "regex": True, "ignore_case": True, "glob": "*.py"}
    )
    assert hits.splitlines() == ["src/main.py:1: import pkg", "src/pkg/__init__.py:1: VALUE = 1"]
    assert await tools["search_files"].invoke({"pattern": "a", "path": "notes.txt"}) == (
        "notes.txt:1: alpha\nnotes.txt:2: beta\nnotes.txt:3: gamma"
    )


@pytest.mark.anyio
async def test_search_files_stops_at_the_match_limit(layout: Path) -> None:
    (layout / "many.txt").write_text("x\n" * 50)
    hits = await _tools(layout, max_matches=5)["search_files"].invoke({"pattern": "x"})
    lines = hits.splitlines()
    assert len(lines) == 6
    assert lines[-1] == "[... stopped after 5 matches; narrow the search]"


@pytest.mark.anyio
async def test_search_files_refuses_an_invalid_regex(layout: Path) -> None:
    with pytest.raises(ToolFailure, match="pattern: invalid regular expression"):
        await _tools(layout)["search_files"].invoke({"pattern": "(", "regex": True})


def test_file_tools_are_side_effect_free_with_latency_guesses(layout: Path) -> None:
    tools = file_tools(layout)
    assert [t.name for t in tools] == ["read_file", "list_dir", "search_files"]
    assert all(t.side_effect_free and t.expected_latency_s is not None for t in tools)
    assert tools[0].parameters["required"] == ["path"]


def test_root_must_be_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an existing directory"):
        file_tools(tmp_path / "nope")


async def _longest_stall_while(call: Awaitable[str]) -> tuple[str, float]:
    """Run ``call`` while a ticker measures the longest time the event loop stood still."""
    longest = 0.0
    done = anyio.Event()
    result: list[str] = []

    async def tick() -> None:
        nonlocal longest
        last = anyio.current_time()
        while not done.is_set():
            await anyio.sleep(0.01)
            now = anyio.current_time()
            longest = max(longest, now - last)
            last = now

    async def run() -> None:
        try:
            result.append(await call)
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        tg.start_soon(run)
    return result[0], longest


@pytest.mark.anyio
async def test_a_catastrophic_regex_neither_stalls_the_process_nor_the_search(
    layout: Path,
) -> None:
    # (a+)+$ against "aaa...ab" backtracks 2**n ways in Python's re (seconds at n = 26,
    # minutes at n = 30, with the GIL held, so no timeout or other task could run
    # meanwhile). The bounds below are wide so that a loaded machine cannot fail them.
    (layout / "evil.txt").write_text(("a" * 30 + "b\n") * 3)
    search = _tools(layout)["search_files"]
    started = anyio.current_time()
    with anyio.fail_after(10):
        hits, stall = await _longest_stall_while(
            search.invoke({"pattern": "(a+)+$", "regex": True, "path": "evil.txt"})
        )
    assert hits == "no matches"
    assert anyio.current_time() - started < 5.0
    assert stall < 2.0, f"the event loop stood still for {stall:.2f} s"


@pytest.mark.anyio
@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!a)b", r"a\Z"])
async def test_a_regex_re2_cannot_run_is_refused_without_falling_back(
    layout: Path, pattern: str
) -> None:
    with pytest.raises(ToolFailure) as caught:
        await _tools(layout)["search_files"].invoke({"pattern": pattern, "regex": True})
    message = str(caught.value)
    assert message.startswith("pattern: invalid regular expression (")
    assert "RE2 syntax, which has no backreferences or look-around" in message


@pytest.mark.anyio
async def test_search_files_matches_case_insensitively_and_literally(layout: Path) -> None:
    (layout / "mixed.txt").write_text("Price: $5 (approx.)\nprice 6\n")
    tools = _tools(layout)
    literal = await tools["search_files"].invoke({"pattern": "$5 (approx.)", "path": "mixed.txt"})
    assert literal == "mixed.txt:1: Price: $5 (approx.)"
    folded = await tools["search_files"].invoke(
        {"pattern": "PRICE", "ignore_case": True, "path": "mixed.txt"}
    )
    assert folded.splitlines() == ["mixed.txt:1: Price: $5 (approx.)", "mixed.txt:2: price 6"]


@pytest.fixture
def fifo(layout: Path) -> Iterator[Path]:
    """A named pipe in the workspace; unblocked at teardown should any reader still wait."""
    path = layout / "pipe"
    os.mkfifo(path)
    yield path
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool_name", "arguments", "answer"),
    [
        ("read_file", {"path": "pipe"}, "path: 'pipe' is a named pipe (FIFO); only regular"),
        ("search_files", {"pattern": "x", "path": "pipe"}, "path: 'pipe' is a named pipe (FIFO)"),
        ("search_files", {"pattern": "alpha"}, "notes.txt:1: alpha"),
        ("list_dir", {}, "pipe  (named pipe (FIFO), not readable)"),
    ],
)
async def test_special_files_are_refused_or_skipped_never_opened_blocking(
    layout: Path, fifo: Path, tool_name: str, arguments: dict[str, str], answer: str
) -> None:
    tool = _tools(layout)[tool_name]
    with anyio.fail_after(3):
        try:
            text = await tool.invoke(arguments)
        except ToolFailure as failure:
            text = str(failure)
    assert answer in text


@pytest.mark.anyio
async def test_a_device_node_in_the_workspace_is_refused(layout: Path) -> None:
    try:
        os.mknod(layout / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    with anyio.fail_after(3), pytest.raises(ToolFailure, match="is a character device"):
        await _tools(layout)["read_file"].invoke({"path": "zero"})
