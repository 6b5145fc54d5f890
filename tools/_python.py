"""The ``python`` tool: run a snippet in a fresh, limited interpreter in a temporary folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import anyio
import anyio.to_thread

from ._limits import ProcessLimits, ProcessResult, mib
from ._process import child_env, run_limited
from ._sandbox import Bind
from ._tool import Tool, ToolFailure, tool

MAX_CODE_CHARS = 100_000
_STARTUP_GRACE_S = 5.0  # the tool's own timeout must not fire before the process limit's


def _describe(limits: ProcessLimits) -> str:
    memory = f", memory {mib(limits.memory_bytes)} in all" if limits.memory_bytes else ""
    processes = f", {limits.max_processes} processes and threads" if limits.max_processes else ""
    network = " No network access." if limits.isolate_network else ""
    return (
        "Run a Python 3 snippet in a fresh interpreter and answer its exit status, stdout and "
        "stderr. Print every value you want to see (nothing is echoed). Each call starts "
        "from scratch in an empty temporary folder that is deleted afterwards; installed "
        f"packages can be imported. Limits: {limits.timeout_s:g} s wall clock{memory}"
        f"{processes}, {limits.max_output_bytes:,} bytes of output per stream (longer output "
        f"is cut in the middle).{network}"
    )


def _explain(result: ProcessResult, limits: ProcessLimits) -> str:
    """The rendered result, plus a hint when a limit is the likely cause of a failure."""
    text = result.render()
    failed = result.kind == "exited" and result.exit_code != 0
    if limits.memory_bytes and failed and "MemoryError" in result.stderr:
        text += f"\n[the snippet ran out of memory: the limit is {mib(limits.memory_bytes)}]"
    if limits.max_processes and failed and "Resource temporarily unavailable" in result.stderr:
        text += (
            "\n[the snippet may have hit the process limit: at most "
            f"{limits.max_processes} processes and threads at once]"
        )
    if result.kind == "killed" and result.signal_name in ("SIGXCPU", "SIGKILL"):
        text += "\n[the process was stopped by a resource limit (CPU time or memory)]"
    return text


def python_tool(*, limits: ProcessLimits | None = None, name: str = "python") -> Tool:
    """A tool that runs Python snippets in a separate, limited process.

    Each call runs ``sys.executable -I`` in a fresh temporary folder (removed afterwards)
    with a wall-clock limit, bounded output, and memory and process limits that hold for
    all its processes together. Where bubblewrap works, the snippet runs in its sandbox
    (``_sandbox.py``): it sees a read-only system and its own folder, no process and no
    environment of the agent, and no network; it cannot regain the agent's network even
    as root. Without bubblewrap (``ProcessLimits.sandbox``), the isolation is weaker: a
    new process group, a minimal environment, a network namespace where ``unshare``
    permits and a socket guard, but the snippet can read what the agent's user can read.

    Args:
        limits: time, memory and output limits (defaults: ``ProcessLimits()``).
        name: the tool name the model sees.

    Returns:
        The tool; a timeout is reported as a ``ToolFailure``, a failing snippet as a
        normal result with its exit status and stderr.
    """
    lim = limits or ProcessLimits()

    async def python(code: str) -> str:
        """Run a Python snippet.

        Args:
            code: the Python source to run, e.g. "print(sum(range(10)))".
        """
        if not code.strip():
            raise ToolFailure("code: empty snippet; pass Python source code")
        if len(code) > MAX_CODE_CHARS:
            raise ToolFailure(f"code: longer than {MAX_CODE_CHARS:,} characters")
        folder = Path(tempfile.mkdtemp(prefix="agentrt-python-"))
        try:
            work = folder / "work"
            work.mkdir()
            script = folder / "snippet.py"
            script.write_text(code, encoding="utf-8")
            result = await run_limited(
                [str(script)],
                cwd=work,
                env=child_env(work),
                limits=lim,
                mode="python",
                binds=[Bind(folder, writable=True)],
            )
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))
        if result.kind == "timed_out":
            raise ToolFailure(result.render())
        return _explain(result, lim)

    return tool(
        name=name,
        description=_describe(lim),
        timeout_s=lim.timeout_s + _STARTUP_GRACE_S,
        expected_latency_s=0.3,
        side_effect_free=False,
    )(python)
