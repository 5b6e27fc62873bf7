"""The store functions the server calls, in one place: the same ones the CLI calls.

The server has no query or rule of its own for what the CLI already answers (rankings, advice,
study progress, export, create, extend, stop, delete): each function here hands over to the
function behind the matching command. Reads open the store read-only and import neither torch,
optuna nor the plugins (the store records what advice needs of a task); creating a study loads
the plugins, as ``tuner study create`` does, on first use; extending one loads nothing of
them. Task URLs carry the task record's id.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tuner.errors import UnknownNameError

if TYPE_CHECKING:
    from tuner.advice import Advice, Comparison, TaskRanking
    from tuner.advice.importance import Importance
    from tuner.store import Store

PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
"""What an installed task's name looks like (no ``/``, ``:`` or spaces: not a reference)."""

MAX_DATABASE_INTEGER = 2**31 - 1
"""The largest id or count a request may name (PostgreSQL's ``integer``)."""


# -- the store ---------------------------------------------------------------------------------


def open_server_store(url: str | None, *, writable: bool) -> Store:
    """The store the server reads, opened once: read-only unless writes are allowed (then a
    database without tuner's tables is created, as ``tuner study create`` would)."""
    from tuner.store import open_store

    return open_store(url, create=writable, readonly=not writable)


# -- tasks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskView:
    """A task as the server shows it: the task record (its id names it in URLs)."""

    id: int
    name: str
    kind: str | None
    metric: str | None
    direction: str | None
    target: float | None
    record: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.record, "id": self.id, "name": self.name, "kind": self.kind,
                "metric": self.metric, "direction": self.direction, "target": self.target}


def _view(record: Any) -> TaskView:
    data = asdict(record)
    return TaskView(
        id=int(record.id), name=record.name, kind=getattr(record, "kind", None),
        metric=getattr(record, "metric", None), direction=getattr(record, "direction", None),
        target=getattr(record, "target", None), record=data,
    )


def list_tasks(store: Store) -> list[TaskView]:
    """Every task the store records, with its record's id."""
    from tuner.store.tasks import list_tasks as stored_tasks

    return [_view(record) for record in stored_tasks(store)]


def get_task(store: Store, task_id: int) -> TaskView:
    """The task whose record has ``task_id``; UnknownNameError when there is none."""
    from tuner.store.tasks import get_task_by_id

    if not 0 < task_id <= MAX_DATABASE_INTEGER:
        raise UnknownNameError(f"no task with id {task_id} in the store")
    return _view(get_task_by_id(store, task_id))


# -- advice --------------------------------------------------------------------------------------


def ranking(
    store: Store, task: str, tolerance: str | None = None, budget: int | None = None,
    settle: bool = True,
) -> TaskRanking:
    """``tuner best --json``: the optimizers ranked on ``task``, with what would settle it
    (``settle`` False: without searching for it, for reads that do not show it)."""
    from tuner.advice import rank_task
    from tuner.advice.ranking import what_would_settle

    found = rank_task(task, db=store, tolerance=tolerance, budget=budget)
    if settle:
        what_would_settle(found)
    return found


def advice(
    store: Store, task: str, memory_budget: str | None = None, tolerance: str | None = None,
    budget: int | None = None,
) -> Advice:
    """``tuner advise --json``: the recommendation for ``task``."""
    from tuner.advice import advise

    return advise(task, db=store, memory_budget=memory_budget, tolerance=tolerance,
                  budget=budget)


def comparison(
    store: Store, tasks: list[str] | None, tolerance: str | None = None
) -> Comparison:
    """``tuner compare --json``: optimizers across tasks."""
    from tuner.advice import compare

    return compare(tasks, db=store, tolerance=tolerance)


def lr_points(
    store: Store, task: str, direction: str, protocol: str | None = None
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Each optimizer's configurations as (lr, mean, spread) points with their parameters and
    lr meaning (under ``protocol``: what the ranking compares), for a chart with one lr axis;
    and the optimizers left out of it with why (a multiplier is no step size:
    :func:`tuner.advice.lr_meaning.chart_points`)."""
    # integrate: tuner.store.queries.lr_results reads the same statistics for the report but
    # without each configuration's parameters, which the chart's hover shows.
    from tuner.advice.lr_meaning import chart_points
    from tuner.store.browse import lr_sensitivity
    from tuner.store.queries import lr_meanings

    points = lr_sensitivity(store, task, direction, protocol=protocol)
    return chart_points(points, lr_meanings(store, task, list(points)))


def curves(store: Store, task_ranking: TaskRanking) -> dict[str, list[dict[str, Any]]]:
    """The learning curves of each optimizer's best configuration, per seed."""
    from tuner.store.queries import best_config_curves

    return best_config_curves(store, task_ranking)


def importance(store: Store, task_ranking: TaskRanking, optimizer: str) -> Importance:
    """``tuner best --importance``'s estimate for one optimizer: each hyperparameter's share of
    the variation in its results, over the configurations the ranking compares."""
    from tuner.advice.importance import importance as importance_of

    (found,) = importance_of(task_ranking.task, [optimizer], db=store,
                             scope=task_ranking.scope, where=task_ranking.where)
    return found


def configurations(
    store: Store, task: str, optimizer: str, direction: str, protocol: str | None
) -> list[dict[str, Any]]:
    """Every configuration of ``optimizer`` on ``task`` under ``protocol`` with its mean,
    spread, seeds and parameters (best first; the diverged ones last)."""
    from tuner.store.browse import configurations as stored

    return stored(store, task, optimizer, direction, protocol=protocol)


def budget_curves(store: Store, task_ranking: TaskRanking) -> list[dict[str, Any]]:
    """Each ranked optimizer's expected best after k trials with its interval (the report's
    figure: :func:`tuner.advice.curves.curves_of`), in the ranking's order."""
    from tuner.advice.curves import curves_of

    curves = curves_of(task_ranking, store)
    order = {s.optimizer: position for position, s in enumerate(task_ranking.optimizers)}
    ordered = sorted(curves.values(), key=lambda c: (order.get(c.optimizer, len(order)),
                                                     c.optimizer))
    return [curve.to_dict() for curve in ordered]


# -- studies -------------------------------------------------------------------------------------


def list_studies(store: Store) -> list[dict[str, Any]]:
    """``tuner study list --json``: every study with its progress."""
    from tuner.store.studies import list_studies as stored_studies

    return [status.describe() for status in stored_studies(store)]


def study_status(store: Store, name: str) -> dict[str, Any]:
    """``tuner study show --json``: a study's status and progress per optimizer."""
    from tuner.store.studies import study_status as stored_status

    check_study_name(name)
    return stored_status(store, name).describe()


def study_optimizers(store: Store, name: str) -> list[str]:
    """The optimizers of study ``name`` (UnknownNameError when there is no such study)."""
    from tuner.store.studies import get_study

    check_study_name(name)
    return list(get_study(store, name).optimizers)


def study_history(store: Store, name: str, direction: str) -> dict[str, dict[str, list[Any]]]:
    """Per optimizer, the best value after each of its finished trials (the history plot)."""
    from tuner.store.study_views import best_so_far

    check_study_name(name)
    return best_so_far(store, name, direction)


def study_note(store: Store, name: str) -> str:
    """The note kept beside study ``name`` ("" when none)."""
    from tuner.store.studies import study_note as stored_note

    check_study_name(name)
    return stored_note(store, name)


def set_study_note(store: Store, name: str, note: str) -> str:
    """Keep ``note`` beside study ``name`` (at most 10,000 characters); returns it."""
    from tuner.store.studies import set_study_note as store_note

    check_study_name(name)
    return store_note(store, name, note)


def trial(store: Store, name: str, trial_id: int) -> dict[str, Any]:
    """One trial of study ``name`` with its runs and their curves."""
    from tuner.store.study_views import trial_detail

    check_study_name(name)
    if not 0 < trial_id <= MAX_DATABASE_INTEGER:
        raise UnknownNameError(f"study {name!r} has no trial with id {trial_id}")
    return trial_detail(store, name, trial_id)


def export_rows(store: Store, name: str) -> list[dict[str, Any]]:
    """``tuner study export``: one row per run of the study."""
    from tuner.store.studies import export_rows as stored_rows

    check_study_name(name)
    return stored_rows(store, name)


def create_study(store: Store, settings: dict[str, Any], *, warm_start: bool = False) -> str:
    """``tuner study create``: checks everything, writes the study; returns its name.

    ``settings`` are the command's flags (``param_range`` as its ``--param-range`` strings).
    Loads the plugins on first use, as the command does.
    """
    from tuner.driver import create_study as driver_create_study
    from tuner.study.spec import parse_range_flag

    _check_installed(settings.get("task"))
    flags = dict(settings)
    flags["ranges"] = [parse_range_flag(text) for text in flags.pop("param_range", None) or []]
    return driver_create_study(flags, store.url, warm_start=warm_start).name


def _check_installed(task: Any) -> None:
    """A study over HTTP is of an installed task: any other name is answered with the
    installed ones, never read as a file or a module of the server's machine."""
    from tuner.plugin.registry import get_registry

    installed = get_registry().tasks
    if isinstance(task, str) and task not in installed:
        raise UnknownNameError(
            f"unknown task {task!r}; the installed tasks are: {', '.join(sorted(installed))}"
        )


def extend_study(
    store: Store, name: str, trials: int, optimizers: list[str] | None = None
) -> None:
    """``tuner study extend --trials``: more trials of some optimizers, for workers to run."""
    from tuner.driver.extend import add_trials

    check_study_name(name)
    add_trials(name, store.url, trials, optimizers)


def stop_study(store: Store, name: str) -> None:
    """``tuner study stop``: workers finish the trial in hand and exit."""
    from tuner.store.studies import stop_study as stored_stop

    check_study_name(name)
    stored_stop(store, name)


def delete_study(store: Store, name: str) -> int:
    """``tuner study delete --yes``: the study, its runs and its Optuna studies; runs deleted."""
    from tuner.driver import delete_study as driver_delete_study

    check_study_name(name)
    return int(driver_delete_study(name, store.url))


def check_study_name(name: str) -> None:
    """A name no study can have (a NUL, a ``/``, over 200 characters) is not found."""
    if "\x00" in name or "/" in name or len(name) > 200:
        raise UnknownNameError(f"no study named {name[:200]!r}")
