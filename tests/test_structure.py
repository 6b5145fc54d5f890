"""Project structure: dependency direction, lazy vLLM, and the public surface."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path, node.module))
    return found


def test_engine_never_imports_the_orchestrator_or_the_tools() -> None:
    bad = [
        (p.name, m)
        for p, m in imported_modules(ROOT / "engine")
        if ((m == "agentrt" or m.startswith("agentrt.")) and not m.startswith("agentrt.engine"))
        or m == "tools"
        or m.startswith("tools.")
    ]
    assert bad == []


def test_tools_know_no_runtime() -> None:
    allowed = ("agentrt.engine", "agentrt.tools")
    bad = [
        (p.name, m)
        for p, m in imported_modules(ROOT / "tools")
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
