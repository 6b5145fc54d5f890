"""Limits that hold for a whole python or shell call, with the sandbox and without it.

Memory and the number of processes are limits of the call, not of each process: forked
children add up. The tests run as root, where RLIMIT_NPROC is not enforced, so they show
the supervisor holding the limits; every process of the call is gone afterwards.
"""

from __future__ import annotations

import sys
import textwrap
import uuid

import anyio
import pytest
from process_helpers import marked_processes, sandbox_here

from agentrt.tools import ProcessLimits, ToolFailure, python_tool
from agentrt.tools._sandbox import Bubblewrap


@pytest.fixture(params=["required", "off"])
def sandbox(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    if mode == "required":
        found = sandbox_here()
        if not isinstance(found, Bubblewrap):
            pytest.skip(f"no sandbox on this machine: {found.reason}")
    return mode


def _limits(sandbox: str, **overrides: float | int) -> ProcessLimits:
    fields: dict[str, object] = {
        "timeout_s": 20.0,
        "memory_bytes": 256 * 2**20,
        "max_processes": 32,
        "sandbox": sandbox,
    }
    fields.update(overrides)
    return ProcessLimits(**fields)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_forked_children_share_one_memory_limit(sandbox: str) -> None:
    # Each child stays far below the 256 MiB per-process limit; four of them do not.
    code = textwrap.dedent(
        """
        import os, time
        children = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                block = bytearray(96 * 2**20)
                time.sleep(10)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        print("all children finished")
        """
    )
    started = anyio.current_time()
    result = await python_tool(limits=_limits(sandbox)).invoke({"code": code})
    assert result.startswith("[stopped: its processes used ")
    assert "of memory together, over the limit of 256 MiB; all its processes were killed]" in result
    assert "all children finished" not in result
    assert anyio.current_time() - started < 8.0


@pytest.mark.anyio
async def test_the_number_of_processes_is_limited_for_root_too(sandbox: str) -> None:
    marker = f"agentrt-limit-{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        children = [
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", {marker!r}])
            for _ in range(60)
        ]
        print("started", len(children))
        time.sleep(30)
        """
    )
    result = await python_tool(limits=_limits(sandbox)).invoke({"code": code})
    if "Resource temporarily unavailable" in result:
        # Not root: the kernel's RLIMIT_NPROC (in the sandbox's user namespace) said no.
        assert "BlockingIOError" in result
    else:
        assert result.startswith("[stopped: ")
        assert "processes and threads were running at once, over the limit of 32" in result
    assert "started 60" not in result
    assert marked_processes(marker) == []


_TREE = """
import os, subprocess, sys, time
marker = {marker!r}
sleeper = [sys.executable, "-c", "import time; time.sleep(60)", marker]
subprocess.Popen(sleeper)  # a child
if os.fork() == 0:  # and a daemon that leaves the session and its parent behind
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, sleeper)
    os._exit(0)
print("started", flush=True)
os.execv(sys.executable, [sys.executable, "-c", "while True: pass", marker])
"""


@pytest.mark.anyio
async def test_a_timeout_kills_every_process_of_the_call(sandbox: str) -> None:
    marker = f"agentrt-tree-{uuid.uuid4().hex}"
    tool = python_tool(limits=_limits(sandbox, timeout_s=2.0))
    with pytest.raises(ToolFailure, match=r"timed out after 2\.\d s") as caught:
        await tool.invoke({"code": _TREE.format(marker=marker)})
    assert "started" in str(caught.value)
    assert marked_processes(marker) == []


@pytest.mark.anyio
async def test_cancelling_the_call_kills_every_process_of_it(sandbox: str) -> None:
    marker = f"agentrt-cancel-{uuid.uuid4().hex}"
    tool = python_tool(limits=_limits(sandbox, timeout_s=30.0))
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(tool.invoke, {"code": _TREE.format(marker=marker)})
            while len(marked_processes(marker)) < 3:
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    assert marked_processes(marker) == []


@pytest.mark.anyio
async def test_a_program_under_its_limits_is_left_alone(sandbox: str) -> None:
    code = textwrap.dedent(
        f"""
        import subprocess, sys
        procs = [subprocess.Popen([{sys.executable!r}, "-c", "pass"]) for _ in range(4)]
        print(sum(p.wait() == 0 for p in procs), bytearray(64 * 2**20)[:1])
        """
    )
    result = await python_tool(limits=_limits(sandbox)).invoke({"code": code})
    assert result == "[exit status 0]\n--- stdout ---\n4 bytearray(b'\\x00')"
