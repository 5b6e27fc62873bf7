"""What a process that supervises workers needs, locally or on Ray: clean signal handling, the
study's progress read from a fresh read-only connection, and reopening given-up slots before
the workers start."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tuner.store import StoreError, open_store
from tuner.store.retry import first_line, is_disconnect
from tuner.store.studies import StudyStatus, reopen_given_up, study_status


@contextmanager
def graceful_signals() -> Iterator[None]:
    """SIGINT/SIGTERM raise KeyboardInterrupt once; repeats during the clean-up are ignored,
    so a second Ctrl-C cannot cut the release of the running trial short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def current_status(url: str | None, name: str) -> StudyStatus:
    """The study's progress, read from a fresh connection; a database that cannot be reached
    is a :class:`~tuner.store.StoreError` (one line)."""
    store = open_store(url, create=False, readonly=True)
    try:
        return study_status(store, name)
    except Exception as error:
        if not is_disconnect(error):
            raise
        raise StoreError(f"cannot reach the database at {store.display_url}: "
                         f"{first_line(error)}") from None
    finally:
        store.dispose()


def retry_given_up(url: str | None, name: str) -> list[str]:
    """Reopen the study's given-up slots (``--retry-given-up``), keeping their failed attempts
    on record; returns the slots reopened (``adamw/0``, ...)."""
    store = open_store(url, create=False)
    try:
        return reopen_given_up(store, name)
    finally:
        store.dispose()
