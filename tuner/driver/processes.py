"""Running a study with local worker processes: start them, show progress, stop them together.

``run_study(workers=1)`` runs the worker in the calling process; with more, it spawns that many
processes. Ctrl-C (SIGINT) or SIGTERM stops every worker cleanly: each releases its trial, which
the next run retries. A worker process also ends when its parent dies, however it died
(``PR_SET_PDEATHSIG`` on Linux, a watcher thread elsewhere): killing ``tuner study run`` never
leaves workers behind.

Each worker process sends its report, or its error, back to the parent, which combines them
(:func:`combined_report`): a worker process that failed makes :func:`run_study` raise
:class:`WorkerProcessError`, and workers that stopped while starting because the script they
re-ran calls the study API unguarded make it raise
:class:`~tuner.driver.script_guard.UnguardedScriptError`, once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tuner.driver.policy import how_it_stopped
from tuner.driver.script_guard import (
    UNGUARDED_EXIT_CODE,
    WORKER_NAME_PREFIX,
    UnguardedScriptError,
    guard_message,
)
from tuner.driver.settings import DriverError, WorkerSettings, check_threads
from tuner.driver.supervision import current_status, graceful_signals
from tuner.driver.worker import Worker, WorkerReport
from tuner.errors import TunerError, first_line
from tuner.store import StoreError
from tuner.store.studies import StudyStatus
from tuner.task.failures import LONGEST_FAILURE, describe_failure
from tuner.training.threads import cores_per_worker

if TYPE_CHECKING:
    from tuner.driver.ray_backend import RayPlacement

BACKENDS = ("local", "ray")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a worker process cleanly: one killed by them before it could install its
handler was stopped, not broken."""


class WorkerProcessError(DriverError):
    """A local worker process failed: an error in it, or it exited or was killed otherwise."""


@dataclass(frozen=True)
class ProcessEnd:
    """How one worker process ended: its name, exit code (negative: killed by that signal),
    and what it sent back: its report, or the one line of its error (None: nothing)."""

    name: str
    exitcode: int | None
    report: WorkerReport | None = None
    error: str | None = None


def end_with_parent(parent: int) -> None:
    """Have this process get SIGTERM when its parent ``parent`` dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        with suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) == 0:
                if os.getppid() != parent:  # it died before the call
                    os.kill(os.getpid(), signal.SIGTERM)
                return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="tuner-parent-watch").start()


def worker_process(
    name: str, url: str | None, workers: int, timeout: float | None, grace: float | None,
    parent: int, batch: int | None, threads: int | None, results: Any,
) -> None:
    """The body of one spawned local worker process, one of ``workers``: run a worker (its
    runs on ``threads``, else choosing within its share of the cores) and put its report on
    ``results`` (a queue the parent reads), or the one line of its error and exit 1 (a
    traceback too for an error that is not tuner's own one-line kind: a bug).

    A stop signal at any moment, the parent's death among them (even while this process
    starts: :func:`end_with_parent` then signals at once), ends it quietly: stopped, no
    traceback; a report nobody is left to read is dropped."""
    import multiprocessing

    me = multiprocessing.current_process().name
    with graceful_signals():
        try:
            end_with_parent(parent)
            settings = WorkerSettings.from_env(grace, batch, threads,
                                               cores=cores_per_worker(workers))
            report = Worker(name, url, settings=settings, timeout=timeout).run()
        except KeyboardInterrupt:
            report = WorkerReport(stopped="interrupted")
        except TunerError as error:
            _send(results, ProcessEnd(me, None, error=first_line(str(error), LONGEST_FAILURE)))
            raise SystemExit(1) from None
        except Exception as error:
            import traceback

            traceback.print_exc()
            _send(results, ProcessEnd(me, None, error=describe_failure(error)))
            raise SystemExit(1) from None
        _send(results, ProcessEnd(me, None, report=report))


def _send(results: Any, end: ProcessEnd) -> None:
    """Put ``end`` on the parent's queue; when the parent is gone (the pipe is broken) or a
    stop signal comes meanwhile, nobody is waiting for it."""
    with suppress(KeyboardInterrupt, OSError):
        results.put(end)


def run_study(
    name: str,
    url: str | None = None,
    *,
    workers: int = 1,
    timeout: float | None = None,
    grace_seconds: float | None = None,
    on_progress: Callable[[StudyStatus], None] | None = None,
    gpus: Sequence[str] = (),
    backend: str = "local",
    ray: RayPlacement | None = None,
    batch: int | None = None,
    threads: int | None = None,
) -> WorkerReport:
    """Run a study to the end with ``workers`` local workers. ``on_progress`` gets the study's
    status after every trial (one worker) or every second (several). Ctrl-C stops every worker
    cleanly and raises KeyboardInterrupt once they have stopped.

    ``gpus`` spreads the worker processes over those GPUs (:mod:`tuner.driver.gpus`).
    ``backend="ray"`` runs the workers as Ray tasks placed as ``ray`` says
    (:mod:`tuner.driver.ray_backend`, imported only then). ``batch`` trains up to that many
    trials of one optimizer together in each worker (None: the study's ``batch``, else 1).
    ``threads`` gives every run that many torch threads (None: the study's ``threads``, else
    each run chooses within its worker's share of the cores: :mod:`tuner.training.threads`);
    a Ray worker's threads are the CPUs it reserves, so ``threads`` is refused with Ray."""
    settings = WorkerSettings.from_env(grace_seconds, batch, check_threads(threads, backend))
    if workers < 1:
        raise DriverError(f"--workers must be at least 1, got {workers}")
    if backend not in BACKENDS:
        raise DriverError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")

    def progress() -> None:
        if on_progress is None:
            return
        try:
            status = current_status(url, name)
        except StoreError:  # the database is away: the workers ride it out, the display waits
            return
        on_progress(status)

    if backend == "ray":
        from tuner.driver.ray_backend import RayPlacement, run_on_ray

        return run_on_ray(name, url, workers, timeout, settings, progress, ray or RayPlacement())
    if workers == 1 and not gpus:  # a GPU is given to a spawned process, before torch loads
        with graceful_signals():
            worker = Worker(name, url, settings=settings, timeout=timeout, on_trial=progress)
            progress()
            report = worker.run()
        progress()
        if report.stopped == "interrupted":
            raise KeyboardInterrupt
        return report
    from tuner.driver.gpus import worker_environments

    environments = worker_environments(workers, gpus)
    return _run_processes(name, url, workers, timeout, grace_seconds, progress, environments,
                          batch, threads)


@contextmanager
def spawn_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set ``variables`` in this process's environment while a child is spawned, so the child
    starts with them (before it imports anything); the previous values come back after."""
    previous = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_processes(
    name: str, url: str | None, workers: int, timeout: float | None,
    grace_seconds: float | None, progress: Callable[[], None],
    environments: Sequence[Mapping[str, str]], batch: int | None = None,
    threads: int | None = None,
) -> WorkerReport:
    """Spawn ``workers`` local worker processes and show progress until they are done."""
    import multiprocessing

    if current_status(url, name).status in ("finished", "incomplete"):
        return WorkerReport(already_finished=True, stopped="finished")
    context = multiprocessing.get_context("spawn")
    results = _Results(context)
    processes = [
        context.Process(
            target=worker_process,
            args=(name, url, workers, timeout, grace_seconds, os.getpid(), batch, threads,
                  results.queue),
            name=f"{WORKER_NAME_PREFIX}{index}",
        )
        for index in range(workers)
    ]
    interrupted = False
    try:
        with graceful_signals():
            for process, environment in zip(processes, environments, strict=True):
                with spawn_environment(environment):
                    process.start()
            while any(p.is_alive() for p in processes):
                progress()
                for process in processes:
                    process.join(timeout=1.0 / workers)
                results.read()
    except KeyboardInterrupt:
        interrupted = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            results.read()
            for process in processes:
                process.join(timeout=0.1)
    progress()
    if interrupted:
        raise KeyboardInterrupt
    try:
        status = current_status(url, name).status
    except StoreError:  # the database is away (the workers' errors say so): not finished
        status = "running"
    return combined_report(results.ends(processes), status, timeout)


class _Results:
    """The queue on which worker processes send how they ended, read by the parent as it
    waits (a pipe holds only so much: a worker must never block on a full one)."""

    def __init__(self, context: Any) -> None:
        self.queue = context.SimpleQueue()
        self.sent: dict[str, ProcessEnd] = {}

    def read(self) -> None:
        while not self.queue.empty():
            end = self.queue.get()
            self.sent[end.name] = end

    def ends(self, processes: Sequence[Any]) -> list[ProcessEnd]:
        """How each of ``processes`` (ended) ended: its exit code and what it sent."""
        self.read()
        return [replace(self.sent[p.name], exitcode=p.exitcode) if p.name in self.sent
                else ProcessEnd(p.name, p.exitcode) for p in processes]


def combined_report(
    ends: Sequence[ProcessEnd], status: str, timeout: float | None
) -> WorkerReport:
    """One report for the worker processes that ended as ``ends``, the study being at
    ``status`` (:class:`~tuner.store.studies.StudyStatus`) and ``timeout`` the one given.

    Raises :class:`~tuner.driver.script_guard.UnguardedScriptError` when workers stopped while
    starting because the script they re-ran calls the study API unguarded, and
    :class:`WorkerProcessError` (the first failure's line, and how many) when any failed."""
    if any(end.exitcode == UNGUARDED_EXIT_CODE and end.report is None for end in ends):
        raise UnguardedScriptError(guard_message())
    failures = [f"{end.name}: {problem}" for end in ends
                if (problem := process_failure(end)) is not None]
    if failures:
        others = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise WorkerProcessError(
            f"{len(failures)} of {len(ends)} worker processes failed; {failures[0]}{others}"
        )
    reports = [end.report for end in ends if end.report is not None]
    stops = [report.stopped for report in reports]
    stops += ["interrupted" for end in ends if end.report is None]  # killed by a stop signal
    return WorkerReport(trials=sum(report.trials for report in reports),
                        stopped=how_it_stopped(status, stops, timeout))


def process_failure(end: ProcessEnd) -> str | None:
    """What went wrong in a worker process that ended as ``end``, or None (it ran to its end,
    or was stopped by SIGINT/SIGTERM before it could report)."""
    if end.error is not None:
        return end.error
    if end.report is not None:
        return None
    code = end.exitcode
    if code is not None and code < 0:
        if -code in STOP_SIGNALS:
            return None
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code} without a report"
