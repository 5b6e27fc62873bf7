"""The Python API of studies, for scripts and notebooks: create, run, read the answer.

::

    study = tuner.Study.create("mine", task="model.py:MyTask", optimizers=["adamw", "lion"],
                               trials=20, seeds=3)
    study.run(workers=2)
    study.best()          # the ranking (tuner.advice.best)
    study.extend(until_settled=True, max_trials=60)   # rounds until P(best) >= 0.9
    tuner.Study.load("mine").advise()

A task may be given as an object too; worker processes rebuild it from a reference they can
import (its file, or ``module:name``), so a task built in ``__main__`` (a script run directly, a
notebook cell) is refused with the line that works instead: ``task=__file__ + ":task"`` in a
script, naming the variable that holds the task.

With ``workers`` above 1, each worker process re-runs the calling script as it starts, so a
script must keep its study calls under ``if __name__ == "__main__":``; one that does not is
stopped with one line that says so (:mod:`tuner.driver.script_guard`). ``run`` returns only when
the study finished or stopped as asked (a stop, a timeout); when a worker process failed, or slots
were given up because their training failed again and again, it raises
:class:`StudyRunError` with the error, which says where it happened in the task's code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from tuner.driver.script_guard import refuse_in_starting_worker
from tuner.errors import TunerError


class NotImportableError(TunerError):
    """A task object that worker processes could not rebuild."""


class StudyRunError(TunerError):
    """A study run that ended without its trials done, for a reason nobody asked for."""


def task_reference_of(task: Any) -> str:
    """The reference workers load ``task`` from: its own (a task loaded by reference), or the
    name that holds it in the importable module that built it (a variable, or its class when
    built with no arguments it is the same task).

    A task built in ``__main__`` (a script run directly, a notebook) has no such reference:
    :class:`NotImportableError` says what to pass instead (:func:`_how_to_name`)."""
    ref = getattr(task, "code_ref", None)
    if ref:
        return str(ref)
    home = _home_module(task)
    if home is not None and home != "__main__" and home in sys.modules:
        name = _name_in(sys.modules[home], task)
        if name is not None:
            return f"{home}:{name}"
    raise NotImportableError(_how_to_name(task, home))


def _home_module(task: Any) -> str | None:
    """The module whose code built ``task``: its class's; for a task made by tuner's own
    builders (:func:`tuner.task.from_function`), its build function's; None when unknown."""
    module = type(task).__module__
    if module.partition(".")[0] != "tuner":
        return module
    defined_in = getattr(task, "defined_in", None)
    return defined_in if isinstance(defined_in, str) else None


def _name_in(module: ModuleType, task: Any) -> str | None:
    """The public name of ``module`` that a reference can use for ``task``: a variable holding
    it, or its class defined there when that class, built with no arguments, gives a task of
    the same name."""
    for attribute, value in vars(module).items():
        if value is task and not attribute.startswith("_"):
            return attribute
    cls = type(task)
    if cls.__module__ != module.__name__ or "<locals>" in cls.__qualname__:
        return None
    try:
        rebuilt = cls()
    except Exception:
        return None
    return cls.__qualname__ if getattr(rebuilt, "name", None) == task.name else None


def _how_to_name(task: Any, home: str | None) -> str:
    """Why workers cannot load ``task``, and the ``task=`` that works: the script's own file
    and the name holding the task in it when there is one."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    name = _name_in(main, task) if main is not None else None
    why = f"worker processes rebuild task {task.name!r} from a reference"
    guard = ("(they import the file: keep the code that creates and runs the study under "
             "if __name__ == \"__main__\":)")
    if name is not None and script:
        return (f"{why}, and cannot import this script as __main__; pass "
                f"task=__file__ + \":{name}\" {guard}")
    if name is not None:
        return (f"{why}, and cannot import a notebook or an interactive session; move the code "
                f"that builds {name} to a file and pass task=\"path/to/file.py:{name}\"")
    held = "no module-level name holds it" + (
        f" in {home}" if home is not None and home != "__main__" else "")
    return (f"{why}, and {held}; hold it in a variable of a file and pass "
            "task=\"path/to/file.py:NAME\" (or \"package.module:NAME\"; in a script, "
            "task=__file__ + \":NAME\")")


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
        refuse_in_starting_worker()
        from tuner.driver import create_study
        from tuner.study.training import from_file_value

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
        """The study's definition (:class:`tuner.study.spec.StudySpec`)."""
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

    @property
    def note(self) -> str:
        """The note kept beside the study ("" when it has none): free text its page shows.
        Set it to keep another (at most 10,000 characters; "" removes it)."""
        from tuner.store import open_store
        from tuner.store.studies import study_note

        with open_store(self.db, create=False, readonly=True) as store:
            return study_note(store, self.name)

    @note.setter
    def note(self, text: str) -> None:
        from tuner.store import open_store
        from tuner.store.studies import set_study_note

        with open_store(self.db, create=False) as store:
            set_study_note(store, self.name, text)

    def run(self, workers: int = 1, timeout: float | None = None,
            allow_changed: bool = False, batch: int | None = None,
            retry_given_up: bool = False, threads: int | None = None) -> Any:
        """Run the study to the end with ``workers`` local processes; returns the
        :class:`~tuner.driver.WorkerReport`. The task's code is checked first (one line if it
        changed, unless ``allow_changed``). ``batch`` K trains up to K trials of one optimizer
        together (``tuner study run --batch K``). ``threads`` N trains every run on N torch
        threads (``--threads N``; default: the study's ``threads``, else each run's choice
        from its model's size, :mod:`tuner.training.threads`). ``retry_given_up`` first
        reopens the slots given up after failing again and again (``--retry-given-up``; the
        report's ``reopened`` lists them), keeping their failed attempts on record.

        Raises :class:`StudyRunError` when the study ends with trials not done for a reason
        other than a stop or the ``timeout``: a worker process failed, or slots were given up
        after their training failed again and again (their errors are in the message)."""
        from tuner.driver.supervision import retry_given_up as reopen

        with self._running(allow_changed):
            reopened = reopen(self.db, self.name) if retry_given_up else []
            report = self._run_workers(workers, timeout, batch, threads)
        report.reopened = reopened
        return report

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
        threads: int | None = None,
        allow_changed: bool = False,
    ) -> Any:
        """Add trials to the study and run them (``tuner study extend``): ``trials`` more of
        each of ``optimizers`` (default: every one of the study), or with ``until_settled``,
        rounds of trials for the optimizers still in contention (and new seeds of their best
        configurations) until the ranking of the study's own runs names its winner with
        P(best) >= 0.9 or they have ``max_trials`` trials each (``round_size`` trials a round
        when given); ``batch`` and ``threads`` as :meth:`run` takes them. Returns the
        :class:`~tuner.driver.extend.ExtendReport` (``summary()`` says how it ended;
        ``rounds`` what each round added). Raises :class:`StudyRunError` as :meth:`run`
        does."""
        from tuner.driver.extend import (
            ExtendReport,
            Round,
            add_trials,
            check_request,
            extend_until_settled,
        )

        check_request(trials, optimizers, until_settled, max_trials, round_size)

        def run() -> Any:
            return self._run_workers(workers, None, batch, threads)

        with self._running(allow_changed):
            if until_settled:
                return extend_until_settled(self.name, self.db, run, max_trials=max_trials,
                                            round_size=round_size)
            _, additions = add_trials(self.name, self.db, trials, optimizers)
            return ExtendReport(self.name, [Round(additions, {})],
                                stopped=run().stopped or "finished")

    def _run_workers(self, workers: int, timeout: float | None, batch: int | None,
                     threads: int | None) -> Any:
        """Run the study's free slots with local workers; :class:`StudyRunError` when they
        failed, or the study ended with trials not done for a reason nobody asked for."""
        from tuner.driver import WorkerProcessError, run_study

        try:
            report = run_study(self.name, self.db, workers=workers, timeout=timeout,
                               batch=batch, threads=threads)
        except WorkerProcessError as error:
            raise StudyRunError(f"study {self.name!r}: {error}") from None
        problem = unfinished_run_problem(self.status(), report.stopped)
        if problem is not None:
            raise StudyRunError(problem)
        return report

    @contextmanager
    def _running(self, allow_changed: bool) -> Iterator[None]:
        """Around a run: refuse, in one line, a call made while a worker process starts and a
        study whose task (given by reference) changed since it was created, unless
        ``allow_changed``, which the run's worker processes then inherit; the process's own
        setting is restored afterwards."""
        from tuner.driver.study_task import load_study_task
        from tuner.task.reference import allowing_changed

        refuse_in_starting_worker()
        with allowing_changed(allow_changed):
            spec = self.spec()
            if spec.task_ref:
                load_study_task(spec)
            yield

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


STOPS_ASKED_FOR = ("stopped", "timeout")
"""How a run may end with trials not done and still return: a stop was asked for
(``tuner study stop``), or the timeout given passed."""


def unfinished_run_problem(status: Any, stopped: str) -> str | None:
    """The one line on why a run that ended at ``status`` (a
    :class:`~tuner.store.studies.StudyStatus`) after its workers ``stopped`` as they did did
    not do its work, or None when it did, or stopped as asked."""
    done = f"{status.done}/{status.total} trials"
    if status.status == "incomplete":
        groups = status.grouped_errors()
        slots, error = groups[0]
        more = f" and {len(slots) - 3} more" if len(slots) > 3 else ""
        others = f" (and {len(groups) - 1} other errors)" if len(groups) > 1 else ""
        return (
            f"study {status.name!r} ended incomplete at {done}: {status.given_up} slot(s) "
            f"given up after their training failed again and again; {', '.join(slots[:3])}"
            f"{more}: {error}{others}; once fixed, run(retry_given_up=True) retries them"
        )
    if status.status == "finished" or stopped in STOPS_ASKED_FOR:
        return None
    return (
        f"study {status.name!r} ended at {done} ({stopped}): its workers stopped before it "
        f"was done; see tuner study show {status.name}"
    )
