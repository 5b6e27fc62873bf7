"""Creating and deleting studies: all or nothing, whatever moment a process is killed at.

``study create`` checks everything first (names, ranges, counts:
:func:`tuner.driver.resolve.resolve`), then writes in this order:

1. removes Optuna studies left for this name by an earlier create or delete that was killed
   (they belong to no tuner study: the study row is written last);
2. creates one Optuna study per optimizer (each its own commits, in Optuna's tables);
3. writes the study row and its task record in one transaction: the commit point.

Killed before 3, the name is free and nothing is listed; a new create cleans up. Killed after,
the study is whole. A worker also creates a missing Optuna study, so step 2 is not load-bearing.
The three steps run under the store's lock (:func:`tuner.store.database.store_lock`): of
concurrent creates of one name, one creates it and the others find it there ("already exists");
one create's step 1 never removes the Optuna studies of another's step 2.
``study delete`` removes the rows first (one transaction), then the Optuna studies.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tuner.driver import optuna_adapter
from tuner.driver.context import optimizer_space, study_space
from tuner.driver.study_task import load_study_task
from tuner.store import open_store
from tuner.store.database import StudyExistsError, store_lock
from tuner.store.studies import delete_study_rows, study_exists, write_study
from tuner.study.spec import StudySpec
from tuner.task.reference import check_store_identity

CRASH_ENV = "TUNER_CRASH_AT"
"""Fault injection for the kill tests: the name of a step at which ``create`` kills itself."""


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def initial_configs(
    spec: StudySpec, warm_starts: Mapping[str, Sequence[Mapping[str, Any]]] | None
) -> dict[str, list[dict[str, Any]]]:
    """Per optimizer, the configurations of its first slots: the best known ones (a warm
    start), then its recommended one for the task's kind (the plugin's preset for that kind
    over its recommended values), unless it is among them. An optimizer whose whole space is
    fixed has its one configuration only."""
    from tuner.plugin.registry import get_registry

    registry = get_registry()
    kind = load_study_task(spec, allowed_changed=True).kind
    configs = {}
    for optimizer in spec.optimizers:
        space = study_space(spec, optimizer)
        fixed = space.fixed_point()
        if fixed is not None:
            configs[optimizer] = [{"params": fixed, "origin": "recommended"}]
            continue
        first = [{"params": dict(p), "origin": "warm_start"}
                 for p in (warm_starts or {}).get(optimizer, ())]
        recommended = registry.optimizer(optimizer).recommended_for(kind, space)
        for config in first:  # a warm start that is the recommended one is the default
            if config["params"] == recommended:
                config["origin"] = "recommended"
        if all(c["params"] != recommended for c in first):
            first.append({"params": recommended, "origin": "recommended"})
        configs[optimizer] = first
    return configs


def untried_choices_warning(spec: StudySpec) -> str | None:
    """One line when the study has too few trials for every choice of a tuned training option
    to get a trial of its own (:func:`tuner.driver.policy.choices_left_out`), else None.

    Only the options the study tunes are warned about: a categorical hyperparameter of an
    optimizer is spread over the first trials too, but nobody asked for it by name.
    """
    from tuner.driver.policy import choices_left_out, choices_to_spread
    from tuner.study.training import tuned

    options = set(tuned(spec.training))
    left_out: dict[str, list[Any]] = {}
    needed = spec.trials
    for optimizer in spec.optimizers:
        choices = {name: values for name, values in
                   choices_to_spread(study_space(spec, optimizer)).items() if name in options}
        initial = spec.initial_configs.get(optimizer) or []
        trials = spec.trials_for(optimizer)
        for name, values in choices_left_out(choices, initial, trials).items():
            left_out.setdefault(name, [])
            left_out[name] += [v for v in values if v not in left_out[name]]
        while choices_left_out(choices, initial, needed):
            needed += 1
    if not left_out:
        return None
    named = ", ".join(f"{name} ({', '.join(str(v) for v in values)})"
                      for name, values in left_out.items())
    trials = f"{spec.trials} trial" + ("s" if spec.trials != 1 else "")
    return (f"Warning: with {trials} per optimizer, not every tuned choice gets a trial: "
            f"{named} may go untried; use --trials {needed} or more.")


def _recorded_ref(store: Any, task: str) -> tuple[bool, str | None]:
    """Whether the store records ``task``, and the reference its record keeps (None: a
    plugin's task)."""
    from tuner.errors import UnknownNameError
    from tuner.store.tasks import get_task

    try:
        return True, get_task(store, task).code_ref
    except UnknownNameError:
        return False, None


def create(
    spec: StudySpec,
    url: str | None = None,
    warm_starts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> StudySpec:
    """Write a checked study (:func:`tuner.driver.resolve.resolve`) and its Optuna studies.

    Returns the study as stored. Raises a one-line error, before anything is written, when the
    name is taken.
    """
    from tuner.store.tasks import TaskRecord

    task = load_study_task(spec, allowed_changed=True)
    spec = replace(
        spec,
        initial_configs=initial_configs(spec, warm_starts),
        space_hashes={o: study_space(spec, o).fingerprint() for o in spec.optimizers},
    )
    store = open_store(url)
    storage = None
    try:
        with store_lock(store.url):
            if study_exists(store, spec.name):
                raise StudyExistsError(f"a study named {spec.name!r} already exists")
            check_store_identity(task, *_recorded_ref(store, task.name))
            storage = optuna_adapter.storage(store)
            optuna_adapter.delete_studies(storage,
                                          optuna_adapter.orphan_studies(storage, spec.name))
            _crash_point("optuna")
            optuna_adapter.create_studies(
                storage, spec.name, spec.optimizers, task.direction,
                {"tuner_study": spec.name, "task": spec.task, "metric": task.metric},
            )
            _crash_point("row")
            created = write_study(store, spec, TaskRecord.from_task(task))
            _crash_point("done")
            return created
    finally:
        if storage is not None:
            optuna_adapter.close(storage)
        store.dispose()


def create_study(
    settings: Mapping[str, Any],
    db: str | None = None,
    *,
    file_settings: Mapping[str, Any] | None = None,
    warm_start: bool = False,
) -> StudySpec:
    """Check ``settings`` (flags over ``file_settings``) and create the study: what
    ``tuner study create`` and the server's create call."""
    from tuner.driver.resolve import resolve

    spec = resolve(settings, file_settings)
    warm = None
    if warm_start:
        from tuner.advice import warm_start_spec

        spaces = {o: optimizer_space(spec, o) for o in spec.optimizers}
        spec, warm = warm_start_spec(spec, spaces, db)
    return create(spec, db, warm_starts=warm)


def create_studies(
    settings: Mapping[str, Any],
    db: str | None = None,
    *,
    file_settings: Mapping[str, Any] | None = None,
    warm_start: bool = False,
) -> list[StudySpec]:
    """:func:`create_study`, or for a study file with a ``[sweep]``, one study per value
    (:func:`tuner.study.spec.sweep`). Every study of a sweep is checked, and its name found
    free, before the first is created."""
    from tuner.driver.resolve import resolve
    from tuner.study.spec import StudyFileError, sweep

    if not (file_settings or {}).get("sweep"):
        return [create_study(settings, db, file_settings=file_settings, warm_start=warm_start)]
    named = {**file_settings, "name": settings.get("name") or file_settings.get("name")}
    flags = {**settings, "name": None}
    each = sweep(named)
    for one in each:
        resolve(flags, one)
    store = open_store(db)
    try:
        taken = [one["name"] for one in each if study_exists(store, one["name"])]
    finally:
        store.dispose()
    if taken:
        raise StudyFileError(f"study {taken[0]!r} already exists; delete it or rename the sweep")
    return [create_study(flags, db, file_settings=one, warm_start=warm_start) for one in each]


def delete_study(name: str, url: str | None = None) -> int:
    """Delete a study: its rows (trials, runs, curves), then its Optuna studies. Returns the
    number of runs deleted."""
    store = open_store(url, create=False)
    storage = None
    try:
        spec, runs = delete_study_rows(store, name)
        storage = optuna_adapter.storage(store)
        optuna_adapter.delete_studies(
            storage, [optuna_adapter.study_name(spec.name, o) for o in spec.optimizers]
        )
        return runs
    finally:
        if storage is not None:
            optuna_adapter.close(storage)
        store.dispose()
