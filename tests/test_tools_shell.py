"""The shell tool: allow-listed programs only, no shell syntax, confined paths, and limits."""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio
import pytest

from agentrt.tools import ProcessLimits, Tool, ToolFailure, shell_tool


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    return root


def _shell(root: Path, timeout_s: float = 5.0, max_output_bytes: int = 2_000) -> Tool:
    limits = ProcessLimits(
        timeout_s=timeout_s, memory_bytes=256 * 2**20, max_output_bytes=max_output_bytes
    )
    return shell_tool(root, ["cat", "echo", "ls", "pwd", "seq", "sleep", "wc"], limits=limits)


@pytest.mark.anyio
async def test_runs_an_allowed_program_with_quoted_arguments(workspace: Path) -> None:
    result = await _shell(workspace).invoke({"command": "echo 'two  spaces' plain"})
    assert result == "[exit status 0]\n--- stdout ---\ntwo  spaces plain"


@pytest.mark.anyio
async def test_runs_in_a_folder_of_the_workspace(workspace: Path) -> None:
    tool = _shell(workspace)
    assert await tool.invoke({"command": "pwd", "cwd": "sub"}) == (
        f"[exit status 0]\n--- stdout ---\n{workspace / 'sub'}"
    )
    assert await tool.invoke({"command": "wc -l a.txt", "cwd": "sub"}) == (
        "[exit status 0]\n--- stdout ---\n2 a.txt"
    )


@pytest.mark.anyio
async def test_shell_syntax_is_not_interpreted(workspace: Path) -> None:
    result = await _shell(workspace).invoke({"command": "echo $HOME && ls | wc > out.txt"})
    assert result == "[exit status 0]\n--- stdout ---\n$HOME && ls | wc > out.txt"
    assert not (workspace / "out.txt").exists()


@pytest.mark.anyio
async def test_a_failing_program_reports_its_exit_status(workspace: Path) -> None:
    result = await _shell(workspace).invoke({"command": "cat missing.txt"})
    assert result.startswith("[exit status 1]\n--- stderr ---\n")
    assert "missing.txt" in result


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("rm -rf sub", "program 'rm' is not allowed; allowed: cat, echo, ls, pwd, seq, sleep, wc"),
        ("/bin/echo hi", "program '/bin/echo' is not allowed"),
        ("", "command: empty"),
        ("echo 'unclosed", "cannot be parsed"),
    ],
)
async def test_commands_outside_the_allow_list_are_refused(
    workspace: Path, command: str, message: str
) -> None:
    with pytest.raises(ToolFailure, match=re.escape(message)):
        await _shell(workspace).invoke({"command": command})


@pytest.mark.anyio
@pytest.mark.parametrize(
    "argument",
    ["../secret.txt", "sub/../../secret.txt", "ABSOLUTE", "link", "-- ../secret.txt"],
)
async def test_path_arguments_outside_the_workspace_are_refused(
    workspace: Path, argument: str
) -> None:
    os.symlink(workspace.parent / "secret.txt", workspace / "link")
    if argument == "ABSOLUTE":
        argument = str(workspace.parent / "secret.txt")
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await _shell(workspace).invoke({"command": f"cat {argument}"})


@pytest.mark.anyio
async def test_a_working_folder_outside_the_workspace_is_refused(workspace: Path) -> None:
    with pytest.raises(ToolFailure, match=r"cwd: '\.\.' is outside the workspace"):
        await _shell(workspace).invoke({"command": "ls", "cwd": ".."})


@pytest.mark.anyio
async def test_a_command_past_its_time_limit_is_killed(workspace: Path) -> None:
    started = anyio.current_time()
    with pytest.raises(ToolFailure, match="timed out after"):
        await _shell(workspace, timeout_s=0.5).invoke({"command": "sleep 30"})
    assert anyio.current_time() - started < 3.0


@pytest.mark.anyio
async def test_long_output_is_truncated_with_a_marker(workspace: Path) -> None:
    result = await _shell(workspace, max_output_bytes=300).invoke({"command": "seq 1 100000"})
    out = result.split("--- stdout ---\n")[1]
    assert out.startswith("1\n2\n3\n")
    assert out.endswith("99999\n100000")
    assert "bytes truncated ...]" in out


def test_the_allow_list_must_name_bare_programs(workspace: Path) -> None:
    with pytest.raises(ValueError, match="allowed_programs: must name at least one program"):
        shell_tool(workspace, [])
    with pytest.raises(ValueError, match="allowed_programs: '/bin/ls' must be a bare program name"):
        shell_tool(workspace, ["/bin/ls"])


def test_tool_metadata(workspace: Path) -> None:
    tool = _shell(workspace)
    assert tool.name == "shell" and not tool.side_effect_free
    assert "Allowed programs: cat, echo, ls, pwd, seq, sleep, wc" in tool.description
    assert tool.parameters["required"] == ["command"]
