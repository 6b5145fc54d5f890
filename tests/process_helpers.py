"""Test helpers for the process-running tools: is a pid still a running process?"""

from __future__ import annotations

import os
from pathlib import Path


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie — dead, not yet reaped — is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the parenthesized command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
