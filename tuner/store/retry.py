"""Retries of transient database errors, at the store's boundary.

Workers on many hosts share one database, so some errors are part of normal life and go away when
the same transaction runs again: SQLite's "database is locked" (another process held the write lock
for longer than the busy timeout), PostgreSQL's serialization failures and deadlocks (the server
aborted one of two conflicting transactions) and a connection dropped by a server restart or a
network blip. :func:`retrying` runs a whole transaction again, with exponential backoff and jitter,
when one of those ends it; any other error passes through at once.

Only transactions that are safe to run twice are retried: each store function that uses this
module says why it is (a guarded UPDATE, an INSERT under a unique index, a read).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

T = TypeVar("T")

ATTEMPTS = 6
"""Tries in all (the first one and five retries)."""

BASE_DELAY_SECONDS = 0.05
"""The first backoff; each retry doubles it (0.05, 0.1, 0.2, 0.4, 0.8 s, with jitter)."""

_TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "08000", "08003", "08006", "08001", "08004",  # connection exceptions
}
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")

log = logging.getLogger(__name__)


def is_transient(error: BaseException) -> bool:
    """Whether running the same transaction again may well succeed."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    if isinstance(error, OperationalError):
        text = str(original).lower()
        return any(words in text for words in _SQLITE_TRANSIENT) or sqlstate is None and (
            "server closed the connection" in text or "connection" in text and "lost" in text
        )
    return False


def retrying(
    operation: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    base_delay: float = BASE_DELAY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``operation()``, run again after a transient error (see :func:`is_transient`).

    ``operation`` must open and commit its own transaction, so that a retry starts afresh. The
    last error is raised when every attempt failed.
    """
    for attempt in range(attempts):
        try:
            return operation()
        except DBAPIError as error:
            if attempt + 1 >= attempts or not is_transient(error):
                raise
            delay = base_delay * 2**attempt * (0.5 + random.random())
            log.info("transient database error (%s); retrying in %.2f s",
                     str(error.orig).strip().splitlines()[0] if error.orig else error, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
