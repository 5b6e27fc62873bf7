"""Shared fixtures: real databases for the store, the driver and the advice tests.

``sqlite_url`` is a fresh SQLite file; ``postgres_url`` a fresh PostgreSQL database created on
the server at ``$TUNER_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
and dropped afterwards; tests using it are skipped, with the reason, when the server is down.
Every test runs with ``$TUNER_DB`` unset and the user data directory in a temporary folder, so
nothing touches the real default database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process (and its children): the suite runs on ``-n 2`` over
    two cores, and more threads than cores makes small training runs many times slower."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _isolated_default_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TUNER_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a new SQLite file (not created yet) in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'tuner.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL (psycopg driver) of a new, empty PostgreSQL database, dropped after the test."""
    from server_fixtures import postgres_database

    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs twice: on a fresh SQLite file and a fresh PostgreSQL database."""
    return request.getfixturevalue(f"{request.param}_url")
