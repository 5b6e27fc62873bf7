"""Task records: what the store knows of a task, so advice never loads a task plugin.

A study's task is recorded when the study is created (:func:`record_task`, in the study's
transaction); migration 0006 filled the records in for older stores. Advice, reports and every
read-only command read a task's metric, direction and target from here, so they work on a store
copied to a machine without the task's plugin (or without torch).

Functions take a *target* as :mod:`tuner.store.runs` does: a Store or Engine (its own
transaction), or a Session or Connection (the caller's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from tuner.errors import UnknownNameError
from tuner.store.database import StoreError
from tuner.store.models import TaskRow, utcnow
from tuner.store.target import Target, reading, writing
from tuner.store.values import finite_or_none, plain_json


@dataclass(frozen=True)
class TaskRecord:
    """A task as the store records it.

    ``kind`` is None when it is not known (a store upgraded without the task's plugin);
    ``target`` is the metric value that counts as reached, None when unknown. ``code_ref`` and
    ``code_hash`` name a task given by reference (``path/file.py:Name``) and its code's hash;
    ``params`` are the task's parameters; ``summary`` its plugin's one line (None on records
    older than migration 0011). ``id`` is set on records read from the store.
    """

    name: str
    kind: str | None
    metric: str
    direction: str
    target: float | None
    code_ref: str | None = None
    code_hash: str | None = None
    params: dict[str, Any] | None = field(default=None, hash=False, compare=True)
    summary: str | None = None
    id: int | None = None

    @classmethod
    def from_task(cls, task: Any) -> TaskRecord:
        """The record of a :class:`tuner.task.Task` (read from its attributes, nothing called;
        ``code_ref``, ``code_hash`` and ``task_params`` are used when the task has them)."""
        target = getattr(task, "target", None)
        params = getattr(task, "task_params", None)
        return cls(
            name=str(task.name),
            kind=getattr(task, "kind", None),
            metric=str(task.metric),
            direction=str(task.direction),
            target=float(target) if target is not None else None,
            code_ref=getattr(task, "code_ref", None),
            code_hash=getattr(task, "code_hash", None),
            params=dict(params) if params else None,
            summary=getattr(task, "summary", None) or None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "metric": self.metric,
            "direction": self.direction, "target": self.target, "code_ref": self.code_ref,
            "code_hash": self.code_hash, "params": self.params, "summary": self.summary,
        }


def _record(row: Any) -> TaskRecord:
    return TaskRecord(
        name=row.name, kind=row.kind, metric=row.metric, direction=row.direction,
        target=row.target, code_ref=row.code_ref, code_hash=row.code_hash,
        params=dict(row.params) if row.params is not None else None, summary=row.summary,
        id=int(row.id),
    )


def _dialect(executor: Session | Connection) -> str:
    if isinstance(executor, Connection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


def _insert_if_new(dialect: str, values: Mapping[str, Any]) -> Any:
    """INSERT ... ON CONFLICT (name) DO NOTHING: a concurrent recorder of the same task wins
    quietly, and the caller's transaction is not aborted by a unique violation."""
    if dialect == "postgresql":  # the dialect modules load on use: reads do not pay for them
        from sqlalchemy.dialects import postgresql as module
    else:
        from sqlalchemy.dialects import sqlite as module
    return module.insert(TaskRow.__table__).values(**values).on_conflict_do_nothing(
        index_elements=["name"]
    )


def record_task(target: Target, record: TaskRecord) -> int:
    """Record a task; returns its id.

    A task already recorded under the name keeps its row (its id is returned) when it says the
    same metric and direction; fields the stored row lacks (kind, target, code reference, code
    hash, parameters, summary) are filled in from ``record``. A different metric or direction
    under the same name is a StoreError: the runs already stored would be ranked the wrong way.
    """
    values = {
        "name": record.name, "kind": record.kind, "metric": record.metric,
        "direction": record.direction, "target": finite_or_none(record.target),
        "code_ref": record.code_ref, "code_hash": record.code_hash,
        "params": plain_json(record.params) if record.params is not None else None,
        "summary": record.summary, "created_at": utcnow(),
    }
    table = TaskRow.__table__
    with writing(target) as writer:
        writer.execute(_insert_if_new(_dialect(writer), values))
        stored = writer.execute(select(table).where(table.c.name == record.name)).one()
        if (stored.metric, stored.direction) != (record.metric, record.direction):
            raise StoreError(
                f"task {record.name!r} is recorded with metric {stored.metric} "
                f"({stored.direction}); this one says {record.metric} ({record.direction})"
            )
        missing = {
            name: values[name]
            for name in ("kind", "target", "code_ref", "code_hash", "params", "summary")
            if getattr(stored, name) is None and values[name] is not None
        }
        if missing:
            writer.execute(update(table).where(table.c.id == stored.id).values(missing))
        return int(stored.id)


def get_task(target: Target, name: str) -> TaskRecord:
    """The record of task ``name``; UnknownNameError (listing the recorded ones) if there is
    none."""
    table = TaskRow.__table__
    with reading(target) as reader:
        row = reader.execute(select(table).where(table.c.name == name)).first()
        if row is not None:
            return _record(row)
        known = reader.execute(select(table.c.name).order_by(table.c.name)).scalars().all()
    listing = ", ".join(known) if known else "none yet"
    raise UnknownNameError(f"no task named {name!r} in the store (tasks: {listing})")


def get_task_by_id(target: Target, task_id: int) -> TaskRecord:
    """The record with id ``task_id``; UnknownNameError if there is none."""
    table = TaskRow.__table__
    with reading(target) as reader:
        row = reader.execute(select(table).where(table.c.id == task_id)).first()
    if row is None:
        raise UnknownNameError(f"no task with id {task_id} in the store")
    return _record(row)


def list_tasks(target: Target) -> list[TaskRecord]:
    """Every recorded task, by name."""
    table = TaskRow.__table__
    with reading(target) as reader:
        rows = reader.execute(select(table).order_by(table.c.name)).all()
    return [_record(row) for row in rows]
