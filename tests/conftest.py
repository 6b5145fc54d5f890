"""Shared fixtures: one real embedded vLLM engine per test session, on one event loop."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEST_MAX_MODEL_LEN = 2048


@functools.cache
def engine_kv_cache_bytes() -> int:
    """The test engines' KV cache: 17 blocks of 128 tokens of the default model.

    Small on purpose: cache-pressure tests flood it, and start-up stays fast. It is sized
    in tokens, not bytes, so the tests see the same cache on every CPU: fp32 where the
    CPU lacks native bf16 (96 MiB), bf16 where it has it (48 MiB).
    """
    from agentrt.engine._vllm_args import kv_bytes_per_value

    return 24 * kv_bytes_per_value() * 2**20


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # Session scope: every async test and fixture shares one asyncio loop, so the
    # session's vLLM engine (bound to the loop it started on) serves all of them.
    return "asyncio"


@pytest.fixture(scope="session")
async def vllm_engine(anyio_backend: str) -> AsyncIterator[object]:
    from agentrt.engine import EngineOptions, VLLMEngine

    engine = await VLLMEngine.start(
        EngineOptions(
            kv_cache_bytes=engine_kv_cache_bytes(),
            max_model_len=TEST_MAX_MODEL_LEN,
            enforce_eager=True,
        )
    )
    try:
        yield engine
    finally:
        await engine.aclose()
        # aclose() must leave no process behind: this fails the session's teardown if it does.
        leftover = engine_core_children()
        assert not leftover, f"engine processes still alive after aclose(): {leftover}"


def engine_core_children(wait_s: float = 10.0) -> list[int]:
    """Pids of child processes still alive after ``wait_s`` (vLLM's engine core, workers).

    Python's multiprocessing resource tracker is left out: it is a per-interpreter helper
    that lives until this process exits, whoever started it.
    """
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE or "resource_tracker" in " ".join(p.cmdline()):
                continue
        except psutil.NoSuchProcess:
            continue
        found.append(p)
    # A worker may still be exiting when shutdown() returns: wait for exit, not a sleep.
    _gone, alive = psutil.wait_procs(found, timeout=wait_s)
    return [p.pid for p in alive]


@pytest.fixture(scope="session")
def engine_server() -> Iterator[str]:
    """``agentrt engine serve`` in a subprocess on loopback; stopped with SIGTERM at the end."""
    from engine_server_helpers import engine_server_process

    kv_mib = engine_kv_cache_bytes() // 2**20
    with engine_server_process(kv_mib, TEST_MAX_MODEL_LEN) as (url, exit_):
        yield url
    assert not exit_.leftover, f"engine server left processes behind: {exit_.leftover}"


@pytest.fixture(scope="session")
async def http_engine(engine_server: str, anyio_backend: str) -> AsyncIterator[object]:
    from agentrt.engine import HTTPEngine

    engine = await HTTPEngine.connect(engine_server)
    try:
        yield engine
    finally:
        await engine.aclose()
