"""The public surface of agentrt.tools and the metadata of the built-in tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema

import agentrt.tools as tools_pkg
from agentrt.tools import calculator, file_tools, http_get_tool, python_tool, shell_tool


def test_all_is_sorted_and_every_name_exists() -> None:
    assert tools_pkg.__all__ == sorted(tools_pkg.__all__)
    for name in tools_pkg.__all__:
        assert hasattr(tools_pkg, name), name


def test_importing_the_tools_does_not_import_mcp() -> None:
    # mcp is an optional extra and slow to import; it is loaded only when a server is mounted.
    code = "import sys, agentrt.tools; print('mcp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_built_in_tools_have_valid_schemas_and_metadata(tmp_path: Path) -> None:
    built_ins = [
        calculator,
        *file_tools(tmp_path),
        python_tool(),
        shell_tool(tmp_path, ["ls"]),
        http_get_tool(["example.com"]),
    ]
    effect_free = {t.name: t.side_effect_free for t in built_ins}
    assert effect_free == {
        "calculator": True,
        "read_file": True,
        "list_dir": True,
        "search_files": True,
        "python": False,
        "shell": False,
        "http_get": True,
    }
    for tool in built_ins:
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
        assert tool.description and tool.expected_latency_s is not None
        assert tool.parameters["type"] == "object"
        assert tool.schema.name == tool.name
