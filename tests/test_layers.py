"""tuner's packages are layers: each imports only the layers below it, and no module imports itself
back through others (no circle).

The order, bottom to top (the README's Layout section draws it): errors and version; task ->
plugin -> training -> study -> store -> advice -> driver | report -> the Python ``Study`` API ->
server -> commands -> cli and the public face. Every import counts, at the top of a module or
inside a function (a lazy import is still a dependency), including those only for type checking.
The deprecated old paths (:mod:`tuner._moved`) sit on top: nothing inside tuner may use them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "tuner"

LAYERS: list[set[str]] = [
    {"tuner.errors", "tuner.version", "tuner._faces"},
    {"tuner.task"},
    {"tuner.plugin"},
    {"tuner.training"},
    {"tuner.study"},
    {"tuner.store"},
    {"tuner.advice"},
    {"tuner.driver", "tuner.report"},
    {"tuner.study_api"},
    {"tuner.server"},
    {"tuner.commands"},
    {"tuner.cli", "tuner.testing", "tuner"},
    {"tuner.__main__", "tuner._moved"},
    {"tuner.space", "tuner.optimizer", "tuner.task_builders", "tuner.hookspecs",
     "tuner.plugins", "tuner.batched"},
]
"""Layers, bottom first. A module belongs to the longest name listed that is it or its package;
two names in one set are peers, which may not import each other."""


def modules_of(root: Path) -> dict[str, Path]:
    """Every module under the package directory ``root``, by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that the module ``name`` at ``path`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph_of(root: Path) -> dict[str, set[str]]:
    modules = modules_of(root)
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def layer_of(module: str, layers: list[set[str]]) -> tuple[int, str]:
    """(the layer's index, the name that placed it there) of ``module``: the longest name listed
    that is the module itself or, for a name with a dot, its package."""
    best: tuple[int, str] | None = None
    for index, names in enumerate(layers):
        for owner in names:
            if module == owner or "." in owner and module.startswith(owner + "."):
                if best is None or len(owner) > len(best[1]):
                    best = (index, owner)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def back_edges(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """Imports that run against the layer order, or between two peers of one layer."""
    wrong = []
    for module, targets in sorted(graph.items()):
        here, owner = layer_of(module, layers)
        for target in sorted(targets):
            there, target_owner = layer_of(target, layers)
            if target_owner != owner and there >= here:
                wrong.append(f"{module} -> {target}")
    return wrong


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_tuner_has_no_import_circle():
    assert circles(graph_of(SOURCE)) == []


def test_every_import_runs_down_the_layers():
    assert back_edges(graph_of(SOURCE), LAYERS) == []


def test_the_checks_find_a_circle_and_a_back_edge_in_a_small_tree(tmp_path: Path):
    """The two checks above, on a tree made to break them: they must say where."""
    root = tmp_path / "tuner"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "task/__init__.py": "",
        "task/contract.py": "from tuner.task import builders\n",
        "task/builders.py": "def f():\n    from tuner.task.contract import Task\n",
        "store/__init__.py": "",
        "store/queries.py": "from tuner.errors import TunerError\nfrom . import models\n",
        "store/models.py": "",
        "training/__init__.py": "",
        "training/loop.py": "import tuner.store.queries\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    graph = graph_of(root)
    assert graph["tuner.store.queries"] == {"tuner.errors", "tuner.store.models"}
    assert circles(graph) == [["tuner.task.builders", "tuner.task.contract"]]
    ordered = [{"tuner.errors"}, {"tuner.task"}, {"tuner.store"}, {"tuner.training"}, {"tuner"}]
    assert back_edges(graph, ordered) == []
    swapped = [{"tuner.errors"}, {"tuner.task"}, {"tuner.training"}, {"tuner.store"}, {"tuner"}]
    assert back_edges(graph, swapped) == ["tuner.training.loop -> tuner.store.queries"]
    peers = [{"tuner.errors"}, {"tuner.task"}, {"tuner.store", "tuner.training"}, {"tuner"}]
    assert back_edges(graph, peers) == ["tuner.training.loop -> tuner.store.queries"]
    with pytest.raises(AssertionError, match="tuner.store is in no layer"):
        back_edges(graph, [{"tuner.errors"}, {"tuner.task"}, {"tuner.training"}, {"tuner"}])
