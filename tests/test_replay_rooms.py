"""The replay package's three rooms import one way, and the command line lives in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPLAY = ROOT / "agentrt" / "replay"
ROOMS = ("trace", "run", "report")


def rooms_imported_by(room: str) -> set[str]:
    """The other rooms (and the command line) that any module of ``room`` imports, counting
    imports inside functions too."""
    found: set[str] = set()
    for path in (REPLAY / room).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            if node.level == 2:  # from ..other._module import ...
                name = node.module.split(".")[0]
            elif node.level == 0 and node.module.startswith(("agentrt.replay.", "agentrt.cli")):
                name = node.module.removeprefix("agentrt.replay.").split(".")[0]
            else:
                continue
            if name != room:
                found.add(name)
    return found


@pytest.mark.parametrize(
    ("room", "allowed"), [("trace", set()), ("report", set()), ("run", {"trace", "report"})]
)
def test_each_room_imports_only_the_rooms_below_it(room: str, allowed: set[str]) -> None:
    assert rooms_imported_by(room) <= allowed


def test_every_replay_module_lives_in_a_room() -> None:
    loose = sorted(p.name for p in REPLAY.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    assert sorted(p.name for p in REPLAY.iterdir() if p.is_dir() and p.name != "__pycache__") == (
        sorted(ROOMS)
    )


def test_command_line_modules_are_gathered_in_agentrt_cli() -> None:
    """Only the REST server keeps its command module (it is that server's start-up), and the
    dispatcher names every sub-command's module inside ``agentrt.cli`` but that one."""
    from agentrt.cli import COMMANDS

    stray = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "agentrt").rglob("*cli*.py")
        if p.parent.name != "cli" and p != ROOT / "agentrt" / "server" / "_cli.py"
    )
    assert stray == []
    outside = {
        name for name, (module, _) in COMMANDS.items() if not module.startswith("agentrt.cli.")
    }
    assert outside == {"serve"}
