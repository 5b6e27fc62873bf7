"""The Python API of studies, for scripts and notebooks: create, run, read the answer.

::

    study = tuner.Study.create("mine", task="model.py:MyTask", optimizers=["adamw", "lion"],
                               trials=20, seeds=3)
    study.run(workers=2)
    study.best()          # the ranking (tuner.advice.best)
    study.extend(until_settled=True, max_trials=60)   # rounds until P(best) >= 0.9
    tuner.Study.load("mine").advise()

A task may be given as an object too; worker processes rebuild it from a reference they can
import (its file, or ``module:name``), so a task defined in ``__main__`` (a script run
directly, a notebook cell) is refused with a line that says how to make it importable.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tuner.errors import TunerError


class NotImportableError(TunerError):
    """A task object that worker processes could not rebuild."""


def task_reference_of(task: Any) -> str:
    """The reference workers load ``task`` from: its own (a task loaded by reference), the
    module attribute that holds it, or its class (built with no arguments)."""
    ref = getattr(task, "code_ref", None)
    if ref:
        return str(ref)
    cls = type(task)
    module_name = cls.__module__
    how = (
        "move it to a file and pass task='path/to/file.py:NAME' (or 'package.module:NAME'), "
        "NAME being the Task subclass, an instance or a function returning one"
    )
    if module_name == "__main__" or module_name not in sys.modules:
        raise NotImportableError(
            f"task {task.name!r} is defined in {module_name} (a script or a notebook), which "
            f"worker processes cannot import; {how}"
        )
    module = sys.modules[module_name]
    for attribute, value in vars(module).items():
        if value is task and not attribute.startswith("_"):
            return f"{module_name}:{attribute}"
    if "<locals>" not in cls.__qualname__:
        try:
            rebuilt = cls()
        except Exception:
            rebuilt = None
        if rebuilt is not None and getattr(rebuilt, "name", None) == task.name:
            return f"{module_name}:{cls.__qualname__}"
    raise NotImportableError(
        f"task {task.name!r} is not held by a name in module {module_name}, and its class "
        f"cannot be rebuilt without arguments, so worker processes cannot load it; {how}"
    )


class Study:
    """One study in a store (``db``: a URL, or None for the default store)."""

    def __init__(self, name: str, db: str | None = None) -> None:
        self.name, self.db = name, db

    def __repr__(self) -> str:
        return f"Study({self.name!r})"

    @classmethod
    def create(
        cls,
        name: str,
        *,
        task: Any,
        optimizers: Sequence[str],
        trials: int,
        seeds: int = 1,
        db: str | None = None,
        **settings: Any,
    ) -> Study:
        """Create a study of ``task`` (a registered name, a reference ``file.py:NAME`` or
        ``module:NAME``, or a Task object workers can import); ``settings`` are the other
        study settings (``budget``, ``sampler``, ``pruner``, ``schedule``, ``seed``,
        ``first_seed``, ``description``, ``task_params``, ``budget_unit``, and ``training``: the
        training
        options as in a study file, ``{"warmup": 100, "batch_size": (16, 256)}``, a pair of
        numbers being a tuned range and any other list tuned choices)."""
        from tuner.driver import create_study
        from tuner.study_training import from_file_value

        task_name = task if isinstance(task, str) else task_reference_of(task)
        if "training" in settings:
            settings["training"] = {
                key: from_file_value(list(value) if isinstance(value, tuple) else value)
                for key, value in settings["training"].items()
            }
        values = {"name": name, "task": task_name, "optimizers": list(optimizers),
                  "trials": trials, "seeds": seeds, **settings}
        create_study(values, db)
        return cls(name, db)

    @classmethod
    def load(cls, name: str, db: str | None = None) -> Study:
        """An existing study; UnknownNameError (listing the studies) when there is none."""
        study = cls(name, db)
        study.spec()
        return study

    def spec(self) -> Any:
        """The study's definition (:class:`tuner.studyfile.StudySpec`)."""
        from tuner.store import open_store
        from tuner.store.studies import get_study

        store = open_store(self.db, create=False, readonly=True)
        try:
            return get_study(store, self.name)
        finally:
            store.dispose()

    @property
    def task(self) -> str:
        """The name of the study's task (its identity in the store)."""
        return str(self.spec().task)

    def run(self, workers: int = 1, timeout: float | None = None,
            allow_changed: bool = False, batch: int | None = None) -> Any:
        """Run the study to the end with ``workers`` local processes; returns the
        :class:`~tuner.driver.WorkerReport`. The task's code is checked first (one line if it
        changed, unless ``allow_changed``). ``batch`` K trains up to K trials of one optimizer
        together (``tuner study run --batch K``)."""
        from tuner.driver import run_study

        self._check_task_code(allow_changed)
        return run_study(self.name, self.db, workers=workers, timeout=timeout, batch=batch)

    def extend(
        self,
        trials: int | None = None,
        optimizers: Sequence[str] | None = None,
        until_settled: bool = False,
        max_trials: int | None = None,
        workers: int = 1,
        *,
        round_size: int | None = None,
        batch: int | None = None,
        allow_changed: bool = False,
    ) -> Any:
        """Add trials to the study and run them (``tuner study extend``): ``trials`` more of
        each of ``optimizers`` (default: every one of the study), or with ``until_settled``,
        rounds of trials for the optimizers still in contention (and new seeds of their best
        configurations) until the ranking of the study's own runs names its winner with
        P(best) >= 0.9 or they have ``max_trials`` trials each (``round_size`` trials a round
        when given). Returns the :class:`~tuner.driver.extend.ExtendReport` (``summary()``
        says how it ended; ``rounds`` what each round added)."""
        from tuner.driver import run_study
        from tuner.driver.extend import (
            ExtendReport,
            Round,
            add_trials,
            check_request,
            extend_until_settled,
        )

        check_request(trials, optimizers, until_settled, max_trials, round_size)
        self._check_task_code(allow_changed)

        def run() -> Any:
            return run_study(self.name, self.db, workers=workers, batch=batch)

        if until_settled:
            return extend_until_settled(self.name, self.db, run, max_trials=max_trials,
                                        round_size=round_size)
        _, additions = add_trials(self.name, self.db, trials, optimizers)
        return ExtendReport(self.name, [Round(additions, {})], stopped=run().stopped or "finished")

    def _check_task_code(self, allow_changed: bool) -> None:
        """Refuse, in one line, a study whose task (given by reference) changed since it was
        created, unless ``allow_changed``."""
        import os

        from tuner.driver.study_task import load_study_task
        from tuner.task_reference import ALLOW_CHANGED_ENV

        if allow_changed:
            os.environ[ALLOW_CHANGED_ENV] = "1"
        spec = self.spec()
        if spec.task_ref:
            load_study_task(spec)

    def status(self) -> Any:
        """Progress and best result per optimizer (:class:`tuner.store.studies.StudyStatus`)."""
        from tuner.driver.processes import current_status

        return current_status(self.db, self.name)

    def best(self, **options: Any) -> Any:
        """Optimizers ranked on this study's runs alone (:func:`tuner.advice.rank_task` with
        ``study``); ``tuner.best(task)`` ranks every study of the task."""
        from tuner.advice import rank_task

        return rank_task(self.task, db=self.db, study=self.name, **options)

    def advise(self, **options: Any) -> Any:
        """The recommendation from this study's runs alone (:func:`tuner.advice.advise` with
        ``study``)."""
        from tuner.advice import advise

        return advise(self.task, db=self.db, study=self.name, **options)
