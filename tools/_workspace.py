"""Confinement of model-given paths to a workspace root.

The model names files with relative paths (or absolute ones inside the root); anything
that resolves outside the root — through ``..``, an absolute path, or a symlink whose
target lies outside — is refused with a ``ToolFailure`` naming the offending argument.
Files are opened only if they are regular files: a named pipe or a device would block the
reading tool forever (or have side effects when opened).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._tool import ToolFailure


@dataclass(frozen=True, slots=True)
class Workspace:
    """A directory the file and shell tools may not leave.

    Invariant: ``root`` is absolute, fully resolved (no symlinks) and a directory, so a
    resolved path lies inside the workspace exactly when ``root`` is among its parents.

    Resolution follows symlinks before the check, which refuses links that point out.
    It is a check at call time, not a kernel-enforced jail: a link swapped between the
    check and the open can still escape (the tools run with the agent's privileges).
    """

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> Workspace:
        """A workspace rooted at an existing directory.

        Raises:
            ValueError: ``root`` does not exist or is not a directory.
        """
        path = Path(root).expanduser()
        if not path.is_dir():
            raise ValueError(f"workspace root {str(path)!r} is not an existing directory")
        return cls(path.resolve(strict=True))

    def resolve(self, path: str, *, field: str = "path") -> Path:
        """The absolute, symlink-free location of ``path`` inside the workspace.

        Args:
            path: relative to the root, or absolute (must then lie inside the root).
            field: the argument name used in error messages.

        Raises:
            ToolFailure: empty path, NUL byte, or a location outside the workspace.
        """
        if not path:
            raise ToolFailure(f"{field}: empty path; use '.' for the workspace root")
        if "\0" in path:
            raise ToolFailure(f"{field}: path contains a NUL byte")
        # "~" is expanded (and then refused as outside) rather than read as a folder name.
        try:
            candidate = Path(path).expanduser()
        except RuntimeError:  # "~someone" with no such user, or no home directory at all
            raise ToolFailure(f"{field}: cannot expand {path!r}; use a workspace path") from None
        if not candidate.is_absolute():
            candidate = self.root / candidate
        # realpath (not Path.resolve(strict=True)) so a missing file is reported as
        # missing by the caller, after the escape check has had its say.
        resolved = Path(os.path.realpath(candidate))
        if resolved != self.root and self.root not in resolved.parents:
            raise ToolFailure(
                f"{field}: {path!r} is outside the workspace; only paths inside the "
                "workspace root are allowed (no '..' above it, no absolute paths "
                "elsewhere, no symlinks pointing out)"
            )
        return resolved

    def relative(self, path: Path) -> str:
        """How the model sees a location: relative to the root, '.' for the root."""
        rel = path.relative_to(self.root)
        return "." if rel == Path(".") else rel.as_posix()

    def contains(self, path: Path) -> bool:
        """Whether ``path`` (followed through symlinks) lies inside the workspace."""
        resolved = Path(os.path.realpath(path))
        return resolved == self.root or self.root in resolved.parents


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words the model understands."""
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def open_regular(path: Path, *, shown: str, field: str = "path") -> BinaryIO:
    """Open ``path`` (already resolved) for reading, only if it is a regular file.

    The type is checked before opening (opening a FIFO blocks until a writer comes; opening
    a device can have side effects) and again on the open descriptor, so a file swapped
    for a FIFO in between is refused too: O_NONBLOCK keeps that open from blocking.

    Raises:
        ToolFailure: not a regular file, or it cannot be opened.
    """
    try:
        kind = file_kind(os.stat(path).st_mode)
        if kind != "regular file":
            raise ToolFailure(f"{field}: {shown!r} is a {kind}; only regular files can be read")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags)
    except OSError as exc:
        raise ToolFailure(f"{field}: cannot open {shown!r}: {exc.strerror}") from None
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind != "regular file":
            raise ToolFailure(f"{field}: {shown!r} is a {kind}; only regular files can be read")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
