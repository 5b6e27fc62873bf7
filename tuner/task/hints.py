"""What a task name that names nothing may have meant: ``wine.py`` for ``wine.py:NAME``.

A text that looks like a file (``wine.py``, a path) or a module (``pkg.mod``) but has no
``:NAME`` is a reference with its name forgotten. The names it could take are read from the
file's source with :mod:`ast`, never by importing it (importing runs the user's code, and may
train a model): module-level names bound to ``from_function(...)`` or to an instance of a Task
subclass, Task subclasses, and functions that return a task.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

MOST_CANDIDATES = 4
"""Names offered in one hint, so that the error stays one readable line."""


def reference_hint(text: str) -> str | None:
    """``did you mean wine.py:task?`` (or ``wine.py:NAME`` when the file names no task we can
    see) when ``text`` looks like a file or a module; None when it looks like neither."""
    found = _source_of(text)
    if found is None:
        return None
    written, source = found
    candidates = task_candidates(source) if source.is_file() else []
    if not candidates:
        return f"did you mean {written}:NAME?"
    hint = f"did you mean {written}:{candidates[0]}?"
    if len(candidates) > 1:
        shown = candidates[:MOST_CANDIDATES]
        hint += f" (tasks in it: {', '.join(shown)}{', ...' if shown != candidates else ''})"
    return hint


def _source_of(text: str) -> tuple[str, Path] | None:
    """How ``text`` would be written as the source of a reference, and the file it names: a
    path (which may not exist), a dotted module (found without importing anything), or a name
    with a ``.py`` file of that name here; None when it looks like none of these."""
    path = Path(text).expanduser()
    if text.endswith(".py") or "/" in text or "\\" in text or path.exists():
        return text, path
    if text.isidentifier() and Path(f"{text}.py").is_file():
        return f"{text}.py", Path(f"{text}.py")
    parts = text.split(".")
    if len(parts) > 1 and all(part.isidentifier() for part in parts):
        return text, _module_file(parts) or Path(text)
    return None


def _module_file(parts: list[str]) -> Path | None:
    """The source file of the module ``parts`` names, walking the package folders from the
    top-level package's location (``find_spec`` of a submodule would import its parents)."""
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    found = Path(spec.origin) if spec.origin and not folders else None
    for part in parts[1:]:
        found = None
        for folder in folders:
            package = Path(folder) / part / "__init__.py"
            module = Path(folder) / f"{part}.py"
            if package.is_file():
                found, folders = package, [str(package.parent)]
                break
            if module.is_file():
                found, folders = module, []
                break
        if found is None:
            return None
    return found if found is not None and found.suffix == ".py" else None


def task_candidates(path: Path) -> list[str]:
    """The public names of a Python file that a reference could name: variables holding a
    task, then functions returning one, then Task subclasses that declare a name, each in the
    file's order; empty when the file cannot be read or parsed."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
    classes = _task_classes(tree)
    found: list[tuple[int, str]] = []
    for node in tree.body:
        for name in _names_bound(node, classes):
            if not name.startswith("_") and name not in (n for _, n in found):
                found.append((_PREFERENCE[type(node)], name))
    return [name for _, name in sorted(found, key=lambda pair: pair[0])]


_PREFERENCE = {ast.Assign: 0, ast.AnnAssign: 0, ast.FunctionDef: 1, ast.AsyncFunctionDef: 1,
               ast.ClassDef: 2}
"""Which kind of name a hint offers first: the variable a user most likely meant."""


def _task_classes(tree: ast.Module) -> dict[str, bool]:
    """The classes of the file that derive from ``Task`` (directly or through a class of the
    same file), each with whether it declares a ``name`` (itself or a class it derives from)."""
    definitions = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    classes: dict[str, bool] = {}
    grew = True
    while grew:
        grew = False
        for node in definitions:
            bases = [_called(base) for base in node.bases]
            if node.name in classes or not any(b in classes or b == "Task" for b in bases):
                continue
            inherited = any(classes.get(b or "", False) for b in bases)
            classes[node.name] = inherited or _declares_name(node)
            grew = True
    return classes


def _declares_name(node: ast.ClassDef) -> bool:
    """Whether a class body sets ``name`` (``name = "..."`` or ``name: str = "..."``)."""
    for statement in node.body:
        targets = (statement.targets if isinstance(statement, ast.Assign)
                   else [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "name" for t in targets):
            return True
    return False


def _called(node: ast.expr) -> str | None:
    """The last name of ``f``, ``module.f`` (or of the function called in ``f(...)``)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _makes_task(value: ast.expr | None, classes: dict[str, bool]) -> bool:
    """Whether an expression builds a task: ``from_function(...)`` or ``SomeTask(...)``."""
    return isinstance(value, ast.Call) and (
        _called(value) in classes or _called(value) == "from_function"
    )


def _names_bound(node: ast.stmt, classes: dict[str, bool]) -> list[str]:
    """The names one top-level statement gives a task, a Task subclass or a task function."""
    if isinstance(node, ast.ClassDef):
        return [node.name] if classes.get(node.name) else []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.name] if _returns_task(node, classes) else []
    if isinstance(node, ast.Assign) and _makes_task(node.value, classes):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    if isinstance(node, ast.AnnAssign) and _makes_task(node.value, classes):
        return [node.target.id] if isinstance(node.target, ast.Name) else []
    return []


def _returns_task(
    function: ast.FunctionDef | ast.AsyncFunctionDef, classes: dict[str, bool]
) -> bool:
    """A function annotated to return a Task (or a subclass of the file), or one that returns
    ``from_function(...)`` / ``SomeTask(...)``."""
    returns = function.returns
    if isinstance(returns, ast.Constant) and isinstance(returns.value, str):
        returns = ast.Name(id=returns.value.rpartition(".")[2])  # a quoted annotation
    if returns is not None and (
        _called(returns) in classes or _called(returns) in ("Task", "FunctionTask")
    ):
        return True
    return any(
        isinstance(node, ast.Return) and _makes_task(node.value, classes)
        for node in ast.walk(function)
    )
