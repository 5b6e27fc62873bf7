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
from collections.abc import Iterator
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

PLUGIN_FREE = ("tuner.task", "tuner.study", "tuner.store", "tuner.advice")
"""The layers that never load a plugin: a study's spec, the store and the advice work on a store
copied to a machine without the plugins (or torch)."""

REGISTRY = "tuner.plugin.registry"


def modules_of(root: Path) -> dict[str, Path]:
    """Every module under the package directory ``root``, by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _type_checking(node: ast.AST) -> bool:
    """Whether ``node`` is an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) block."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST, runtime_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, at its top or inside a function; with
    ``runtime_only``, not those in the body of ``if TYPE_CHECKING:``, which never runs."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif runtime_only and _type_checking(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def imports_of(
    path: Path, name: str, modules: dict[str, Path], runtime_only: bool = False
) -> set[str]:
    """The modules of ``modules`` that the module ``name`` at ``path`` imports, anywhere in it
    (only those imports that can run, with ``runtime_only``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in import_nodes(ast.parse(path.read_text(), str(path)), runtime_only):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph_of(root: Path, runtime_only: bool = False) -> dict[str, set[str]]:
    modules = modules_of(root)
    return {name: imports_of(path, name, modules, runtime_only) for name, path in modules.items()}


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


def path_to(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """The shortest chain of imports from ``start`` to ``goal`` (both included), None if none."""
    came_from: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target in came_from:
                    continue
                came_from[target] = node
                if target == goal:
                    chain = [target]
                    while came_from[chain[-1]] is not None:
                        chain.append(came_from[chain[-1]])
                    return chain[::-1]
                following.append(target)
        frontier = following
    return None


def reaching(graph: dict[str, set[str]], layers: tuple[str, ...], goal: str) -> list[str]:
    """``a -> b -> goal`` for each module of ``layers`` that imports ``goal``, itself or through
    others."""
    found = []
    for module in sorted(graph):
        if any(module == layer or module.startswith(layer + ".") for layer in layers):
            chain = path_to(graph, module, goal)
            if chain is not None:
                found.append(" -> ".join(chain))
    return found


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


def write_tree(root: Path, files: dict[str, str]) -> None:
    """A small package tree under ``root``: each file by its path relative to it."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_tuner_has_no_import_circle():
    assert circles(graph_of(SOURCE)) == []


def test_every_import_runs_down_the_layers():
    assert back_edges(graph_of(SOURCE), LAYERS) == []


def test_the_plugin_free_layers_never_reach_the_plugin_registry():
    """No module of the task, study, store or advice layers imports the plugin registry: not
    directly, not lazily inside a function, not through other tuner modules. An import under
    ``if TYPE_CHECKING:`` is left out: it names a type for the checker and never runs (the
    store's annotations name :class:`tuner.training.loop.RunResult`, whose module loads the
    registry when ``train`` is given names)."""
    assert reaching(graph_of(SOURCE, runtime_only=True), PLUGIN_FREE, REGISTRY) == []


def test_the_registry_check_finds_a_lazy_reach_through_another_module(tmp_path: Path):
    """The check above, on a tree made to break it: a function of the store imports a module
    that imports the registry (found, with its chain); a type-only import is not a reach."""
    root = tmp_path / "tuner"
    files = {
        "__init__.py": "",
        "plugin/__init__.py": "",
        "plugin/registry.py": "",
        "training/__init__.py": "",
        "training/loop.py": "def train():\n    from tuner.plugin.registry import get\n",
        "store/__init__.py": "",
        "store/runs.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from tuner.training.loop import RunResult\n",
        "store/claims.py": "def claim():\n    from tuner.training import loop\n",
        "advice/__init__.py": "from tuner.store import runs\n",
    }
    write_tree(root, files)
    assert reaching(graph_of(root, runtime_only=True), PLUGIN_FREE, REGISTRY) == [
        "tuner.store.claims -> tuner.training.loop -> tuner.plugin.registry"]
    assert reaching(graph_of(root), PLUGIN_FREE, REGISTRY) == [
        "tuner.advice -> tuner.store.runs -> tuner.training.loop -> tuner.plugin.registry",
        "tuner.store.claims -> tuner.training.loop -> tuner.plugin.registry",
        "tuner.store.runs -> tuner.training.loop -> tuner.plugin.registry",
    ]


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
    write_tree(root, files)
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


def is_private(name: str) -> bool:
    """``_name`` or ``__name``: private by Python's convention (a dunder such as ``__init__``
    is not)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def inside(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or one of its submodules."""
    return module == package or module.startswith(package + ".")


def names_defined(tree: ast.AST) -> set[str]:
    """The names a module defines itself: functions, classes, assigned names (class attributes
    included) and attributes it assigns on ``self`` or ``cls``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            names.add(node.attr)
    return names


def private_uses_in(path: Path, name: str, modules: dict[str, Path]) -> list[str]:
    """Where the module ``name`` at ``path`` uses another module's private names (the rules are
    :func:`private_uses`'s), as ``module:line: code``."""
    tree = ast.parse(path.read_text(), str(path))
    top = name.split(".")[0]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    bound: dict[str, str] = {}  # a local name -> the module of the tree it names
    outside: set[str] = set()  # local names imported from outside the tree
    wrong: list[tuple[int, str]] = []

    def found(node: ast.stmt | ast.expr, code: str) -> None:
        wrong.append((node.lineno, f"{name}:{node.lineno}: {code}"))

    def reaches(module: str, attr: str) -> bool:
        """Whether ``module.attr``, used here, is another module's private name: a private
        module outside its package, or a private name of a module other than this one."""
        if not is_private(attr):
            return False
        if f"{module}.{attr}" in modules:
            return not inside(name, module)
        return module != name

    def through_private_module(module: str) -> bool:
        parts = module.split(".")
        return any(is_private(part) and not inside(name, ".".join(parts[:index]))
                   for index, part in enumerate(parts) if index)

    def module_of(node: ast.expr) -> str | None:
        """The module of the tree that ``a.b.c`` names here, through this module's imports."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in bound:
            return None
        dotted = ".".join([bound[node.id], *reversed(parts)])
        return dotted if dotted in modules else None

    def root_name(node: ast.expr) -> str | None:
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != top:
                    outside.add((alias.asname or alias.name).split(".")[0])
                    continue
                if through_private_module(alias.name):
                    found(node, f"import {alias.name}")
                bound[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.split(".")[0] != top:
                outside.update(alias.asname or alias.name for alias in node.names)
                continue
            if through_private_module(base):
                found(node, f"from {base} import ...")
            for alias in node.names:
                if reaches(base, alias.name):
                    found(node, f"from {base} import {alias.name}")
                if f"{base}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"

    own = names_defined(tree)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not is_private(node.attr):
            continue
        module = module_of(node.value)
        if module is not None:
            if reaches(module, node.attr):
                found(node, ast.unparse(node))
            continue
        receiver = node.value
        if not (isinstance(node.ctx, (ast.Store, ast.Del)) or id(node) in called):
            continue
        if isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"):
            continue
        if (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name)
                and receiver.func.id == "super"):
            continue
        if root_name(receiver) in outside or node.attr in own:
            continue
        found(node, ast.unparse(node))
    return [text for _, text in sorted(wrong)]


def private_uses(root: Path) -> list[str]:
    """Where a module of the package at ``root`` uses a private name (``_name``) of another
    module, as ``module:line: code``, in the order of the modules.

    Its reach, kept simple (it reads the source, it does not follow types):

    - imports: ``from tuner.x import _name`` (relative ones too) anywhere but in ``tuner.x``;
      ``import tuner.x as m`` (or ``from tuner import x``) then ``m._name``. A private module
      (``tuner.commands._output``) is private to its package: its package's modules may import
      it and what it defines, others may not, nor anything below it;
    - other objects: ``obj._name = ...``, ``del obj._name`` and ``obj._name(...)``, where
      ``obj`` is not ``self``, ``cls`` or ``super()``. Exempt are a name the module defines
      itself (its classes' own private state, handled on another instance of the class, as
      ``Task.with_params`` does on its copy) and objects imported from outside tuner (a third
      party's internals, such as torch's fused kernels, are used knowingly, in one place).

    Not caught: a plain read of ``obj._name`` (so the Optuna adapter, the one module allowed
    Optuna's internals, reads ``study._storage``), a private name reached through ``getattr``,
    and a private name of another module that this module happens to define too.
    """
    modules = modules_of(root)
    return [use for name, path in modules.items() for use in private_uses_in(path, name, modules)]


def test_no_module_uses_another_modules_private_names():
    assert private_uses(SOURCE) == []


def test_the_private_name_check_finds_each_kind_of_reach_in_a_small_tree(tmp_path: Path):
    """The check above, on a tree made to break it (and to keep to its exemptions)."""
    root = tmp_path / "tuner"
    files = {
        "__init__.py": "",
        "_faces.py": "def lazy_face():\n    pass\n",
        "commands/__init__.py": "",
        "commands/_output.py": "def output_options():\n    pass\n",
        "commands/study.py": (
            "from tuner.commands import _output\n"
            "from tuner.commands._output import output_options\n"
            "from tuner._faces import lazy_face\n"
        ),
        "training/__init__.py": "from tuner._faces import lazy_face\n",
        "training/loop.py": (
            "import sys\n"
            "class _Run:\n"
            "    _limit = 1\n"
            "    def _check(self):\n"
            "        self._stop = True\n"
            "        super()._check()\n"
            "    def copy(self):\n"
            "        other = _Run()\n"
            "        other._limit = 2\n"
            "        return sys._getframe(1)\n"
        ),
        "training/batched.py": (
            "from tuner.training.loop import _Run, train\n"
            "from .loop import _Run as Run\n"
            "import tuner.training.loop as loop\n"
            "from tuner.commands._output import output_options\n"
            "def go(run):\n"
            "    loop._Run()\n"
            "    run._stop = True\n"
            "    run._check()\n"
            "    del run._limit\n"
            "    import tuner.training.loop\n"
            "    import tuner.commands._output\n"
            "    tuner.training.loop._Run()\n"
            "    return run._stop\n"
        ),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert private_uses(root) == [
        "tuner.training.batched:1: from tuner.training.loop import _Run",
        "tuner.training.batched:2: from tuner.training.loop import _Run",
        "tuner.training.batched:4: from tuner.commands._output import ...",
        "tuner.training.batched:6: loop._Run",
        "tuner.training.batched:7: run._stop",
        "tuner.training.batched:8: run._check",
        "tuner.training.batched:9: run._limit",
        "tuner.training.batched:11: import tuner.commands._output",
        "tuner.training.batched:12: tuner.training.loop._Run",
    ]
