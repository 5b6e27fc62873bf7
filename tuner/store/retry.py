"""Retries of transient database errors, at the store's boundary, and riding out an outage.

Workers on many hosts share one database, so some errors are part of normal life and go away when
the same transaction runs again: SQLite's "database is locked" (another process held the write lock
for longer than the busy timeout), PostgreSQL's serialization failures and deadlocks (the server
aborted one of two conflicting transactions) and a connection dropped by a server restart or a
network blip. :func:`retrying` runs a whole transaction again, with exponential backoff and jitter,
when one of those ends it; any other error passes through at once.

**Outages.** A process that rides outages (a worker: :func:`riding_outages`, with a bound in
seconds) keeps retrying an operation that cannot reach the database, with backoff up to
:data:`LONGEST_OUTAGE_DELAY`, until the database has been unreachable for the bound, counted from
the first failed contact of the whole process; then it raises :class:`DatabaseOutageError` (one
line), and so does every later operation at once, until a contact succeeds. Other processes (the
server, a command) retry a lost connection a few times only. :func:`last_recovery` says when the
process last got the database back, which the reaper needs (:mod:`tuner.driver.liveness`).

**A full disk** (SQLite's "database or disk is full", PostgreSQL's ``disk_full``) is neither
transient nor an outage: the same write fails again until someone frees space, and a worker that
waited for that would hold its trial while training on results it cannot keep. So it is not
retried at all: :func:`retrying` raises :class:`DatabaseFullError` at once, one line that says so,
and the worker stops (:mod:`tuner.driver.liveness` stops the trial in hand when a heartbeat meets
it first). The transaction that failed left nothing behind (SQLite and PostgreSQL roll it back
whole); the trial in hand is reaped after the grace period, as a killed worker's is, so running
the study again once space is freed resumes it.

Only transactions that are safe to run twice are retried: each store function that uses this
module says why it is (a guarded UPDATE, an INSERT under a unique index, a read).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from tuner.store.database import (
    StoreError,
    database_error,
    first_line,
    full_disk,
    is_disk_full,
)

T = TypeVar("T")

ATTEMPTS = 6
"""Tries in all (the first one and five retries)."""

BASE_DELAY_SECONDS = 0.05
"""The first backoff; each retry doubles it (0.05, 0.1, 0.2, 0.4, 0.8 s, with jitter)."""

LONGEST_OUTAGE_DELAY = 5.0
"""The longest wait between two tries while riding an outage."""

_TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
}
_DISCONNECT_SQLSTATES = {
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "08000", "08003", "08006", "08001", "08004",  # connection exceptions
}
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")
_DISCONNECT_WORDS = (
    "connection refused", "connection failed", "could not connect", "server closed the connection",
    "terminating connection", "the database system is", "connection is closed",
    "connection timed out", "no route to host", "network is unreachable", "consuming input failed",
    "connection reset", "broken pipe",
)

log = logging.getLogger(__name__)


class DatabaseOutageError(StoreError):
    """The database was unreachable for longer than this process rides an outage."""


def is_disconnect(error: BaseException) -> bool:
    """Whether the database could not be reached: the server is down, restarting, or cut off."""
    found = database_error(error)
    if found is None:
        return False
    if found.connection_invalidated:
        return True
    original = found.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate in _DISCONNECT_SQLSTATES:
        return True
    text = str(original).lower()
    return sqlstate is None and isinstance(found, OperationalError) and any(
        words in text for words in _DISCONNECT_WORDS)


def is_transient(error: BaseException) -> bool:
    """Whether running the same transaction again may well succeed."""
    found = database_error(error)
    if found is None:
        return False
    if is_disconnect(found):
        return True
    original = found.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    if isinstance(found, OperationalError):
        text = str(original).lower()
        return any(words in text for words in _SQLITE_TRANSIENT)
    return False


class _Outage:
    """This process's view of the database's reachability (shared by its threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bound = 0.0  # seconds to ride an outage; 0: do not
        self.since: float | None = None  # monotonic time of the first failed contact
        self.recovered = -math.inf  # monotonic time the database came back

    def failed(self) -> float:
        """Note a failed contact; how long the database has been unreachable."""
        with self.lock:
            now = time.monotonic()
            if self.since is None:
                self.since = now
                log.warning("the database is unreachable; retrying for up to %g s", self.bound)
            return now - self.since

    def reached(self) -> None:
        with self.lock:
            if self.since is not None:
                self.since = None
                self.recovered = time.monotonic()
                log.warning("the database is back")


_outage = _Outage()


@contextmanager
def riding_outages(seconds: float) -> Iterator[None]:
    """While inside, this process rides database outages of up to ``seconds`` (see the module
    docstring)."""
    previous = _outage.bound
    _outage.bound = seconds
    try:
        yield
    finally:
        _outage.bound = previous


def last_recovery() -> float:
    """The monotonic time this process last got the database back after an outage (-inf:
    never lost it)."""
    return _outage.recovered


def retrying(
    operation: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    base_delay: float = BASE_DELAY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``operation()``, run again after a transient error (see :func:`is_transient`), and
    through an outage when the process rides them (:func:`riding_outages`).

    ``operation`` must open and commit its own transaction, so that a retry starts afresh. The
    last error is raised when every attempt failed; :class:`DatabaseOutageError` when an outage
    outlasted the bound; :class:`DatabaseFullError` at once when the disk is full.
    """
    attempt = 0
    while True:
        try:
            result = operation()
        except Exception as error:
            if is_disk_full(error):
                raise full_disk(error) from None
            if _outage.bound > 0 and is_disconnect(error):
                down = _outage.failed()
                if down >= _outage.bound:
                    raise DatabaseOutageError(
                        f"the database has been unreachable for more than {_outage.bound:g} s "
                        f"({first_line(error)}); run the study again once it is back"
                    ) from None
                delay = min(LONGEST_OUTAGE_DELAY, base_delay * 2**attempt)
                attempt += 1
                sleep(delay * (0.5 + random.random()))
                continue
            if attempt + 1 >= attempts or not is_transient(error):
                raise
            delay = base_delay * 2**attempt * (0.5 + random.random())
            attempt += 1
            log.info("transient database error (%s); retrying in %.2f s",
                     first_line(error), delay)
            sleep(delay)
            continue
        _outage.reached()
        return result
