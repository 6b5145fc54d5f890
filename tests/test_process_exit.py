"""SIGTERM unwinds a process that starts an embedded engine (unit level, no model: each
case runs in its own interpreter so this test process keeps its signal handling)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_sigterm_runs_the_finally_blocks_of_async_tasks_and_exits_143() -> None:
    out = run(
        """
        import asyncio, os, signal
        from agentrt.engine._process_exit import unwind_on_sigterm

        assert unwind_on_sigterm()

        async def main():
            try:
                asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
                await asyncio.sleep(30)
            finally:
                print("closed the engine", flush=True)

        asyncio.run(main())
        """
    )
    assert out.returncode == 143, out.stderr
    assert out.stdout == "closed the engine\n"


def test_a_chosen_disposition_is_kept() -> None:
    out = run(
        """
        import signal, threading
        from agentrt.engine._process_exit import unwind_on_sigterm

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        assert not unwind_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        results = []
        t = threading.Thread(target=lambda: results.append(unwind_on_sigterm()))
        t.start(); t.join()
        assert results == [False]  # only the main thread may install handlers
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        print("ok")
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok\n"
