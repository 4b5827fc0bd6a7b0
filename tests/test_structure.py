"""The package's shape: folders import only the folders below them (the layer table), no import cycles (imports
inside functions included), no function over 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ftcli"
MAX_LINES = 80


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``ftcli.tasks`` for its ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (top level and inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        edges |= {t for t in targets if t in known and t not in (name, "ftcli")}
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


# Which ftcli folders each folder may import (its own sub-folders always). The top-level modules are the commands
# (train, evaluate, predict, export, leaderboard); nothing imports the cli. The files shipped inside checkpoints
# import nothing of ftcli at all: transformers copies them beside the weights.
BELOW_TASKS = {"config", "metrics", "runtime", "reporting", "data", "models"}
LAYERS: dict[str, set[str]] = {
    "config": set(),
    "metrics": set(),
    "models.shipped": set(),
    "runtime": {"config"},
    "reporting": {"config", "metrics"},
    "data": {"config", "metrics", "runtime", "reporting"},
    "models": {"config", "metrics", "runtime", "reporting"},
    "tasks": BELOW_TASKS,
    "training": {*BELOW_TASKS, "tasks"},
    "commands": {*BELOW_TASKS, "tasks", "training"},
    "cli": {*BELOW_TASKS, "tasks", "training", "commands"},
}


def layer(module: str) -> str:
    """The row of the layer table a module is in: its folder (``models.shipped`` apart), else a command."""
    parts = module.split(".")[1:]
    if parts[:1] == ["__main__"]:
        return "cli"
    if ".".join(parts[:2]) in LAYERS:
        return ".".join(parts[:2])
    return parts[0] if parts and parts[0] in LAYERS else "commands"


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import against the layer table: ``importer (its layer) → imported (its layer)``."""
    found = []
    for name, targets in sorted(graph.items()):
        mine = layer(name)
        for target in sorted(targets):
            theirs = layer(target)
            folder = theirs.split(".")[0]  # models.shipped is part of models for whoever imports it
            if folder != mine.split(".")[0] and folder not in LAYERS[mine] or mine == "models.shipped":
                found.append(f"{name} ({mine}) → {target} ({theirs})")
    return found


def test_every_import_follows_the_layer_table() -> None:
    found = modules()
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    assert violations(graph) == []


def test_the_layer_check_fails_on_an_import_against_the_table(tmp_path: Path) -> None:
    """A deliberately wrong import, inside a function as well as at the top: data may not import tasks, config
    nothing, the shipped modeling code nothing of ftcli."""
    (tmp_path / "a.py").write_text("def f():\n    from ftcli.tasks.registry import build_task\n")
    edges = imports("ftcli.data.a", tmp_path / "a.py", {"ftcli.tasks.registry"})
    known = {"ftcli.tasks.registry": set(), "ftcli.data.a": edges}
    assert violations(known) == ["ftcli.data.a (data) → ftcli.tasks.registry (tasks)"]
    graph = {"ftcli.config.x": {"ftcli.metrics.y"}, "ftcli.models.shipped.m": {"ftcli.models.text"}}
    assert len(violations(graph)) == 2
    assert violations({"ftcli.tasks.t": {"ftcli.models.shipped.m"}, "ftcli.train": {"ftcli.training.loop"}}) == []


def test_the_import_graph_has_no_cycle() -> None:
    found = modules()
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_sees_imports_inside_functions(tmp_path: Path) -> None:
    graph = {"ftcli.a": {"ftcli.b"}, "ftcli.b": {"ftcli.c"}, "ftcli.c": {"ftcli.a"}, "ftcli.d": {"ftcli.a"}}
    assert cycles(graph) == [["ftcli.a", "ftcli.b", "ftcli.c"]]
    (tmp_path / "a.py").write_text("def f():\n    from ftcli.b import x\n    from .c import y\n")
    assert imports("ftcli.a", tmp_path / "a.py", {"ftcli.b", "ftcli.c"}) == {"ftcli.b", "ftcli.c"}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_longer_than_80_lines(path: Path) -> None:
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_LINES
    ]
    assert not long, f"split into named steps: {', '.join(long)}"
