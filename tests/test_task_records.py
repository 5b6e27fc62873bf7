"""Task records on real databases: what advice needs of a task, recorded once, read by name."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tuner.cli import cli
from tuner.errors import UnknownNameError
from tuner.store import (
    StoreError,
    TaskRecord,
    TaskRow,
    get_task,
    get_task_by_id,
    list_tasks,
    open_store,
    record_task,
)
from tuner.task.contract import Task

BOWL = TaskRecord("bowl", "analytic", "loss", "minimize", 1e-2)


class Digits(Task):
    """A task declared as a plugin declares it (nothing is built)."""

    name = "digits-like"
    summary = "a task"
    kind = "vision"
    metric = "val_accuracy"
    direction = "maximize"
    target = 0.95
    budget = 10
    eval_every = 5


def count(store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(TaskRow))


def test_record_then_read(database_url):
    store = open_store(database_url)
    task_id = record_task(store, BOWL)
    digits = TaskRecord.from_task(Digits())
    digits_id = record_task(store, digits)
    assert digits == TaskRecord("digits-like", "vision", "val_accuracy", "maximize", 0.95,
                                summary="a task")
    read = get_task(store, "bowl")
    assert read == TaskRecord(**{**BOWL.to_dict(), "id": task_id})
    assert get_task_by_id(store, digits_id).metric == "val_accuracy"
    assert get_task_by_id(store, digits_id).summary == "a task"  # the task page shows it
    assert [t.name for t in list_tasks(store)] == ["bowl", "digits-like"]
    with pytest.raises(UnknownNameError) as unknown:
        get_task(store, "nope")
    assert str(unknown.value) == "no task named 'nope' in the store (tasks: bowl, digits-like)"
    with pytest.raises(UnknownNameError):
        get_task_by_id(store, 999)
    store.dispose()


def test_recording_again_keeps_one_row_and_fills_what_it_lacked(database_url):
    store = open_store(database_url)
    first = record_task(store, TaskRecord("bowl", None, "loss", "minimize", None))
    again = record_task(store, BOWL)
    assert again == first and count(store) == 1
    assert (get_task(store, "bowl").kind, get_task(store, "bowl").target) == ("analytic", 1e-2)
    record_task(store, TaskRecord("bowl", "convex", "loss", "minimize", 5.0))
    assert get_task(store, "bowl").target == 1e-2  # what is recorded stays
    store.dispose()


def test_another_metric_under_the_same_name_is_refused(database_url):
    store = open_store(database_url)
    record_task(store, BOWL)
    for other in (TaskRecord("bowl", "analytic", "accuracy", "minimize", 1.0),
                  TaskRecord("bowl", "analytic", "loss", "maximize", 1.0)):
        with pytest.raises(StoreError) as refused:
            record_task(store, other)
        assert len(str(refused.value).splitlines()) == 1
        assert "task 'bowl' is recorded with metric loss (minimize)" in str(refused.value)
    assert get_task(store, "bowl") == TaskRecord(**{**BOWL.to_dict(), "id": 1})
    assert count(store) == 1
    store.dispose()


def test_in_the_callers_transaction(database_url):
    """With a Connection the record joins the caller's transaction: rolled back, it is gone."""
    store = open_store(database_url)
    with store.engine.connect() as connection:
        transaction = connection.begin()
        record_task(connection, BOWL)
        assert get_task(connection, "bowl").metric == "loss"  # visible inside
        transaction.rollback()
    assert count(store) == 0
    with store.session() as session, session.begin():
        record_task(session, BOWL)
    assert get_task(store, "bowl").kind == "analytic"
    store.dispose()


def test_concurrent_recorders_of_one_task_share_one_row(database_url):
    stores = [open_store(database_url) for _ in range(4)]
    ids: list[int] = []
    barrier = threading.Barrier(len(stores))

    def record(store) -> None:
        barrier.wait()
        ids.append(record_task(store, BOWL))

    threads = [threading.Thread(target=record, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 4 and len(set(ids)) == 1 and count(stores[0]) == 1
    for store in stores:
        store.dispose()


def test_study_create_records_the_task_from_its_plugin(sqlite_url):
    result = CliRunner().invoke(cli, [
        "study", "create", "s", "--task", "quadratic", "--optimizers", "sgd", "--trials", "1",
        "--seeds", "1",
        "--db", sqlite_url,
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open_store(sqlite_url, readonly=True) as store:
        recorded = get_task(store, "quadratic")
    assert (recorded.kind, recorded.metric, recorded.direction, recorded.target) == (
        "analytic", "loss", "minimize", pytest.approx(1e-2))
