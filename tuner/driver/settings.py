"""How a worker proves it is alive, and the driver's error type."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from tuner.errors import TunerError

HEARTBEAT_ENV = "TUNER_HEARTBEAT_SECONDS"
GRACE_ENV = "TUNER_GRACE_SECONDS"


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


@dataclass(frozen=True)
class WorkerSettings:
    """How often a worker proves it is alive, and how long a silent worker is waited for.

    ``grace_seconds`` must be comfortably longer than ``heartbeat_seconds`` (and than any clock
    difference between hosts: heartbeats are UTC timestamps written by the workers).
    """

    heartbeat_seconds: float = 10.0
    grace_seconds: float = 60.0

    @classmethod
    def from_env(cls, grace_seconds: float | None = None) -> WorkerSettings:
        """Defaults, overridden by ``$TUNER_HEARTBEAT_SECONDS`` / ``$TUNER_GRACE_SECONDS``, the
        grace period by ``grace_seconds`` (``--grace-period``) when given."""
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
        return cls(heartbeat, grace)
