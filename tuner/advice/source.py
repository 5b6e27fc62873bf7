"""Where advice reads from: the store, opened read-only, and the task's record in it.

Advice needs of a task only what the store recorded when its studies were created (metric,
direction, target: :mod:`tuner.store.tasks`), so it never loads a task plugin, torch or Optuna,
and answers on a store copied to a machine without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tuner.errors import NotFoundError, TunerError, UnknownNameError

if TYPE_CHECKING:
    from tuner.store import Store, TaskRecord
    from tuner.store.queries import RecordedOption


class NoRunsError(NotFoundError):
    """The store has nothing to advise from for this task."""


class NoTaskRecordError(TunerError):
    """The store has runs of a task but no record saying what its metric is."""


def open_for_reading(db: str | Store | None) -> tuple[Store, bool]:
    """The store to read and whether it was opened here (and so must be closed here).

    A URL (or None: ``$TUNER_DB``, then the default file) is opened read-only; a store that
    does not exist, or has no tuner tables, is "no tuner store ...; run a study first".
    """
    from tuner.store import SchemaError, Store, display_url, open_store, resolve_url

    if isinstance(db, Store):
        return db, False
    try:
        return open_store(db, readonly=True), True
    except SchemaError as error:
        if error.state is not None and error.state.state in ("missing", "empty"):
            raise NoRunsError(
                f"no tuner store at {display_url(resolve_url(db))}; run a study first"
            ) from None
        raise


def task_record(store: Store, task: str) -> TaskRecord:
    """The record of ``task``; NoRunsError (naming the tasks that have runs) when the store
    knows nothing of it, NoTaskRecordError when it has runs but no record."""
    from tuner.store import get_task
    from tuner.store.queries import tasks_with_runs

    try:
        return get_task(store, task)
    except UnknownNameError:
        measured = tasks_with_runs(store)
    if task in measured:
        raise NoTaskRecordError(
            f"task {task!r} has runs in {store.display_url} but no task record, so its metric "
            "and direction are unknown: record it (tuner.store.record_task) or create a study "
            "of it"
        )
    raise NoRunsError(no_runs_message(store, task, measured))


def no_runs_message(store: Store, task: str, measured: list[str] | None = None) -> str:
    """``no runs for task 'x' in <url>; run a study first`` (and which tasks do have runs)."""
    from tuner.store.queries import tasks_with_runs

    others = [name for name in (measured if measured is not None else tasks_with_runs(store))
              if name != task]
    text = f"no runs for task {task!r} in {store.display_url}; run a study first"
    return text + (f" (tasks with runs: {', '.join(others)})" if others else "")


def no_match_message(store: Store, task: str, where: Mapping[str, Any]) -> str:
    """``no runs of task 'x' match --where batch_size=16 (its runs have batch_size 32..128)``:
    the task, the filter, and what the task's runs recorded for each option of it."""
    from tuner.store.queries import recorded_options
    from tuner.study.training import describe_where

    have = ", ".join(_recorded_text(option) for option in recorded_options(store, task, where))
    return (f"no runs of task {task!r} match --where {describe_where(where)} "
            f"(its runs have {have})")


def _recorded_text(option: RecordedOption) -> str:
    """``batch_size 32..128``, ``schedule constant, cosine``, ``no warmup recorded``."""
    if not option.recorded:
        return f"no {option.name} recorded"
    if option.values:
        shown = ", ".join(str(v).lower() if isinstance(v, bool) else str(v)
                          for v in option.values)
        return f"{option.name} {shown}"
    low, high = (f"{bound:g}" for bound in (option.low, option.high))
    return f"{option.name} {low}" if low == high else f"{option.name} {low}..{high}"


def rankable_tasks(store: Store) -> list[str]:
    """The tasks with runs and a record (what ``compare`` and the profiles go over)."""
    from tuner.store import list_tasks
    from tuner.store.queries import tasks_with_runs

    recorded = {record.name for record in list_tasks(store)}
    return [name for name in tasks_with_runs(store) if name in recorded]


def task_by_reference(store: Store, text: str) -> str:
    """The store's name of the task that ``text`` refers to: ``text`` itself when it is a task
    name; for a reference (``path/file.py:Name``, ``module:Name``, optionally with
    ``[key=value]`` parameters), the task recorded with that reference. Nothing is imported:
    the store's task records keep each study's reference."""
    from tuner.store import list_tasks
    from tuner.task.loading import Reference, is_reference
    from tuner.task.params import split_identity

    base, params = split_identity(text)
    if not is_reference(base):
        return text
    canonical = Reference.parse(base).canonical
    found = [r for r in list_tasks(store) if r.code_ref == canonical]
    if params:
        found = [r for r in found
                 if {k: str(v).lower() for k, v in (r.params or {}).items()}.items()
                 >= {k: v.lower() for k, v in params.items()}.items()]
    if not found:
        raise NoRunsError(f"no study in {store.display_url} was created from task reference "
                          f"{text!r}; run one first")
    plain = [r for r in found if "[" not in r.name]
    return (plain or sorted(found, key=lambda r: r.name))[0].name
