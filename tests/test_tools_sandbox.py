"""The python and shell tools' sandbox: no secret of the agent, no network, no outside files.

Run as root here, so the snippets hold CAP_SYS_ADMIN unless the sandbox takes it away.
Tests of the sandbox itself are skipped on a machine where bubblewrap cannot run; the
limits that also hold without it are in ``test_tools_limits.py``.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import anyio
import pytest

from agentrt.tools import ProcessLimits, ToolFailure, python_tool, shell_tool
from agentrt.tools._sandbox import Bubblewrap, find_sandbox

SANDBOXED = ProcessLimits(timeout_s=20.0, memory_bytes=256 * 2**20, sandbox="required")
_CHILD_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}


@pytest.fixture(scope="module")
def bubblewrap() -> Bubblewrap:
    found = anyio.run(find_sandbox)
    if not isinstance(found, Bubblewrap):
        pytest.skip(f"no sandbox on this machine: {found.reason}")
    return found


def _agent_secrets() -> list[str]:
    """Values of this process's real environment that a child is never given."""
    raw = Path(f"/proc/{os.getpid()}/environ").read_bytes().split(b"\0")
    pairs = [entry.decode(errors="replace").partition("=") for entry in raw if b"=" in entry]
    return [f"{k}={v}" for k, _, v in pairs if k not in _CHILD_ENV and len(v) >= 4]


@pytest.mark.anyio
async def test_a_snippet_cannot_read_the_agents_environment(bubblewrap: Bubblewrap) -> None:
    secrets = _agent_secrets()
    if not secrets:
        pytest.skip("this process has no environment variable to look for")
    code = textwrap.dedent(
        f"""
        import glob
        secrets = {secrets!r}
        seen = []
        for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/task/*/environ"):
            try:
                data = open(path, "rb").read().decode(errors="replace")
            except OSError:
                continue
            seen += [s.split("=")[0] for s in secrets if s in data]
        print("leaked:", sorted(set(seen)))
        """
    )
    result = await python_tool(limits=SANDBOXED).invoke({"code": code})
    assert result == "[exit status 0]\n--- stdout ---\nleaked: []"


_SETNS = textwrap.dedent(
    """
    import ctypes, glob, os
    libc = ctypes.CDLL(None, use_errno=True)
    joined = 0
    for path in glob.glob("/proc/*/ns/net") + glob.glob("/proc/*/task/*/ns/net"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        joined += libc.setns(fd, 0x40000000) == 0  # CLONE_NEWNET
    lines = open("/proc/thread-self/net/dev").read().splitlines()[2:]
    print("interfaces:", sorted(line.split(":")[0].strip() for line in lines))
    """
)


@pytest.mark.anyio
async def test_a_snippet_cannot_rejoin_the_agents_network_namespace(
    bubblewrap: Bubblewrap,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the escape needs CAP_SYS_ADMIN, which only root has here")
    host = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    if [line for line in host if line.split(":")[0].strip() != "lo"] == []:
        pytest.skip("this machine has no network interface but loopback")
    result = await python_tool(limits=SANDBOXED).invoke({"code": _SETNS})
    assert result == "[exit status 0]\n--- stdout ---\ninterfaces: ['lo']"


@pytest.mark.anyio
async def test_a_snippet_sees_a_read_only_system_and_none_of_the_agents_files(
    bubblewrap: Bubblewrap, tmp_path: Path
) -> None:
    (tmp_path / "agent-notes.txt").write_text("private\n")
    code = textwrap.dedent(
        f"""
        import os
        for path in [{str(tmp_path / "agent-notes.txt")!r}, "/usr/agentrt-probe"]:
            try:
                open(path, "a").close()
                print(path, "writable")
            except OSError as exc:
                print(path, exc.strerror)
        print("processes:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        """
    )
    result = await python_tool(limits=SANDBOXED).invoke({"code": code})
    assert result == (
        "[exit status 0]\n--- stdout ---\n"
        f"{tmp_path / 'agent-notes.txt'} No such file or directory\n"
        "/usr/agentrt-probe Read-only file system\n"
        "processes: [1, 2]"  # bwrap's init and the snippet: nothing of the agent's
    )


@pytest.mark.anyio
async def test_the_shell_tool_runs_in_the_sandbox_too(
    bubblewrap: Bubblewrap, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("hello\n")
    tool = shell_tool(root, ["cat", "ls", "sort"], limits=SANDBOXED)
    assert await tool.invoke({"command": "sort -o b.txt a.txt"}) == "[exit status 0]\n(no output)"
    assert (root / "b.txt").read_text() == "hello\n"
    # The folder beside the workspace does not exist in there (the check passes: ".")
    listing = await tool.invoke({"command": "ls -a", "cwd": "."})
    assert listing == "[exit status 0]\n--- stdout ---\n.\n..\na.txt\nb.txt"
    with pytest.raises(ToolFailure, match="outside the workspace"):
        await tool.invoke({"command": f"cat {tmp_path}/x"})


@pytest.mark.anyio
async def test_a_required_sandbox_that_is_missing_refuses_to_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agentrt.tools import _process
    from agentrt.tools._sandbox import NoSandbox

    async def missing() -> NoSandbox:
        return NoSandbox("bubblewrap (bwrap) is not installed")

    monkeypatch.setattr(_process, "find_sandbox", missing)
    with pytest.raises(ToolFailure, match="the sandbox is required but cannot be used: bubble"):
        await python_tool(limits=SANDBOXED).invoke({"code": "print(1)"})
    auto = ProcessLimits(timeout_s=20.0, memory_bytes=256 * 2**20, sandbox="auto")
    result = await python_tool(limits=auto).invoke({"code": "print(1)"})
    assert result == "[exit status 0]\n--- stdout ---\n1"
