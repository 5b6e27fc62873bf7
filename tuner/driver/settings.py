"""How a worker proves it is alive, and the driver's error type."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from tuner.errors import TunerError

HEARTBEAT_ENV = "TUNER_HEARTBEAT_SECONDS"
GRACE_ENV = "TUNER_GRACE_SECONDS"
OUTAGE_ENV = "TUNER_OUTAGE_SECONDS"


class DriverError(TunerError):
    """A study cannot be created or run as asked."""


def _seconds(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DriverError(f"{name} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise DriverError(f"{name} must be a positive number of seconds, got {text!r}")
    return value


BATCH_LIMIT = 4096
"""The most trials one worker may train together (``--batch``)."""


def check_batch(batch: int | None) -> int | None:
    """``--batch``: None (the study's own setting), or a whole number from 1 to the limit."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                              or not 1 <= batch <= BATCH_LIMIT):
        raise DriverError(f"--batch must be a whole number from 1 to {BATCH_LIMIT}, got {batch!r}")
    return batch


THREADS_LIMIT = 4096
"""The most torch threads a worker's runs may be given (``--threads``)."""


def check_threads(threads: int | None, backend: str = "local") -> int | None:
    """``--threads``: None (the study's own setting, else each run's choice), or a whole number
    from 1 to the limit, for local workers (a Ray worker's threads are the CPUs it reserves)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) \
            or not 1 <= threads <= THREADS_LIMIT:
        raise DriverError(
            f"--threads must be a whole number from 1 to {THREADS_LIMIT}, got {threads!r}"
        )
    if backend == "ray":
        raise DriverError("--threads is for local workers; a Ray worker's threads are the CPUs "
                          "it reserves (--cpus-per-worker)")
    return threads


@dataclass(frozen=True)
class WorkerSettings:
    """How often a worker proves it is alive, how long a silent worker is waited for, how many
    trials a worker trains together, and on how many CPU threads.

    ``grace_seconds`` must be comfortably longer than ``heartbeat_seconds``. Heartbeats are
    stamped and judged by the database's clock on PostgreSQL, so the hosts' clocks need not
    agree (:mod:`tuner.store.claims`).
    ``batch`` is ``--batch``: claim up to that many slots of one optimizer and train them as
    one vectorised run (:mod:`tuner.driver.batch`); None takes the study's ``batch`` (else 1).
    ``threads`` is ``--threads``: every run's torch threads; None takes the study's
    ``threads``, else each run chooses from its step's cost within ``cores``, the worker's
    share of this machine (None: all of it; :mod:`tuner.training.threads`). They change how
    runs are carried out, not what they measure.
    """

    heartbeat_seconds: float = 10.0
    grace_seconds: float = 60.0
    batch: int | None = None
    threads: int | None = None
    cores: int | None = None
    outage_seconds: float = 600.0
    """How long a worker rides a database outage (``$TUNER_OUTAGE_SECONDS``): it keeps
    training the trial in hand and retries with backoff; past this it exits with one line
    (:mod:`tuner.store.retry`)."""

    @classmethod
    def from_env(
        cls, grace_seconds: float | None = None, batch: int | None = None,
        threads: int | None = None, cores: int | None = None,
    ) -> WorkerSettings:
        """Defaults, overridden by ``$TUNER_HEARTBEAT_SECONDS`` / ``$TUNER_GRACE_SECONDS`` /
        ``$TUNER_OUTAGE_SECONDS``, the
        grace period by ``grace_seconds`` (``--grace-period``) when given; ``batch`` is
        ``--batch``, ``threads`` ``--threads`` and ``cores`` the worker's share."""
        heartbeat = _seconds(os.environ.get(HEARTBEAT_ENV, str(cls.heartbeat_seconds)),
                             f"${HEARTBEAT_ENV}")
        if grace_seconds is not None:
            grace = _seconds(str(grace_seconds), "--grace-period")
        else:
            grace = _seconds(os.environ.get(GRACE_ENV, str(cls.grace_seconds)), f"${GRACE_ENV}")
        if grace <= heartbeat:
            raise DriverError(
                f"the grace period ({grace:g} s) must be longer than the heartbeat interval "
                f"({heartbeat:g} s)"
            )
        outage = _seconds(os.environ.get(OUTAGE_ENV, str(cls.outage_seconds)), f"${OUTAGE_ENV}")
        return cls(heartbeat, grace, check_batch(batch), check_threads(threads), cores, outage)

    def run_options(self, study_threads: int | None) -> dict[str, int | None]:
        """The training options of how this worker's runs use the CPU, for a study whose file
        set ``study_threads`` (``--threads`` wins over it)."""
        return {"threads": self.threads or study_threads, "cores": self.cores}
