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


@dataclass(frozen=True)
class WorkerSettings:
    """How often a worker proves it is alive, how long a silent worker is waited for, and how
    many trials a worker trains together.

    ``grace_seconds`` must be comfortably longer than ``heartbeat_seconds``. Heartbeats are
    stamped and judged by the database's clock on PostgreSQL, so the hosts' clocks need not
    agree (:mod:`tuner.store.claims`).
    ``batch`` is ``--batch``: claim up to that many slots of one optimizer and train them as
    one vectorised run (:mod:`tuner.driver.batch`); None takes the study's ``batch`` (else 1).
    It changes how runs are carried out, never their results.
    """

    heartbeat_seconds: float = 10.0
    grace_seconds: float = 60.0
    batch: int | None = None
    outage_seconds: float = 600.0
    """How long a worker rides a database outage (``$TUNER_OUTAGE_SECONDS``): it keeps
    training the trial in hand and retries with backoff; past this it exits with one line
    (:mod:`tuner.store.retry`)."""

    @classmethod
    def from_env(
        cls, grace_seconds: float | None = None, batch: int | None = None
    ) -> WorkerSettings:
        """Defaults, overridden by ``$TUNER_HEARTBEAT_SECONDS`` / ``$TUNER_GRACE_SECONDS`` /
        ``$TUNER_OUTAGE_SECONDS``, the
        grace period by ``grace_seconds`` (``--grace-period``) when given; ``batch`` is
        ``--batch``."""
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
        return cls(heartbeat, grace, check_batch(batch), outage)
