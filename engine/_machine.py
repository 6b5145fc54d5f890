"""Where a figure was measured: the one description of the machine every result file records.

Machines differ from session to session, and their CPU flags decide the engine's dtype on
CPU (float32 without native bf16, the model's bf16 with it), which doubles the tokens a
cache of the same bytes holds and changes every timing. So replay reports, measured
profiles and benchmark files all record :func:`machine_info`, and figures are compared
only within one machine. Nothing here imports vLLM; torch only to name a GPU.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """bf16 matmuls are only fast with AVX512-BF16 or AMX; otherwise float32 wins on CPU."""
    try:
        flags = _CPUINFO.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        for line in _CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float | None:
    """Total memory in GiB (``/proc/meminfo``), None where it cannot be read."""
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_name() -> str | None:
    """The first CUDA device's name; None without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine_info() -> dict[str, Any]:
    """What a result file records about where it ran (plain JSON values).

    ``cores`` is what the process may use; ``native_bf16`` says which dtype the embedded
    engine picks on CPU ("auto": bf16 when True, float32 when False).
    """
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "native_bf16": cpu_has_native_bf16(),
        "memory_gib": memory_gib(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
