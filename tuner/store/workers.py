"""Workers attached to a study: whether anyone is at work on it, between trials as well.

A running trial row shows a worker busy; between two trials (recording one, asking Optuna for
the next, claiming it) or while it starts up, a worker holds no running row, yet the study is
not stopped. So each worker keeps a row in ``tuner_workers`` from the moment it starts until it
leaves: :func:`attach_worker` writes it, :func:`keep_attached` (at every heartbeat) pushes its
``alive_until`` a grace period ahead and reads the study's status in the same transaction (a
stop asked for is seen between trials too), :func:`detach_worker` deletes it. A killed worker's
row stops counting at its ``alive_until``, the same grace period after which its trial is
reaped; expired rows are deleted when the next worker of the study attaches.

Timestamps are the database's clock on PostgreSQL (the server's ``now()``, as for trial heartbeats:
:func:`tuner.store.claims.stamp`), the machine's UTC time on SQLite.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from tuner.store.claims import stamp
from tuner.store.database import Store
from tuner.store.models import Study, WorkerRow
from tuner.store.retry import retrying


def attach_worker(store: Store, study_id: int, host: str, pid: int,
                  alive_seconds: float) -> int:
    """Record a worker at work on the study, alive for ``alive_seconds``; returns its id.

    Deletes the study's expired rows (workers that were killed) in the same transaction. A
    retry after a dropped connection may leave a second row; it expires like a killed worker's.
    """

    def write() -> int:
        with store.engine.begin() as connection:
            now = stamp(connection)
            connection.execute(delete(WorkerRow).where(
                WorkerRow.study_id == study_id, WorkerRow.alive_until < now))
            return int(connection.execute(
                insert(WorkerRow).values(
                    study_id=study_id, host=host[:255], pid=pid, started_at=now,
                    heartbeat_at=now, alive_until=now + timedelta(seconds=alive_seconds),
                ).returning(WorkerRow.id)
            ).scalar_one())

    return retrying(write)


def keep_attached(store: Store, worker_id: int, alive_seconds: float) -> str | None:
    """A worker's heartbeat: alive for ``alive_seconds`` more; returns the study's status (None
    when the study was deleted). Safe to retry: setting a time twice is setting it once."""

    def beat() -> str | None:
        with store.engine.begin() as connection:
            now = stamp(connection)
            connection.execute(
                update(WorkerRow).where(WorkerRow.id == worker_id)
                .values(heartbeat_at=now, alive_until=now + timedelta(seconds=alive_seconds))
            )
            return connection.execute(
                select(Study.status).join(WorkerRow, WorkerRow.study_id == Study.id)
                .where(WorkerRow.id == worker_id)
            ).scalar()

    return retrying(beat)


def detach_worker(store: Store, worker_id: int) -> None:
    """The worker leaves the study (its row is deleted). Safe to retry."""

    def write() -> None:
        with store.engine.begin() as connection:
            connection.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))

    retrying(write)


def attached_workers(connection: Any, study_id: int) -> int:
    """How many workers are attached to the study now (read on ``connection``)."""
    return int(connection.execute(
        select(func.count()).select_from(WorkerRow)
        .where(WorkerRow.study_id == study_id, WorkerRow.alive_until > stamp(connection))
    ).scalar_one())
