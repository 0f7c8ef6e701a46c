"""The rooms stay as drawn (ARCHITECTURE.md): every module imports, no room imports one it may not, no circles.

Imports are read from the source (function-level ones included: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("catalog", "cmrclip", "indexer", "search", "ui", "phantom", "migrations", "cmr")

# room -> rooms it may import (besides itself). A room is a top-level package, except that the training program
# ``cmrclip.train`` is a room of its own beside the model library ``cmrclip``.
ALLOWED: dict[str, set[str]] = {
    "catalog": set(),
    "phantom": set(),
    "cmrclip": set(),
    "cmrclip.train": {"cmrclip", "catalog", "search"},
    "indexer": {"catalog", "cmrclip"},
    "search": {"catalog", "cmrclip"},
    "ui": {"search", "catalog"},
    "migrations": {"catalog"},
    "cmr": {"catalog", "cmrclip", "cmrclip.train", "indexer", "search", "ui", "phantom", "migrations"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if pkg == "migrations" and ("versions" in path.parts or path.name == "env.py"):
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _room(module: str) -> str:
    return "cmrclip.train" if module == "cmrclip.train" or module.startswith("cmrclip.train.") else module.split(".")[0]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES and n in MODULES}


GRAPH = {m: _imports(p) - {m} for m, p in MODULES.items()}


# Streamlit pages run as scripts, Alembic's env.py only inside Alembic, __main__ runs the CLI.
SCRIPTS = ("ui.app", "migrations.env", "cmr.__main__")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith(SCRIPTS)))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_rooms_import_only_what_they_may():
    wrong = sorted(
        f"{m} imports {dep}"
        for m, deps in GRAPH.items()
        for dep in deps
        if _room(dep) != _room(m) and _room(dep) not in ALLOWED[_room(m)]
    )
    assert not wrong, "\n".join(wrong)


def _package(module: str) -> str:
    """The sub-room of a module: its package (``indexer.dicom``), or the module itself at a room's top."""
    if MODULES[module].name == "__init__.py":
        return module
    return module.rpartition(".")[0] or module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_circles_between_modules():
    assert not _cycles(GRAPH)


def test_no_circles_between_sub_rooms():
    rooms: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        rooms.setdefault(_package(m), set()).update(_package(d) for d in deps if _package(d) != _package(m))
    assert not _cycles(rooms)
