"""The architecture as the imports show it: the layer contracts (import-linter, pyproject.toml)
hold, and no module of consulha imports itself back through others (type-only imports count)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if not imported.startswith("consulha"):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module.startswith("consulha") and module not in index:
            visit(module)
    return found


def test_no_import_cycle_in_consulha():
    graph = grimp.build_graph("consulha", exclude_type_checking_imports=False)
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("consulha.x", "consulha.y", "consulha.z"):
        graph.add_module(module)
    graph.add_import(importer="consulha.x", imported="consulha.y")
    graph.add_import(importer="consulha.y", imported="consulha.x")
    graph.add_import(importer="consulha.z", imported="consulha.x")
    assert cycles(graph) == [["consulha.x", "consulha.y"]]


def test_the_layer_contracts_hold():
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
