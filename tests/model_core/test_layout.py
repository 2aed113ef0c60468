"""The package layout: which part may import which, no import cycles, and the size limits.

Imports are read from the source (``ast``), function-local ones included, so a cycle cannot hide inside a
function. Direction (``a <- b``: b may import a):

    network <- weights <- engine,  studies <- preprocessing <- engine,  engine <- cli / napari_mome

and nothing under network, weights, studies, preprocessing or engine imports the command line, training,
the benchmarks, napari or Qt. Neither modules nor packages import each other in a cycle (``__main__``
entry points, which nothing imports, aside).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("model_core", "napari_mome")
CORE = ("network", "weights", "studies", "preprocessing", "engine")
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "runtime": {"errors"},
    "network": {"errors"},
    "weights": {"errors", "network"},
    "studies": {"errors"},
    "preprocessing": {"errors", "studies"},
    "engine": {"errors", "runtime", "network", "weights", "studies", "preprocessing", "phantom"},
}
"""The model_core parts each core part (and the two base modules) may import."""
FORBIDDEN_IN_CORE = ("model_core.cli", "model_core.train", "model_core.bench", "napari_mome", "napari", "qtpy",
                     "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt")
NAPARI_COMMAND = "model_core.cli.view"
"""``mome view`` hands over to the plugin: the one model_core module that imports ``napari_mome`` (inside the
command only; tests/napari_mome/test_view_cli.py checks that building the CLI imports no napari or Qt)."""
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for root in ROOTS:
        for p in sorted((REPO / root).rglob("*.py")):
            parts = p.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(path: Path, name: str, modules: dict[str, Path]) -> Iterator[str]:
    """Every module ``path`` imports (absolute names; ``from pkg import mod`` resolved to ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                yield f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in _imports(path, name, modules):
            if target in modules and target != name:
                graph[name].add(target)
            elif target.split(".")[0] not in ROOTS:
                graph[name].add(target)  # third-party, kept for the forbidden-import check
    return graph


def _part(module: str) -> str:
    """``model_core.engine.predictor`` -> ``engine``; ``model_core.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "model_core" and len(parts) > 1 else parts[0]


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

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_import_cycles() -> None:
    graph = _graph()
    internal = {m: {t for t in ts if t.split(".")[0] in ROOTS} for m, ts in graph.items()
                if not m.endswith("__main__")}
    assert _cycles(internal) == []


def test_core_parts_import_only_downwards() -> None:
    bad = []
    for module, targets in _graph().items():
        if not module.startswith("model_core."):
            continue
        part = _part(module)
        for t in targets:
            if t.split(".")[0] in FORBIDDEN_IN_CORE[3:] and not (module == NAPARI_COMMAND and t == "napari_mome._view"):
                bad.append(f"{module} -> {t}")  # model_core never imports napari or Qt
            elif part in CORE and (t.startswith(FORBIDDEN_IN_CORE) or t.split(".")[0] in FORBIDDEN_IN_CORE):
                bad.append(f"{module} -> {t}")
            elif part in ALLOWED and t.startswith("model_core.") and _part(t) not in ALLOWED[part] | {part}:
                bad.append(f"{module} -> {t}")
    assert bad == []


def test_no_package_import_cycles() -> None:
    parts: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        if module.endswith("__main__"):
            continue
        for t in targets:
            if t.split(".")[0] in ROOTS and _part(t) != _part(module):
                parts[_part(module)].add(_part(t))
    assert _cycles(parts) == []


def test_the_checker_sees_a_hidden_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("root", ROOTS)
def test_modules_and_functions_stay_small(root: str) -> None:
    too_long = []
    for p in sorted((REPO / root).rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{p.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{p.relative_to(REPO)}:{node.lineno} {node.name}: {n} lines")
    assert too_long == []
