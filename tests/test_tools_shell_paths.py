"""The shell tool's argument check: every spelling of a path-carrying option stays inside.

Short options with the value attached (``sort -o/abs``, ``cp -t/abs``, ``tar -C/abs``)
once bypassed the check; these tests spell outside locations every way getopt accepts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrt.tools import ProcessLimits, ProgramOptions, Tool, ToolFailure, Workspace, shell_tool
from agentrt.tools._shell_args import check_arguments
from agentrt.tools._shell_options import BUILT_IN

PROGRAMS = ["cat", "cp", "cut", "ln", "ls", "sort", "tar", "wc"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("b/2\na/1\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret\n")
    os.symlink(tmp_path / "outside", root / "linkdir")
    return root


def _shell(root: Path) -> Tool:
    limits = ProcessLimits(timeout_s=10.0, memory_bytes=256 * 2**20, max_output_bytes=4_000)
    return shell_tool(root, PROGRAMS, limits=limits)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "command",
    [
        "sort -o{out}/sorted.txt sub/a.txt",
        "sort -ro{out}/sorted.txt sub/a.txt",
        "sort sub/a.txt -o{out}/sorted.txt",
        "sort --output={out}/sorted.txt sub/a.txt",
        "sort --output {out}/sorted.txt sub/a.txt",
        "sort -T{out} sub/a.txt",
        "cp -t{out} sub/a.txt",
        "cp -vt{out} sub/a.txt",
        "cp --target-directory={out} sub/a.txt",
        "cp sub/a.txt linkdir/copied.txt",
        "tar -C{out} -cf sub/x.tar secret.txt",
        "tar -cf sub/x.tar --directory={out} secret.txt",
        "tar cfC sub/x.tar {out} secret.txt",
        "tar -cf{out}/x.tar sub",
        "ln -st{out} sub/a.txt",
        "ln -s -t{out} sub/a.txt",
        "ln --target-directory={out} sub/a.txt",
        "cat -- {out}/secret.txt",
    ],
)
async def test_attached_and_clustered_option_values_outside_are_refused(
    workspace: Path, command: str
) -> None:
    outside = workspace.parent / "outside"
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await _shell(workspace).invoke({"command": command.format(out=outside)})
    assert sorted(p.name for p in outside.iterdir()) == before, "something was written outside"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("sort --compress-program=sh sub/a.txt", "sort does not allow option '--compress-program'"),
        ("sort --outp=x sub/a.txt", "sort does not allow option '--outp'"),
        ("cp -L sub/a.txt sub/b.txt", "cp does not allow option '-L'"),
        ("tar -cf x.tar -T list", "tar does not allow option '-T'"),
        ("tar -cf host:x.tar sub", "over the network"),
        ("sort -o", "option -o of sort needs a value"),
        ("wc --lines=3 sub/a.txt", "option --lines of wc takes no value"),
    ],
)
async def test_options_off_the_programs_list_are_refused(
    workspace: Path, command: str, message: str
) -> None:
    with pytest.raises(ToolFailure, match=message):
        await _shell(workspace).invoke({"command": command})


@pytest.mark.anyio
async def test_listed_options_work_inside_the_workspace(workspace: Path) -> None:
    tool = _shell(workspace)
    assert await tool.invoke({"command": "sort -o sub/sorted.txt sub/a.txt"}) == (
        "[exit status 0]\n(no output)"
    )
    assert (workspace / "sub" / "sorted.txt").read_text() == "a/1\nb/2\n"
    # Text values are not locations: a '/' separator is fine.
    assert await tool.invoke({"command": "cut -d/ -f2 sub/a.txt"}) == (
        "[exit status 0]\n--- stdout ---\n2\n1"
    )
    assert await tool.invoke({"command": "tar cf sub/x.tar -C sub a.txt"}) == (
        "[exit status 0]\n(no output)"
    )
    listing = await tool.invoke({"command": "tar -tvf sub/x.tar"})
    assert listing.startswith("[exit status 0]") and listing.endswith("a.txt")


_OUTSIDE = st.sampled_from(["/etc/passwd", "../outside", "sub/../../outside/x", "linkdir/x"])


def _spellings(program: str, letter: str, long_name: str) -> st.SearchStrategy[tuple[str, ...]]:
    flags = st.text(alphabet=BUILT_IN[program].flags, max_size=3)  # clustered in front
    spelled = [
        st.builds(lambda v, f: (f"-{f}{letter}{v}",), _OUTSIDE, flags),
        st.builds(lambda v, f: (f"-{f}{letter}", v), _OUTSIDE, flags),
        st.builds(lambda v: (f"--{long_name}={v}",), _OUTSIDE),
        st.builds(lambda v: (f"--{long_name}", v), _OUTSIDE),
    ]
    return st.one_of(spelled)


_PATH_OPTIONS = [
    ("sort", "o", "output"),
    ("sort", "T", "temporary-directory"),
    ("cp", "t", "target-directory"),
    ("mv", "t", "target-directory"),
    ("tar", "C", "directory"),
    ("tar", "f", "file"),
    ("grep", "f", "file"),
    ("touch", "r", "reference"),
]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(
    case=st.sampled_from(_PATH_OPTIONS).flatmap(lambda c: st.tuples(st.just(c[0]), _spellings(*c))),
    before=st.lists(st.sampled_from(["sub/a.txt", "-v", "--", "x"]), max_size=2),
)
def test_every_spelling_of_a_path_option_is_checked(
    workspace: Path, case: tuple[str, tuple[str, ...]], before: list[str]
) -> None:
    program, spelled = case
    if "--" in before:
        before = before[: before.index("--")]  # past "--" an option is an operand (checked too)
    options = BUILT_IN[program]
    args = [a for a in before if a != "-v" or "v" in options.flags]
    if options.bundled_first and args and not args[0].startswith("-"):
        args.insert(0, "-v")  # not tar's old-style first cluster: that is another test
    ws = Workspace.at(workspace)
    for spec in (options, None):  # exact parsing and the conservative check both refuse
        with pytest.raises(ToolFailure, match="outside the workspace"):
            check_arguments(ws, ws.root, program, [*args, *spelled], spec)


@given(st.text(alphabet="abcxyz/.-=:", min_size=1, max_size=12).filter(lambda t: t[0] != "-"))
def test_the_conservative_check_refuses_any_tail_that_leaves(tail: str) -> None:
    # For an unknown program, a short-option argument is refused exactly when one of its
    # tails (a possible attached value) resolves outside the root.
    root = Workspace.at("/tmp")
    arg = f"-{tail}"
    leaves = any(not root.contains(root.root / arg[start:]) for start in range(1, len(arg)))
    try:
        check_arguments(root, root.root, "prog", [arg], None)
        refused = False
    except ToolFailure:
        refused = True
    assert refused == leaves


def test_program_options_validate_their_letters_and_kinds() -> None:
    with pytest.raises(ValueError, match="short option '-' must be one letter"):
        ProgramOptions(flags="-")
    with pytest.raises(ValueError, match="value kind 'file' is not one of"):
        ProgramOptions.parse("o:file")
    custom = ProgramOptions.parse("n o:path", "output=path count")
    assert custom.summary() == "-n -o PATH --count --output=PATH"
