"""Tasks named by reference: ``path/to/file.py:NAME`` or ``package.module:NAME``.

``NAME`` is a :class:`tuner.task.Task` subclass (built with no arguments), an instance, or a
function returning one. The task's identity in the store is its declared ``name``; the
reference and the SHA-256 of the referenced source file (for ``package.module:NAME``, that
module's file: helpers it imports are not covered) travel with the study, and every worker loads
the same reference and checks the hash (:func:`load_study_task`).

A file path is kept absolute, so a worker started from another folder finds the same file.
Every problem is one line naming the reference (:class:`TaskReferenceError`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tuner.errors import describe_exception, first_line
from tuner.task.failures import describe_failure
from tuner.task.loading import Reference, TaskReferenceError, is_reference

__all__ = [
    "ALLOW_CHANGED_ENV", "ChangedCodeError", "Reference", "TaskReferenceError",
    "allow_changed", "allowing_changed", "check_store_identity", "is_reference", "load_reference",
]

if TYPE_CHECKING:
    from tuner.task.contract import Task

ALLOW_CHANGED_ENV = "TUNER_ALLOW_CHANGED"
"""Set to 1 (by ``--allow-changed``) to let workers run a task whose code changed."""


class ChangedCodeError(TaskReferenceError):
    """The code of a study's task differs from the code the study was created with."""


def file_hash(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _module_name(path: str) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem)
    return f"tuner_task_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:10]}"


class _ImportLoop(TaskReferenceError):
    """A file that, while imported, loads its own reference again (a script that creates a
    study of ``__file__ + ":task"`` at its top level)."""


_importing: set[str] = set()
"""Module names of the files being imported now, to stop a file that loads itself."""


def _import_file(ref: Reference) -> ModuleType:
    path = Path(ref.source)
    if not path.is_file():
        raise TaskReferenceError(f"task reference {ref.text!r}: no file {path}")
    name = _module_name(ref.source)
    if name in _importing:
        raise _ImportLoop(
            f"task reference {ref.text!r}: importing {path.name} loads the same reference "
            "again; keep the code that creates or runs a study under "
            "if __name__ == \"__main__\":"
        )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TaskReferenceError(f"task reference {ref.text!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined in the file can be pickled and found again
    _importing.add(name)
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except _ImportLoop:
        sys.modules.pop(name, None)
        raise
    except BaseException as error:  # SyntaxError, SystemExit: all one line, by reference
        sys.modules.pop(name, None)
        raise TaskReferenceError(
            f"task reference {ref.text!r}: importing {path.name} raised "
            f"{describe_failure(error)}"
        ) from None
    finally:
        _importing.discard(name)
    return module


def _import_module(ref: Reference) -> tuple[ModuleType, str]:
    try:
        module = importlib.import_module(ref.source)
    except ModuleNotFoundError as error:
        if error.name and ref.source.startswith(error.name):
            raise TaskReferenceError(
                f"task reference {ref.text!r}: no module named {error.name!r}"
            ) from None
        raise TaskReferenceError(
            f"task reference {ref.text!r}: importing {ref.source} raised "
            f"{describe_exception(error)}"
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        raise TaskReferenceError(
            f"task reference {ref.text!r}: importing {ref.source} raised "
            f"{describe_exception(error)}"
        ) from None
    path = getattr(module, "__file__", None)
    if not path:
        raise TaskReferenceError(f"task reference {ref.text!r}: module {ref.source} has no file")
    return module, path


def _attribute(module: ModuleType, ref: Reference) -> Any:
    found: Any = module
    for part in ref.attribute.split("."):
        if not hasattr(found, part):
            from tuner.task.contract import Task

            tasks = sorted(
                key for key, value in vars(module).items()
                if not key.startswith("_") and (
                    isinstance(value, Task)
                    or (isinstance(value, type) and issubclass(value, Task) and value is not Task)
                )
            )
            hint = f" (tasks in it: {', '.join(tasks)})" if tasks else ""
            raise TaskReferenceError(
                f"task reference {ref.text!r}: no attribute {ref.attribute!r}{hint}"
            )
        found = getattr(found, part)
    return found


def _instantiate(found: Any, ref: Reference) -> Task:
    from tuner.task.contract import Task

    what = "class" if isinstance(found, type) else "function"
    if isinstance(found, Task):
        return found
    if isinstance(found, type) and not issubclass(found, Task):
        raise TaskReferenceError(
            f"task reference {ref.text!r}: class {found.__name__} is not a tuner.Task subclass"
        )
    if not callable(found):
        raise TaskReferenceError(
            f"task reference {ref.text!r}: {type(found).__name__} is not a tuner.Task, a Task "
            "subclass or a function returning one"
        )
    try:
        task = found()
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        raise TaskReferenceError(
            f"task reference {ref.text!r}: calling the {what} raised {describe_failure(error)}"
        ) from None
    if not isinstance(task, Task):
        raise TaskReferenceError(
            f"task reference {ref.text!r}: the function returned {type(task).__name__}, "
            "not a tuner.Task"
        )
    return task


_loaded: dict[str, tuple[str, Task]] = {}
"""Loaded references in this process: canonical reference -> (file hash, task)."""


def load_reference(text: str, registry: Any) -> Task:
    """The task ``text`` refers to, with ``code_ref`` and ``code_hash`` set; ``registry`` (a
    :class:`tuner.plugin.registry.Registry`) holds the plugins' task names it must not take.

    Loaded once per process for one version of the file. Raises :class:`TaskReferenceError`
    (one line naming the reference) for a missing file or module, a missing attribute, an
    object that is no Task, an error while importing or building it, an invalid declaration,
    or a declared name that an installed plugin or another reference already holds.
    """
    ref = Reference.parse(text)
    if ref.is_file:
        path = ref.source
        if not Path(path).is_file():
            raise TaskReferenceError(f"task reference {ref.text!r}: no file {path}")
    else:
        spec = importlib.util.find_spec(ref.source) if _importable(ref.source) else None
        path = spec.origin if spec is not None and spec.origin else ""
    digest = file_hash(path) if path and Path(path).is_file() else ""
    cached = _loaded.get(ref.canonical)
    if cached is not None and cached[0] == digest:
        return cached[1]
    if ref.is_file:
        module = _import_file(ref)
    else:
        module, path = _import_module(ref)
        digest = file_hash(path)
    task = _instantiate(_attribute(module, ref), ref)
    problems = task.problems()
    if problems:
        raise TaskReferenceError(f"task reference {ref.text!r}: {first_line(problems[0])}")
    _check_name_free(task.name, ref, registry)
    task.code_ref = ref.canonical  # type: ignore[attr-defined]
    task.code_hash = digest  # type: ignore[attr-defined]
    task.plugin = task.plugin or "reference"
    _loaded[ref.canonical] = (digest, task)
    return task


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _check_name_free(name: str, ref: Reference, registry: Any) -> None:
    if name in registry.tasks:
        raise TaskReferenceError(
            f"task reference {ref.text!r}: task name {name!r} is already held by plugin "
            f"{registry.tasks[name].plugin!r}; give the task another name"
        )
    for canonical, (_, other) in _loaded.items():
        if other.name == name and canonical != ref.canonical:
            raise TaskReferenceError(
                f"task reference {ref.text!r}: task name {name!r} is already held by {canonical}"
            )


def check_store_identity(task: Task, recorded: bool, recorded_ref: str | None) -> None:
    """One line when the store holds the task's name for other code (a plugin, or another
    reference): the runs of both would be ranked as one task."""
    ref = getattr(task, "code_ref", None)
    if not recorded or recorded_ref == ref:
        return
    holder = recorded_ref or "a plugin task"
    raise TaskReferenceError(
        f"task name {task.name!r} ({ref or 'a plugin task'}) is already held in the store by "
        f"{holder}; give the task another name"
    )


def allow_changed() -> bool:
    """Whether ``--allow-changed`` was given to this worker (or its parent)."""
    return os.environ.get(ALLOW_CHANGED_ENV, "") not in ("", "0")


@contextmanager
def allowing_changed(allow: bool) -> Iterator[None]:
    """``--allow-changed`` for the worker processes started inside: set in the environment
    they inherit, and this process's own setting restored afterwards."""
    before = os.environ.get(ALLOW_CHANGED_ENV)
    if allow:
        os.environ[ALLOW_CHANGED_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_CHANGED_ENV, None)
        else:
            os.environ[ALLOW_CHANGED_ENV] = before
