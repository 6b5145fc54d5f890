"""Project structure: dependency direction, no import cycles, lazy imports only where they
are the point, file sizes, lazy vLLM, and the public surface."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The folders of the one distribution, by the package each is imported as.
PACKAGE_DIRS = {
    "agentrt": ROOT / "agentrt",
    "agentrt.engine": ROOT / "engine",
    "agentrt.tools": ROOT / "tools",
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to an absolute module name."""

    source: str  # the importing module
    path: Path
    target: str  # the module named by the statement (``from x import y``: x)
    names: tuple[str, ...]  # ``from x import y``: (y,); ``import x``: ()
    in_function: bool  # inside a def (else module level, TYPE_CHECKING blocks included)


def package_modules() -> dict[str, Path]:
    """Every module of the distribution, by its import name."""
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def imports_in(module: str, path: Path) -> Iterator[Import]:
    """Every import statement of one module, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, path, alias.name, (), in_function)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                yield Import(module, path, base, tuple(a.name for a in child.names), in_function)
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from walk(child, nested)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (any statement, at any depth)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imp in imports_in(module, path):
            # ``from package import submodule`` depends on the submodule itself.
            subs = {f"{imp.target}.{n}" for n in imp.names} & modules.keys()
            graph[module] |= subs or ({imp.target} & modules.keys())
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def imported_modules(package: str) -> list[tuple[Path, str]]:
    """(file, imported module) for every import in ``package`` and its subpackages."""
    return [
        (imp.path, imp.target)
        for module, path in package_modules().items()
        if module == package or module.startswith(package + ".")
        for imp in imports_in(module, path)
    ]


def test_engine_never_imports_the_orchestrator_or_the_tools() -> None:
    bad = [
        (p.name, m)
        for p, m in imported_modules("agentrt.engine")
        if ((m == "agentrt" or m.startswith("agentrt.")) and not m.startswith("agentrt.engine"))
        or m == "tools"
        or m.startswith("tools.")
    ]
    assert bad == []


def test_tools_know_no_runtime() -> None:
    allowed = ("agentrt.engine", "agentrt.tools")
    bad = [
        (p.name, m)
        for p, m in imported_modules("agentrt.tools")
        if (m == "agentrt" or m.startswith("agentrt.")) and not m.startswith(allowed)
    ]
    assert bad == []


def test_importing_the_engine_api_loads_neither_vllm_nor_torch() -> None:
    code = (
        "import sys, agentrt.engine, agentrt;"
        "print(sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_generic_top_level_engine_or_tools_package_is_importable(tmp_path: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('engine'), u.find_spec('tools'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "None None"


@pytest.mark.parametrize(
    "module", ["agentrt", "agentrt.engine", "agentrt.tools", "agentrt.replay", "agentrt.server"]
)
def test_public_surface_is_a_sorted_all_of_real_names(module: str) -> None:
    mod = importlib.import_module(module)
    names = list(mod.__all__)

    # isort-style order (ruff's RUF022): CONSTANTS, then Classes, then functions.
    def key(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)

    assert names == sorted(names, key=key), f"{module}.__all__ is not sorted"
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(mod, name) is not None, f"{module}.{name} does not resolve"


def test_every_source_folder_is_a_listed_package() -> None:
    """A folder missing from pyproject's packages works in the editable install but is absent
    from a wheel, so `pip install agentrt` would fail at import time."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    listed = set(config["setuptools"]["packages"])
    roots = config["setuptools"]["package-dir"]
    found = set()
    for package, folder in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    for init in (ROOT / "engine").rglob("*.jinja"):
        found.add("agentrt.engine." + ".".join(init.parent.relative_to(ROOT / "engine").parts))
    assert found <= listed, sorted(found - listed)


# Cycles still to be broken by their owners, listed so this test fails on any other
# cycle, and on a listed one once it is gone. None are left.
PENDING_CYCLES: list[list[str]] = []


def test_no_import_cycles_counting_lazy_and_type_only_imports() -> None:
    assert cycles(import_graph()) == PENDING_CYCLES


def test_cycle_finder_sees_cycles_through_function_level_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d"]]


# Imports inside functions, by file: only where being lazy is the point. Each list is
# exact, so a new lazy import must be added here with its reason, and a removed one too.
VLLM_AND_TORCH = {  # engine/ imports without them; they load when an engine starts
    "engine/__init__.py": ["importlib"],  # VLLMEngine, HTTPEngine on first use
    "engine/_model.py": ["torch", "transformers"],
    "engine/_tier_scheduler.py": ["vllm.v1.engine.core"],
    "engine/_twin_core.py": [  # the twin builds vLLM's scheduler only when it starts
        "agentrt.engine._tier_queue",
        "agentrt.engine._tier_scheduler",
        "torch",
        "vllm.config",
        "vllm.utils.hashing",
        "vllm.v1.core.kv_cache_utils",
        "vllm.v1.core.sched.scheduler",
        "vllm.v1.kv_cache_interface",
        "vllm.v1.outputs",
        "vllm.v1.request",
        "vllm.v1.structured_output",
    ],
    "engine/_vllm.py": ["vllm.inputs.engine", "vllm.v1.engine.async_llm", "vllm.v1.metrics.reader"],
    "engine/_vllm_args.py": ["torch", "vllm", "vllm.engine.arg_utils", "vllm.sampling_params"],
    "agentrt/bench/_engine.py": ["vllm", "vllm.inputs.engine", "vllm.sampling_params"],
    "engine/_machine.py": ["torch"],  # only to name a GPU
}
OPTIONAL = {  # extras (bench, server, mcp, otel) or a host process's own packages
    # OpenTelemetry loads only when a tracer provider is set (otherwise nothing imports it)
    "agentrt/_tracing.py": ["agentrt._otel"],
    # the SDK (otel extra) only when OTEL_* asks for export, or for --trace-file
    "agentrt/cli/_main.py": ["agentrt._otel_sdk"],
    "agentrt/cli/_run.py": ["agentrt._otel_sdk"],
    "agentrt/bench/_output.py": ["matplotlib.backends.backend_agg", "matplotlib.figure"],
    "agentrt/replay/report/_plots.py": ["matplotlib.backends.backend_agg", "matplotlib.figure"],
    "agentrt/replay/report/_routers.py": ["matplotlib.backends.backend_agg", "matplotlib.figure"],
    "agentrt/replay/report/_twin_page.py": ["matplotlib.backends.backend_agg", "matplotlib.figure"],
    "agentrt/server/_bench_report.py": ["matplotlib", "matplotlib.pyplot"],
    "agentrt/server/_runner.py": ["uvloop"],
    # the frameworks bench drives the OpenAI Agents SDK (a dev extra) as a user would
    "agentrt/bench/_frameworks.py": [
        "agents",
        "openai",
        "openai.types.responses",
        "openai.types.responses.response_output_item",
    ],
    "agentrt/bench/_frameworks_responses.py": ["agents"],
    # the bench's server-side calculator is an MCP server (mcp extra), started as a child
    "agentrt/bench/_calc_mcp.py": ["mcp.server.mcpserver", "mcp.server.mcpserver.exceptions"],
    "tools/_mcp.py": [
        "httpx2",
        "mcp",
        "mcp.client.stdio",
        "mcp.client.streamable_http",
        "mcp.shared.exceptions",
        "mcp.types",
    ],
}
CLI_FAST_START = {  # a subcommand loads only what it runs
    "agentrt/cli/_main.py": ["agentrt.engine._process_exit"],
    "agentrt/cli/_engine.py": [
        "agentrt.bench._engine",
        "agentrt.cli._engine_check_trace",
        "agentrt.cli._engine_cluster",
        "agentrt.engine._serve",
    ],
    "agentrt/cli/_replay.py": ["agentrt", "agentrt.engine", "agentrt.testing"],
    "agentrt/server/_cli.py": [
        "agentrt",
        "agentrt.engine",
        "agentrt.server._app",
        "agentrt.server._config",
        "agentrt.server._runner",
    ],
    "agentrt/server/_bench.py": [
        "agentrt.engine",
        "agentrt.server._app",
        "agentrt.server._chat_plan",
        "agentrt.server._openai_models",
        "agentrt.server._runner",
        "httpx",
    ],
}
NO_REASON_YET = {  # lazy for no reason found: to move to module level by their owners
    "agentrt/server/_agents.py": ["orjson"],
    "agentrt/server/_app.py": ["agentrt"],
    "engine/_chat.py": ["jinja2.sandbox"],
    "engine/_tokenizer.py": ["tokenizers"],
    "tools/_launcher.py": ["socket"],
}


def test_function_level_imports_are_only_the_listed_ones() -> None:
    allowed: dict[str, set[str]] = {}
    for table in (VLLM_AND_TORCH, OPTIONAL, CLI_FAST_START, NO_REASON_YET):
        for file, targets in table.items():
            allowed.setdefault(file, set()).update(targets)
    found = {
        (str(path.relative_to(ROOT)), imp.target)
        for module, path in package_modules().items()
        for imp in imports_in(module, path)
        if imp.in_function
    }
    listed = {(file, target) for file, targets in allowed.items() for target in targets}
    assert sorted(found - listed) == [], "lazy imports with no listed reason"
    assert sorted(listed - found) == [], "listed lazy imports that are gone: unlist them"


@pytest.mark.parametrize("folder", ["agentrt", "engine", "tools"])
def test_no_source_file_is_over_600_lines(folder: str) -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for p in (ROOT / folder).rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > 600} == {}
