"""Running a study's workers as Ray tasks (``tuner study run --backend ray``).

Ray only starts, places and restarts the workers: each task is one ordinary
:class:`~tuner.driver.worker.Worker` that claims slots from the study's database, as a
``tuner worker`` on any host does, so the database stays the only coordinator. A task whose
process dies is started again by Ray (``max_retries``); the trial it held is reaped by the
heartbeat and retried, as with any dead worker. Ctrl-C cancels the tasks (each releases its
trial) and a rerun resumes. Each worker's runs use as many torch threads as the CPUs it
reserves (``--cpus-per-worker``, whole ones, at least one).

Without an address tuner starts a local Ray (no dashboard, in a temporary directory) sized for
the workers and shuts it down at the end; then an SQLite database works, since every worker is on
this host. With ``--address`` the database must be one the cluster reaches (PostgreSQL).
This module is imported only on that path, and imports ``ray`` only when it runs.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuner.driver.policy import how_it_stopped
from tuner.driver.settings import DriverError, WorkerSettings
from tuner.driver.worker import Worker, WorkerReport

INSTALL_HINT = 'pip install "tuner[ray]"'
# How often Ray starts a task again after its process died (a crash, the OOM killer, SIGKILL).
MAX_RETRIES = 3
CANCEL_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class RayPlacement:
    """Where the Ray workers run: the cluster (``None``: a local Ray started by tuner; ``auto``;
    ``ray://HOST:PORT``) and what each worker asks of it (GPUs may be fractional)."""

    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpus_per_worker) and self.cpus_per_worker > 0):
            raise DriverError(f"--cpus-per-worker must be positive, got {self.cpus_per_worker:g}")
        if not (math.isfinite(self.gpus_per_worker) and self.gpus_per_worker >= 0):
            raise DriverError(
                f"--gpus-per-worker must be zero or positive, got {self.gpus_per_worker:g}"
            )


def check_database(url: str | None, placement: RayPlacement) -> str:
    """The resolved URL the workers get, or DriverError (one line) when a cluster cannot reach
    it: SQLite only with the local Ray tuner starts itself. An SQLite path is made absolute."""
    from tuner.store.database import resolve_url, sqlite_path

    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is None and resolved.startswith("sqlite"):
        raise DriverError("--backend ray cannot share an in-memory SQLite database with workers")
    if path is not None and placement.address is not None:
        raise DriverError(
            "--backend ray --address needs a database every host of the cluster reaches "
            "(PostgreSQL: --db postgresql://...); SQLite works only without --address"
        )
    return f"sqlite:///{Path(path).resolve()}" if path is not None else resolved


def import_ray() -> Any:
    """The ``ray`` module, or DriverError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DriverError(
            f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def run_on_ray(
    name: str, url: str | None, workers: int, timeout: float | None,
    settings: WorkerSettings, progress: Callable[[], None], placement: RayPlacement,
) -> WorkerReport:
    """Run study ``name`` with ``workers`` Ray tasks until it is settled; ``progress`` is called
    every second. Ctrl-C cancels the tasks and raises KeyboardInterrupt once they stopped."""
    from tuner.driver.supervision import current_status, graceful_signals

    resolved = check_database(url, placement)
    ray = import_ray()
    if current_status(resolved, name).status in ("finished", "incomplete"):
        return WorkerReport(already_finished=True, stopped="finished")
    with connected(ray, workers, placement):
        task = ray.remote(_worker_task).options(
            num_cpus=placement.cpus_per_worker, num_gpus=placement.gpus_per_worker,
            max_retries=MAX_RETRIES, retry_exceptions=False, name=f"tuner-worker:{name}",
            **_runtime_env(placement),
        )
        settings = replace(settings, threads=max(1, int(placement.cpus_per_worker)))
        pending: list[Any] = []
        try:
            with graceful_signals():
                pending = [task.remote(name, resolved, settings, timeout)
                           for _ in range(workers)]
                while pending:
                    progress()
                    _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        except KeyboardInterrupt:
            _cancel(ray, pending)
            progress()
            raise
        progress()
    status = current_status(resolved, name)
    return WorkerReport(trials=status.done, stopped=how_it_stopped(status.status, [], timeout))


def _runtime_env(placement: RayPlacement) -> dict[str, Any]:
    """On a cluster, the ``TUNER_*`` settings of this process (``--allow-changed``,
    ``TUNER_PLUGINS``, ...) go to the workers in their runtime environment; a local Ray's
    workers inherit this process's environment already."""
    if placement.address is None:
        return {}
    forwarded = {key: value for key, value in os.environ.items()
                 if key.startswith("TUNER_") and key != "TUNER_DB"}
    return {"runtime_env": {"env_vars": forwarded}} if forwarded else {}


def _worker_task(
    name: str, url: str, settings: WorkerSettings, timeout: float | None
) -> tuple[int, str]:
    """The body of one Ray task: one ordinary worker on the study (trials run, how it ended)."""
    report = Worker(name, url, settings=settings, timeout=timeout).run()
    return report.trials, report.stopped


@contextmanager
def connected(ray: Any, workers: int, placement: RayPlacement) -> Iterator[None]:
    """Connect to the cluster at ``placement.address``, or start a local Ray with just the CPUs
    the workers ask for (and this machine's GPUs); shut down and clean up what was started."""
    if placement.address is not None:
        try:
            ray.init(address=placement.address, logging_level=logging.WARNING,
                     log_to_driver=False)
        except Exception as error:  # Ray raises ConnectionError, RuntimeError, ...
            raise DriverError(
                f"cannot connect to the Ray cluster at {placement.address}: {_first_line(error)}"
            ) from None
        try:
            _check_resources(ray.cluster_resources(), placement, placement.address)
            yield
        finally:
            ray.shutdown()
        return
    if placement.gpus_per_worker > 0:
        from tuner.driver.gpus import detect_gpus

        if not detect_gpus():
            raise DriverError("--gpus-per-worker: no GPU found on this machine")
    temp_dir = tempfile.mkdtemp(prefix=f"tuner-ray-{os.getpid()}-", dir=_short_temp_root())
    try:
        try:
            ray.init(
                num_cpus=max(1, math.ceil(workers * placement.cpus_per_worker)),
                include_dashboard=False, _temp_dir=temp_dir, logging_level=logging.WARNING,
                log_to_driver=False,
            )
        except Exception as error:  # Ray raises OSError, RuntimeError, ...
            raise DriverError(f"cannot start a local Ray: {_first_line(error)}") from None
        try:
            yield
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _short_temp_root() -> str:
    """Where the local Ray's session lives: the temporary directory, unless its path is too long
    for the Unix sockets Ray makes inside (107 bytes with ~70 of Ray's own), then ``/tmp``."""
    root = tempfile.gettempdir()
    if len(root) > 30 and os.path.isdir("/tmp"):
        return "/tmp"
    return root


def _check_resources(resources: dict[str, float], placement: RayPlacement, where: str) -> None:
    """DriverError when no worker could ever be placed (Ray would wait for ever)."""
    for key, asked, flag in (("CPU", placement.cpus_per_worker, "--cpus-per-worker"),
                             ("GPU", placement.gpus_per_worker, "--gpus-per-worker")):
        if asked > resources.get(key, 0.0):
            raise DriverError(
                f"{flag} {asked:g}: the Ray cluster at {where} has {resources.get(key, 0.0):g} "
                f"{key}(s) in all"
            )


def _cancel(ray: Any, pending: list[Any]) -> None:
    """Cancel the running tasks (KeyboardInterrupt inside each: its worker releases its trial)
    and wait for them to end."""
    for ref in pending:
        with suppress(Exception):
            ray.cancel(ref)
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    for ref in pending:
        with suppress(Exception):
            ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
