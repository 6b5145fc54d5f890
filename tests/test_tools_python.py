"""The python tool: output and exit status, and each limit — time, memory, output, network."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from process_helpers import marked_processes, running

from agentrt.tools import ProcessLimits, ToolFailure, python_tool

FAST = ProcessLimits(timeout_s=5.0, memory_bytes=256 * 2**20, max_output_bytes=2_000)


@pytest.mark.anyio
async def test_runs_a_snippet_and_answers_its_output() -> None:
    result = await python_tool(limits=FAST).invoke(
        {"code": "import sys\nprint(sum(range(10)))\nprint('note', file=sys.stderr)"}
    )
    assert result == "[exit status 0]\n--- stdout ---\n45\n--- stderr ---\nnote"


@pytest.mark.anyio
async def test_a_failing_snippet_reports_its_exit_status_and_traceback() -> None:
    result = await python_tool(limits=FAST).invoke({"code": "def f():\n    return 1 / 0\nf()"})
    assert result.startswith("[exit status 1]\n--- stderr ---\nTraceback")
    assert 'File "<snippet>", line 2, in f' in result
    assert "ZeroDivisionError: division by zero" in result
    assert "_launcher" not in result  # the model sees only its own frames


@pytest.mark.anyio
async def test_exit_codes_pass_through() -> None:
    result = await python_tool(limits=FAST).invoke({"code": "import sys; sys.exit(3)"})
    assert result == "[exit status 3]\n(no output)"


@pytest.mark.anyio
async def test_runs_in_a_temporary_folder_that_is_removed_afterwards() -> None:
    result = await python_tool(limits=FAST).invoke(
        {"code": "import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())"}
    )
    folder = Path(result.split("--- stdout ---\n")[1].strip())
    assert folder.name == "work" and folder.parent.name.startswith("agentrt-python-")
    assert not folder.parent.exists()


@pytest.mark.anyio
async def test_the_agents_environment_is_not_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_TEST_SECRET", "s3cret")
    result = await python_tool(limits=FAST).invoke(
        {"code": "import os; print(os.environ.get('AGENTRT_TEST_SECRET'))"}
    )
    assert "--- stdout ---\nNone" in result


@pytest.mark.anyio
async def test_a_snippet_that_allocates_too_much_memory_fails_clearly() -> None:
    result = await python_tool(limits=FAST).invoke({"code": "block = bytearray(2 * 1024**3)"})
    assert result.startswith("[exit status 1]")
    assert "MemoryError" in result
    assert result.endswith("[the snippet ran out of memory: the limit is 256 MiB]")


@pytest.mark.anyio
async def test_long_output_is_truncated_with_a_marker_keeping_head_and_tail() -> None:
    result = await python_tool(limits=FAST).invoke(
        {"code": "print('START')\nprint('x' * 100_000)\nprint('END')"}
    )
    out = result.split("--- stdout ---\n")[1]
    assert out.startswith("START\nxxx")
    assert out.endswith("xxx\nEND")
    assert re.search(r"\[\.\.\. [\d,]+ bytes truncated \.\.\.\]", out)
    assert len(out) < 2_100


@pytest.mark.anyio
async def test_network_access_is_refused() -> None:
    # No real network is touched: the guard refuses before any packet leaves.
    result = await python_tool(limits=FAST).invoke(
        {"code": "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)"}
    )
    assert result.startswith("[exit status 1]")
    assert "network access is disabled" in result


@pytest.mark.anyio
async def test_unix_sockets_still_work_for_local_ipc() -> None:
    result = await python_tool(limits=FAST).invoke(
        {"code": "import socket\na, b = socket.socketpair()\na.sendall(b'hi')\nprint(b.recv(2))"}
    )
    assert "--- stdout ---\nb'hi'" in result


@pytest.mark.anyio
async def test_empty_code_is_refused() -> None:
    with pytest.raises(ToolFailure, match="code: empty"):
        await python_tool(limits=FAST).invoke({"code": "  \n"})


def test_tool_metadata() -> None:
    tool = python_tool(limits=FAST)
    assert tool.name == "python"
    assert not tool.side_effect_free
    assert tool.timeout_s is not None and tool.timeout_s > FAST.timeout_s
    assert "5 s wall clock" in tool.description and "256 MiB" in tool.description


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", 0.0),
        ("memory_bytes", 1024),
        ("max_processes", 1),
        ("max_output_bytes", 0),
        ("max_file_bytes", 0),
        ("sandbox", "sometimes"),
    ],
)
def test_limits_are_validated(field: str, value: float | str) -> None:
    with pytest.raises(ValueError, match=f"ProcessLimits.{field}"):
        ProcessLimits(**{field: value})  # type: ignore[arg-type]


def test_running_helper_sees_this_process() -> None:
    assert running(os.getpid())
    assert marked_processes(f"marker-{os.getpid()}-absent") == []
