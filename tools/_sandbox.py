"""The bubblewrap sandbox the python and shell tools run their processes in.

bubblewrap (``bwrap``, from the distribution's packages) starts the child in new user,
PID, IPC, UTS, cgroup and (unless the network is allowed) network namespaces, with no
capabilities, ``no_new_privs``, no further user namespaces, and its own mount tree: a
read-only view of the system (``/usr``, the library folders, a few files of ``/etc``, the
Python installation), a private ``/proc`` that shows only the sandbox's processes, a
minimal ``/dev``, size-bounded ``/tmp`` and ``/dev/shm``, and the call's folders (the
workspace, a temporary home) at their own paths. What the agent holds stays outside: its
environment (``/proc/<agent>/environ`` does not exist in there), its files, its network
namespace (there is no way back: no capability, and no handle on the outer namespace).

Where bwrap is missing or cannot create namespaces (some containers forbid it), the
tools fall back to weaker isolation — see ``ProcessLimits.sandbox`` and the warning
logged once — or refuse to run when the sandbox is required.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

LAUNCHER = Path(__file__).with_name("_launcher.py")
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Enough of /etc for programs to run (dynamic linker, locale, users, certificates,
# Debian's alternatives); nothing with secrets (shadow, ssh keys, credentials).
_ETC_FILES = (
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/gai.conf",
    "/etc/group",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/resolv.conf",  # used only when the network is allowed
    "/etc/ssl",
)
_PROBE_TIMEOUT_S = 10.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bind:
    """A host path shown inside the sandbox at the same path."""

    path: Path
    writable: bool = False

    def args(self) -> tuple[str, ...]:
        option = "--bind" if self.writable else "--ro-bind"
        return (option, str(self.path), str(self.path))


@dataclass(frozen=True, slots=True)
class Bubblewrap:
    """A bwrap found to work here, and the read-only system it shows every child."""

    executable: str
    symlinks: tuple[tuple[str, str], ...]  # (target, link) like /bin -> usr/bin
    system: tuple[Bind, ...]
    # bwrap before 0.8 (e.g. Ubuntu 22.04) lacks --disable-userns and sized tmpfs mounts.
    legacy: bool = False

    def command(
        self,
        binds: Sequence[Bind],
        *,
        cwd: Path,
        isolate_network: bool,
        tmp_bytes: int | None,
    ) -> list[str]:
        """The bwrap command line (to be followed by the program and its arguments)."""
        argv = [
            self.executable,
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",  # no controlling terminal to push keystrokes into
            "--cap-drop",
            "ALL",
        ]
        if not self.legacy:
            argv.append("--disable-userns")  # no new namespace inside to gain powers in
        if isolate_network:
            argv.append("--unshare-net")
        for target, link in self.symlinks:
            argv += ["--symlink", target, link]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        for folder in ("/tmp", "/dev/shm"):
            if tmp_bytes is not None and not self.legacy:
                argv += ["--size", str(tmp_bytes)]  # tmpfs pages are memory no process holds
            argv += ["--tmpfs", folder]
        # After the tmpfs mounts (a call's folders often live in /tmp), and parents before
        # children whichever list they come from: a workspace below /usr stays writable,
        # a Python runtime inside the workspace stays read-only.
        for bind in sorted((*self.system, *binds), key=lambda b: len(b.path.parts)):
            argv += bind.args()
        argv += ["--chdir", str(cwd), "--"]
        return argv


@dataclass(frozen=True, slots=True)
class NoSandbox:
    """Why no sandbox can be used here."""

    reason: str


def _covered(path: Path, binds: Sequence[Bind]) -> bool:
    return any(path == b.path or b.path in path.parents for b in binds)


async def _python_paths() -> list[Path]:
    """Where ``python -I`` finds its standard library and packages (to show read-only)."""
    code = (
        "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, "
        "sys.base_exec_prefix, *sys.path]))"
    )
    done = await anyio.run_process([sys.executable, "-I", "-c", code], check=True)
    paths = [Path(p) for p in json.loads(done.stdout)]
    paths.append(Path(os.path.realpath(sys.executable)).parent)
    paths.append(Path(sys.executable).parent)
    return [p for p in paths if p.is_absolute() and p.exists()]


async def _system(executable: str) -> Bubblewrap:
    symlinks: list[tuple[str, str]] = []
    binds: list[Bind] = []
    for name in _SYSTEM_DIRS:
        if os.path.islink(name):
            symlinks.append((os.readlink(name), name))
        elif os.path.isdir(name):
            binds.append(Bind(Path(name)))
    binds += [Bind(Path(p)) for p in _ETC_FILES if os.path.exists(p)]
    for path in sorted(await _python_paths(), key=lambda p: len(p.parts)):
        if not _covered(path, binds):
            binds.append(Bind(path))
    if not _covered(LAUNCHER, binds):
        binds.append(Bind(LAUNCHER))
    return Bubblewrap(executable, tuple(symlinks), tuple(binds))


async def _works(sandbox: Bubblewrap) -> str | None:
    """None if ``sandbox`` runs Python here, else why not."""
    command = sandbox.command([], cwd=Path("/"), isolate_network=True, tmp_bytes=2**20)
    try:
        with anyio.fail_after(_PROBE_TIMEOUT_S):
            done = await anyio.run_process(
                [*command, sys.executable, "-I", "-S", "-c", "pass"],
                check=False,
                stdin=subprocess.DEVNULL,
            )
    except (OSError, TimeoutError) as exc:
        return f"bwrap could not be started: {exc}"
    if done.returncode == 0:
        return None
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return f"bwrap cannot create a sandbox here: {lines[-1] if lines else done.returncode}"


async def _probe() -> Bubblewrap | NoSandbox:
    executable = shutil.which("bwrap")
    if executable is None:
        return NoSandbox("bubblewrap (bwrap) is not installed; Debian: apt-get install bubblewrap")
    try:
        sandbox = await _system(executable)
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        return NoSandbox(f"the Python installation could not be inspected: {exc}")
    problem = await _works(sandbox)
    if problem is None:
        return sandbox
    legacy = dataclasses.replace(sandbox, legacy=True)
    return legacy if await _works(legacy) is None else NoSandbox(problem)


_WARNING = (
    "agentrt.tools: no sandbox for the python and shell tools (%s). They fall back to "
    "weaker isolation: a new process group with per-process limits, a supervisor for the "
    "call's memory and process count, a minimal environment, and a network namespace only "
    "where 'unshare' is permitted. Without the sandbox a snippet can read whatever the "
    "agent's user can read, including the agent's own environment in /proc."
)


class _Finder:
    """Finds, once per process, whether and how the sandbox works here.

    Two first calls at once may both probe (the answer is the same); the warning about
    a missing sandbox is logged once.
    """

    def __init__(self) -> None:
        self._found: Bubblewrap | NoSandbox | None = None

    async def find(self) -> Bubblewrap | NoSandbox:
        if self._found is None:
            found = await _probe()
            if self._found is None and isinstance(found, NoSandbox):
                _log.warning(_WARNING, found.reason)
            self._found = found
        return self._found


find_sandbox = _Finder().find
