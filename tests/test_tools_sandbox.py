"""The python and shell tools' sandbox: no secret of the agent, no network, no outside files.

Run as root here, so the snippets hold CAP_SYS_ADMIN unless the sandbox takes it away.
Tests of the sandbox itself are skipped on a machine where bubblewrap cannot run; the
limits that also hold without it are in ``test_tools_limits.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import textwrap
from pathlib import Path

import pytest
from process_helpers import sandbox_here

from agentrt.tools import ProcessLimits, ToolFailure, python_tool, shell_tool
from agentrt.tools._sandbox import Bubblewrap

SANDBOXED = ProcessLimits(timeout_s=20.0, memory_bytes=256 * 2**20, sandbox="required")
_CHILD_ENV = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}


@pytest.fixture(scope="module")
def bubblewrap() -> Bubblewrap:
    found = sandbox_here()
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
                os.remove(path)  # leave no trace should the sandbox ever fail
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


@pytest.mark.anyio
async def test_a_missing_sandbox_is_reported_once_with_what_is_used_instead(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentrt.tools import _sandbox

    async def missing() -> _sandbox.NoSandbox:
        return _sandbox.NoSandbox("bubblewrap (bwrap) is not installed")

    monkeypatch.setattr(_sandbox, "_probe", missing)
    finder = _sandbox._Finder()
    with caplog.at_level(logging.WARNING, logger="agentrt.tools._sandbox"):
        first = await finder.find()
        again = await finder.find()
    assert first == again == _sandbox.NoSandbox("bubblewrap (bwrap) is not installed")
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith(
        "agentrt.tools: no sandbox for the python and shell tools (bubblewrap (bwrap) is not "
        "installed). They fall back to weaker isolation:"
    )
    assert "can read whatever the agent's user can read" in message


def test_the_sandbox_mounts_tmp_first_then_parents_before_children() -> None:
    from agentrt.tools._sandbox import Bind

    system = (Bind(Path("/usr")), Bind(Path("/work/ws/.venv")))
    bwrap = Bubblewrap("/usr/bin/bwrap", (("usr/bin", "/bin"),), system)
    argv = bwrap.command(
        [Bind(Path("/work/ws"), writable=True)],
        cwd=Path("/work/ws/sub"),
        isolate_network=True,
        tmp_bytes=4096,
    )
    tail = argv[argv.index("--tmpfs", argv.index("--tmpfs") + 1) + 2 :]
    assert tail == [
        "--ro-bind", "/usr", "/usr",
        "--bind", "/work/ws", "/work/ws",
        "--ro-bind", "/work/ws/.venv", "/work/ws/.venv",
        "--chdir", "/work/ws/sub", "--",
    ]  # fmt: skip
    assert "--disable-userns" in argv and "--unshare-net" in argv and "--size" in argv
    legacy = dataclasses.replace(bwrap, legacy=True).command(
        [], cwd=Path("/"), isolate_network=False, tmp_bytes=4096
    )
    assert "--disable-userns" not in legacy and "--size" not in legacy
    assert "--unshare-net" not in legacy
