"""The first use of a store under concurrency: creates at once on a fresh store, of one name
or of different names, each either succeed or get "already exists"; nothing else.

Each create runs in a process of its own, forked from this one with tuner, torch and the plugins
already imported (a create that imported torch afresh would cost seconds each), released by one
barrier so that they race for the store's first writes.
"""

from __future__ import annotations

import multiprocessing
import traceback

import pytest

from tuner.driver import create_study
from tuner.plugin.registry import get_registry
from tuner.store import open_store
from tuner.store.studies import study_exists

NAMES = ("left", "right")
ROUNDS = 3


def _create(url: str, name: str, barrier, results) -> None:
    try:
        barrier.wait(timeout=60)
        create_study({"name": name, "task": "quadratic", "optimizers": "adam,sgd",
                      "trials": 2, "seeds": 1, "pruner": "none", "ranges": []}, url)
        results.put((name, "created"))
    except Exception as error:
        text = str(error)
        results.put((name, "exists" if "already exists" in text
                     else f"{type(error).__name__}: {text}\n{traceback.format_exc()}"))


def _race(url: str) -> list[tuple[str, str]]:
    """Four creates at once on the fresh store at ``url``: each name twice."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    results = context.SimpleQueue()
    processes = [context.Process(target=_create, args=(url, name, barrier, results))
                 for name in NAMES for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in processes] == [0] * 4
    return sorted(results.get() for _ in processes)


def _check(url: str) -> None:
    outcomes = _race(url)
    assert outcomes == [("left", "created"), ("left", "exists"), ("right", "created"),
                        ("right", "exists")], outcomes
    with open_store(url, create=False) as store:
        assert all(study_exists(store, name) for name in NAMES)


@pytest.fixture(autouse=True)
def _loaded() -> None:
    """Plugins loaded before the forks, so that each child starts with them."""
    get_registry()


def test_concurrent_creates_on_a_fresh_sqlite_store(tmp_path):
    for round_ in range(ROUNDS):
        _check(f"sqlite:///{tmp_path / f'fresh{round_}.db'}")


@pytest.mark.postgres
def test_concurrent_creates_on_a_fresh_postgres_database():
    from server_fixtures import postgres_database

    for _ in range(ROUNDS):
        with postgres_database() as url:
            _check(url)
