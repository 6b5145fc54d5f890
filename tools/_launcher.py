"""Child-side start of a limited process: apply resource limits, guard the network, then run.

``_process`` runs this file as a script (``python -I _launcher.py CONFIG -- ARGV...``) so
the limits are set inside the child before any untrusted code runs. That replaces
``subprocess``'s ``preexec_fn``, which is unsafe in a process with threads (and the
agent runtime has them). Standard library only: it must not import the agent's packages.

CONFIG is a JSON object:
    rlimits: {"AS": bytes, "CPU": seconds, "FSIZE": bytes, ...} set as soft = hard limits
    block_network: replace the socket API's internet operations with ones that raise
    subreaper: become a child subreaper, so orphaned descendants stay below this process
        (where the runner's supervisor counts and kills them) instead of leaving for init
    mode: "exec" (replace this process with ARGV) or "python" (run the file ARGV[0] here)

Every child also gets ``no_new_privs``: no set-user-ID program can raise its privileges.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import json
import linecache
import os
import resource
import sys
import traceback
from typing import Any, NoReturn

SNIPPET_NAME = "<snippet>"
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38


def _prctl(option: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SystemExit(f"launcher: prctl({option}) failed: {os.strerror(err)}")


def _set_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        kind = getattr(resource, f"RLIMIT_{name}")
        _, hard = resource.getrlimit(kind)
        # An unprivileged process cannot raise its hard limit, so stay below it; and
        # setting hard = soft keeps the code we run from raising the soft limit again.
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))


def _block_network() -> None:
    """Best-effort guard: Python code using ``socket`` cannot reach the network.

    Not a sandbox: code that loads ``_socket`` itself, uses ctypes, or starts another
    program bypasses it. Only the network namespace (``unshare``) is a real barrier.
    Unix-domain sockets stay usable because multiprocessing and asyncio rely on them.
    """
    import socket

    def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise PermissionError(errno.EACCES, "network access is disabled for code run by this tool")

    real_socket = socket.socket

    class GuardedSocket(real_socket):  # type: ignore[misc, valid-type]
        def _check(self) -> None:
            if self.family != socket.AF_UNIX:
                refuse()

        def connect(self, address: Any) -> None:
            self._check()
            super().connect(address)

        def connect_ex(self, address: Any) -> int:
            self._check()
            return int(super().connect_ex(address))

        def bind(self, address: Any) -> None:
            self._check()
            super().bind(address)

        def sendto(self, *args: Any) -> int:
            self._check()
            return int(super().sendto(*args))

        def sendmsg(self, *args: Any) -> int:
            self._check()
            return int(super().sendmsg(*args))

    socket.socket = GuardedSocket  # type: ignore[misc]
    socket.getaddrinfo = refuse  # name lookups leak queries even without a connection
    socket.gethostbyname = refuse
    socket.create_connection = refuse


def _run_python(script: str) -> NoReturn:
    with open(script, encoding="utf-8") as f:
        source = f.read()
    # Registered with linecache so tracebacks show the snippet's lines under a short name.
    linecache.cache[SNIPPET_NAME] = (len(source), None, source.splitlines(True), SNIPPET_NAME)
    sys.argv = [SNIPPET_NAME]
    # Like `python -c`: modules the snippet writes into its working folder are importable.
    sys.path.insert(0, os.getcwd())
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    try:
        code = compile(source, SNIPPET_NAME, "exec")
        exec(code, namespace)
    except SystemExit:
        raise
    except BaseException as exc:
        # Skip this launcher's own frame: the model should see only its snippet.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        sys.exit(1)
    sys.exit(0)


def main(argv: list[str]) -> NoReturn:
    config = json.loads(argv[1])
    if argv[2] != "--":
        raise SystemExit(f"launcher: expected '--' after the configuration, got {argv[2]!r}")
    target = argv[3:]
    _set_limits(config.get("rlimits", {}))
    if sys.platform == "linux":
        _prctl(_PR_SET_NO_NEW_PRIVS)
        if config.get("subreaper", False):
            _prctl(_PR_SET_CHILD_SUBREAPER)
    if config.get("block_network", False):
        _block_network()
    if config["mode"] == "python":
        _run_python(target[0])
    try:
        os.execv(target[0], target)
    except OSError as exc:
        print(f"cannot run {target[0]}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv)
