"""Running a study with local worker processes: start them, show progress, stop them together.

``run_study(workers=1)`` runs the worker in the calling process; with more, it spawns that many
processes. Ctrl-C (SIGINT) or SIGTERM stops every worker cleanly: each releases its trial, which
the next run retries. A worker process also ends when its parent dies, however it died
(``PR_SET_PDEATHSIG`` on Linux, a watcher thread elsewhere): killing ``tuner study run`` never
leaves workers behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from tuner.driver.settings import DriverError, WorkerSettings
from tuner.driver.supervision import current_status, graceful_signals
from tuner.driver.worker import Worker, WorkerReport
from tuner.store.studies import StudyStatus

if TYPE_CHECKING:
    from tuner.driver.ray_backend import RayPlacement

BACKENDS = ("local", "ray")


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


def _set_threads(workers: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def worker_process(
    name: str, url: str | None, workers: int, timeout: float | None, grace: float | None,
    parent: int, batch: int | None = None,
) -> None:
    """The body of one spawned local worker process."""
    with graceful_signals():
        end_with_parent(parent)
        try:
            _set_threads(workers)
            settings = WorkerSettings.from_env(grace, batch)
            Worker(name, url, settings=settings, timeout=timeout).run()
        except KeyboardInterrupt:
            pass


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
) -> WorkerReport:
    """Run a study to the end with ``workers`` local workers. ``on_progress`` gets the study's
    status after every trial (one worker) or every second (several). Ctrl-C stops every worker
    cleanly and raises KeyboardInterrupt once they have stopped.

    ``gpus`` spreads the worker processes over those GPUs (:mod:`tuner.driver.gpus`).
    ``backend="ray"`` runs the workers as Ray tasks placed as ``ray`` says
    (:mod:`tuner.driver.ray_backend`, imported only then). ``batch`` trains up to that many
    trials of one optimizer together in each worker (None: the study's ``batch``, else 1)."""
    settings = WorkerSettings.from_env(grace_seconds, batch)
    if workers < 1:
        raise DriverError(f"--workers must be at least 1, got {workers}")
    if backend not in BACKENDS:
        raise DriverError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")

    def progress() -> None:
        if on_progress is not None:
            on_progress(current_status(url, name))

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
                          batch)


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
) -> WorkerReport:
    """Spawn ``workers`` local worker processes and show progress until they are done."""
    import multiprocessing

    if current_status(url, name).status in ("finished", "incomplete"):
        return WorkerReport(already_finished=True, stopped="finished")
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=worker_process,
            args=(name, url, workers, timeout, grace_seconds, os.getpid(), batch),
            name=f"tuner-worker-{index}",
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
    except KeyboardInterrupt:
        interrupted = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(timeout=60)
    progress()
    if interrupted:
        raise KeyboardInterrupt
    status = current_status(url, name)
    report = WorkerReport(trials=status.done)
    report.stopped = {"finished": "finished", "incomplete": "finished"}.get(
        status.status, "stopped" if status.status in ("stopping", "stopped") else "timeout"
    )
    return report
