"""Liveness: a worker's heartbeat, the reaping of silent workers' trials, and stop requests.

A worker is attached to its study (:mod:`tuner.store.workers`) from entering :class:`Liveness`
to leaving it, so the study reads as running between trials too. One heartbeat thread per
worker keeps that attachment alive every interval, reading the study's status in the same
transaction (a ``stopping`` study sets :attr:`Liveness.stop_requested`, between trials as well),
and touches the running trial's ``heartbeat_at`` (the trials of a batch together). A trial row
that is no longer ours (it was reaped) sets that trial's *lost* flag, which stops its training
at the next evaluation. Any worker that finds a running trial silent for longer than the grace
period reaps it. A database outage longer than the worker rides, or a full disk under the
database (:mod:`tuner.store.retry`), stops the trials in hand, and :meth:`Liveness.check` raises
it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from tuner.driver.settings import WorkerSettings
from tuner.store import Store, StoreError
from tuner.store.claims import heartbeat, heartbeat_many, reap_stale
from tuner.store.database import DatabaseFullError
from tuner.store.retry import DatabaseOutageError, last_recovery
from tuner.store.studies import STOPPING
from tuner.store.workers import attach_worker, detach_worker, keep_attached

log = logging.getLogger(__name__)


class Liveness:
    """The heartbeat thread of one worker, and its reaper."""

    def __init__(self, store: Store, study_id: int, settings: WorkerSettings) -> None:
        self.store, self.study_id, self.settings = store, study_id, settings
        self.stop_requested = threading.Event()
        self.cut_off: DatabaseOutageError | DatabaseFullError | None = None
        """What cut the heartbeat off from the database for good (:meth:`check`): an outage
        past its bound, or a full disk."""
        self._watched: tuple[tuple[int, threading.Event], ...] | None = None
        self._last_reap = -math.inf
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, daemon=True, name=f"tuner-heartbeat-{os.getpid()}"
        )

    def __enter__(self) -> Liveness:
        self._worker_id = attach_worker(self.store, self.study_id, socket.gethostname(),
                                        os.getpid(), self.settings.grace_seconds)
        self._thread.start()
        return self

    def __exit__(self, kind: object, leaving: BaseException | None, *traceback: object
                 ) -> None:
        self._watched = None
        self._stop.set()
        self._thread.join()
        try:
            detach_worker(self.store, self._worker_id)
        except Exception as error:  # retried already; the attachment expires by itself
            if not isinstance(leaving, StoreError):  # else that error says it, in one line
                log.warning("leaving the study failed: %s", str(error).splitlines()[0])

    def watch(self, row_id: int) -> threading.Event:
        """Keep trial ``row_id`` alive until :meth:`unwatch`; returns its *lost* flag."""
        return self.watch_all([row_id])[0]

    def watch_all(self, row_ids: list[int]) -> list[threading.Event]:
        """Keep the trials of a batch alive until :meth:`unwatch`; returns their *lost* flags."""
        watched = tuple((row_id, threading.Event()) for row_id in row_ids)
        self._watched = watched
        return [lost for _, lost in watched]

    def unwatch(self) -> None:
        self._watched = None

    def check(self) -> None:
        """Raise what cut the heartbeat thread off from the database (an outage past its
        bound, a full disk), if anything did: the trials it stopped were not lost to another
        worker, the database was."""
        if self.cut_off is not None:
            raise self.cut_off

    def _beat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            watched = self._watched
            try:
                if keep_attached(self.store, self._worker_id,
                                 self.settings.grace_seconds) == STOPPING:
                    self.stop_requested.set()
                if watched is None:
                    continue
                if len(watched) == 1:
                    alive, status = heartbeat(self.store, watched[0][0])
                    ours = {watched[0][0]} if alive else set()
                else:
                    ours, status = heartbeat_many(self.store, [row for row, _ in watched])
            except (DatabaseOutageError, DatabaseFullError) as error:
                self.cut_off = error  # no write will do: stop the trials in hand, if any
                for _, lost in watched or ():
                    lost.set()
                continue
            except Exception as error:  # retried already; try again at the next beat
                log.warning("heartbeat failed: %s", str(error).splitlines()[0])
                continue
            if status == STOPPING:
                self.stop_requested.set()
            if self._watched is watched:
                for row_id, lost in watched:
                    if row_id not in ours:
                        lost.set()

    def reap(self, on_reaped: Callable[[str, int | None], None]) -> int:
        """Fail the running trials whose worker has been silent longer than the grace period;
        ``on_reaped(optimizer, optuna_trial_id)`` for each. Looks at most once per heartbeat
        interval: a trial only goes stale after the grace period.

        After a database outage nobody could beat, so every running trial looks stale when it
        ends: this reaper waits a full grace period from the moment it got the database back
        (:func:`tuner.store.retry.last_recovery`), in which every live worker beats again."""
        now = time.monotonic()
        if now - self._last_reap < self.settings.heartbeat_seconds:
            return 0
        if now - last_recovery() < self.settings.grace_seconds:
            return 0
        self._last_reap = now
        reaped = reap_stale(self.store, self.study_id,
                            timedelta(seconds=self.settings.grace_seconds))
        for optimizer, optuna_trial_id in reaped:
            on_reaped(optimizer, optuna_trial_id)
        return len(reaped)
