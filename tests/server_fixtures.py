"""Shared parts of the server tests: real stores with a finished study, a real server process.

Stores are made the way ``tuner study create`` and ``tuner study run`` make them (the same driver
functions, in this process: a tiny quadratic study, a few seconds), on an SQLite file (built
once per test process, then copied) or a fresh PostgreSQL database. :func:`serve` starts
``tuner serve`` as a process on a free port of 127.0.0.1.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

STUDY = "tiny"
OPTIMIZERS = ("adam", "sgd")
TRIALS = 3
SEEDS = 2
POSTGRES_SERVER_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def create_study(url: str, name: str = STUDY, trials: int = TRIALS, budget: int = 40) -> None:
    """``tuner study create NAME --task quadratic ...`` (the command's own function)."""
    from tuner.driver import create_study as driver_create_study

    driver_create_study(
        {"name": name, "task": "quadratic", "optimizers": ",".join(OPTIMIZERS),
         "trials": trials, "seeds": SEEDS, "budget": budget, "pruner": "none", "ranges": []},
        url,
    )


def finished_store(url: str) -> str:
    """A store at ``url`` holding one finished study of the quadratic task."""
    from tuner.driver import run_study

    create_study(url)
    run_study(STUDY, url)
    return url


def more_configurations(
    url: str, optimizer: str = "adam", count: int = 12, extra: dict | None = None,
    cycled: tuple[str, tuple] = ("beta1", (0.85, 0.9, 0.95)),
) -> list[dict]:
    """``count`` more configurations of ``optimizer`` on the finished study's task, two seeds
    each, recorded as runs outside any study (:func:`tuner.store.record_run`: no training),
    under the protocol and options of the study's runs, so the task's ranking compares them.

    Each has the parameters of one of the study's configurations of ``optimizer`` but its lr,
    log-spaced over 1e-4..1e-1, and the parameter ``cycled`` names, cycling through the values
    it gives (beta1: 0.85, 0.9, 0.95), which change nothing;
    the result is a steep bowl in log10(lr) around 1e-2 (up to 4,000, far beyond the study's
    own results) plus a seed's offset of 0.01; ``extra`` params are added to each. So the lr
    explains nearly all the variation (importance has a clear first), in a few milliseconds
    instead of a study's training. Returns their params.
    """
    from sqlalchemy import select

    from tuner.store import Run, open_store, record_run
    from tuner.store.models import Protocol
    from tuner.training.result import RunResult

    made = []
    with open_store(url, create=False) as store, store.engine.connect() as connection:
        model = connection.execute(
            select(Run.task, Run.params, Run.options, Run.protocol, Run.param_count)
            .where(Run.optimizer == optimizer).limit(1)).one()
        stored = connection.execute(
            select(Protocol).where(Protocol.key == model.protocol)).one()
        protocol = {"budget": stored.budget, "unit": stored.unit, "training": stored.training}
        for index in range(count):
            lr = 1e-4 * 1000 ** (index / max(count - 1, 1))
            name, values = cycled
            params = {**model.params, "lr": lr, name: values[index % len(values)],
                      **(extra or {})}
            for seed in (0, 1):
                loss = 1000 * (math.log10(lr) + 2) ** 2 + 0.01 * seed
                record_run(store, None, RunResult(
                    task=model.task, optimizer=optimizer, params=params, seed=seed,
                    status="complete", final_metric=loss, best_metric=loss,
                    param_count=model.param_count, options=dict(model.options or {}),
                ), protocol=protocol)
            made.append(params)
    return made


_template: Path | None = None


def finished_sqlite(folder: Path) -> str:
    """A copy, in ``folder``, of an SQLite store with the finished study (built once)."""
    global _template
    if _template is None or not _template.exists():
        path = Path(tempfile.mkdtemp(prefix="tuner-server-tests-")) / "tuner.db"
        finished_store(f"sqlite:///{path}")
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        atexit.register(shutil.rmtree, path.parent, True)
        _template = path
    for suffix in ("", "-wal"):
        source = _template.with_name(_template.name + suffix)
        if source.exists():
            shutil.copy(source, folder / f"tuner.db{suffix}")
    return f"sqlite:///{folder / 'tuner.db'}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); skips when the server is down."""
    try:
        import psycopg
        from sqlalchemy.engine import make_url
    except ImportError as error:  # pragma: no cover - dev dependencies
        pytest.skip(f"PostgreSQL tests need psycopg: {error}")
    server = make_url(os.environ.get("TUNER_TEST_POSTGRES", POSTGRES_SERVER_DEFAULT))
    server = server.set(drivername="postgresql")
    try:
        admin = psycopg.connect(
            server.render_as_string(hide_password=False), autocommit=True, connect_timeout=3
        )
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL server at {server.render_as_string()} is unreachable: {error}")
    name = f"tuner_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(drivername="postgresql+psycopg", database=name).render_as_string(
                hide_password=False
            )
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A ``tuner serve`` process; ``base`` is its address, ``output()`` what it printed."""

    def __init__(self, process: subprocess.Popen, base: str, log: Path) -> None:
        self.process = process
        self.base = base
        self.log = log

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def serve(url: str, log: Path, token: str | None = None) -> Server:
    """Start ``tuner serve`` on a free port and wait until it answers."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TUNER_TOKEN", None)
    if token:
        env["TUNER_TOKEN"] = token
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tuner", "serve", "--db", url, "--port", str(port)],
        stdout=handle, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    server = Server(process, base, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tuner serve exited: {server.output()}")
        try:
            with urllib.request.urlopen(base + "/api/studies", timeout=5):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise AssertionError(f"tuner serve did not answer: {server.output()}")
