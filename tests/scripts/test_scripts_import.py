"""The scripts under scripts/ name only ftcli modules and objects that exist (they import ftcli lazily, inside
main(), so nothing else would notice a module moved away from under them)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "scripts").glob("*.py"))


def ftcli_imports(path: Path) -> list[tuple[str, str]]:
    """Every ``from ftcli… import name`` in a script, wherever it sits (top level or inside a function)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ftcli":
            found += [(node.module, alias.name) for alias in node.names]
    return found


def resolves(module: str, name: str) -> bool:
    """``module`` exists and ``name`` is an attribute or a submodule of it."""
    try:
        return hasattr(importlib.import_module(module), name) or bool(importlib.import_module(f"{module}.{name}"))
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_ftcli_name_a_script_imports_exists(script: Path) -> None:
    missing = [f"{m}.{n}" for m, n in ftcli_imports(script) if not resolves(m, n)]
    assert missing == [], f"{script.name} imports what ftcli no longer has: {missing}"
