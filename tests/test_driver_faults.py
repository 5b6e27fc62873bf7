"""The driver under faults: races between workers, kills at any moment, stops, failing slots,
transient database errors, and bad settings. Real processes on real databases."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select

from tuner.cli import cli
from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, run_study
from tuner.driver.create import CRASH_ENV
from tuner.store import Study, Trial, open_store
from tuner.store.retry import retrying
from tuner.store.studies import get_study, study_status


def tuner_command() -> list[str]:
    beside = Path(sys.executable).with_name("tuner")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "tuner"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def create(url: str, name: str, *args: str) -> None:
    result = invoke("study", "create", name, *args, "--db", url)
    assert result.exit_code == 0, result.output


def trial_rows(url: str, name: str) -> list:
    with open_store(url, create=False) as store:
        spec = get_study(store, name)
        with store.session() as session:
            return session.scalars(select(Trial).where(Trial.study_id == spec.id)).all()


def test_racing_workers_never_train_one_configuration_in_two_slots(database_url: str):
    """4 workers, many short trials: no two settled slots of an optimizer share parameters."""
    create(database_url, "race", "--task", "quadratic", "--optimizers", "adam,sgd",
           "--trials", "10", "--seeds", "1", "--budget", "10", "--pruner", "none")
    report = run_study("race", database_url, workers=4)
    assert report.stopped == "finished"
    rows = [t for t in trial_rows(database_url, "race") if t.status != "failed"]
    for optimizer in ("adam", "sgd"):
        mine = [t for t in rows if t.optimizer == optimizer]
        assert sorted(t.slot for t in mine) == list(range(10))
        params = [json.dumps(t.params, sort_keys=True) for t in mine]
        assert len(set(params)) == len(params), "two slots trained one configuration"
    assert len({t.worker_pid for t in rows}) >= 2


def test_a_slot_that_keeps_failing_is_reported_and_fails_the_run(sqlite_url: str):
    """A task whose training always raises: its slot is given up after 3 failed attempts,
    `study show` says so with the error, and `study run` exits 1 instead of "finished"."""
    from tuner.plugin.registry import get_registry
    from tuner_plugins.tasks.quadratic import Quadratic

    class Broken(Quadratic):
        name = "broken-quadratic"

        def build(self, seed, device):
            raise RuntimeError("the data is not there")

    registry = get_registry()
    registry.tasks["broken-quadratic"] = Broken()
    try:
        create(sqlite_url, "doomed", "--task", "broken-quadratic", "--optimizers", "sgd",
               "--trials", "2", "--seeds", "1", "--pruner", "none")
        result = CliRunner().invoke(cli, ["study", "run", "doomed", "--db",
                                                          sqlite_url])
        assert result.exit_code == 1
        assert "ended incomplete" in result.stderr and "the data is not there" in result.stderr
        shown = invoke("study", "show", "doomed", "--db", sqlite_url, "--json")
        status = json.loads(shown.output)
        assert status["status"] == "incomplete" and status["slots_given_up"] == 2
        assert "RuntimeError: the data is not there" in status["errors"]["sgd/0"]
        assert len(trial_rows(sqlite_url, "doomed")) == 6  # 3 attempts per slot, no more
    finally:
        del registry.tasks["broken-quadratic"]


@pytest.mark.parametrize("step", ["optuna", "row", "done"])
def test_create_is_all_or_nothing_when_killed_at_each_commit_point(sqlite_url: str, step):
    args = ["study", "create", "k", "--task", "quadratic", "--optimizers", "adam,sgd",
            "--trials", "2", "--seeds", "1", "--db", sqlite_url]
    killed = subprocess.run([*tuner_command(), *args], env={**os.environ, CRASH_ENV: step},
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    _check_whole_or_absent(sqlite_url, expect_whole=step == "done")
    again = subprocess.run([*tuner_command(), *args], capture_output=True, text=True,
                           timeout=120)
    if step == "done":
        assert again.returncode == 1 and "already exists" in again.stderr
    else:
        assert again.returncode == 0, again.stderr
    _check_whole_or_absent(sqlite_url, expect_whole=True)


def test_create_killed_at_random_moments_leaves_a_whole_study_or_none(sqlite_url: str):
    for index, delay in enumerate((1.4, 2.4)):
        args = ["study", "create", f"r{index}", "--task", "quadratic", "--optimizers",
                "adam,sgd,lion", "--trials", "2", "--seeds", "1", "--db", sqlite_url]
        process = subprocess.Popen([*tuner_command(), *args], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.kill()
        process.wait()
        if not _check_whole_or_absent(sqlite_url, None, name=f"r{index}"):
            again = subprocess.run([*tuner_command(), *args], capture_output=True, text=True)
            assert again.returncode == 0, again.stderr
        assert _check_whole_or_absent(sqlite_url, True, name=f"r{index}")


def _check_whole_or_absent(url: str, expect_whole: bool | None, name: str = "k") -> bool:
    """The study row exists with every Optuna study a worker needs, or no row exists at all
    (left-over Optuna studies are invisible to tuner and removed by the next create)."""
    if not Path(url.removeprefix("sqlite:///")).exists():
        assert expect_whole is not True
        return False
    from tuner.store import SchemaError

    try:
        store = open_store(url, create=False)
    except SchemaError:  # killed while the schema itself was being created: nothing there
        assert expect_whole is not True
        return False
    with store, store.session() as session:
        whole = session.scalar(select(Study.id).where(Study.name == name)) is not None
    if expect_whole is not None:
        assert whole == expect_whole
    if whole:
        shown = invoke("study", "show", name, "--db", url, "--json")
        assert json.loads(shown.output)["status"] == "created"
    return whole


def test_workers_end_when_their_parent_is_killed(sqlite_url: str):
    create(sqlite_url, "orphans", "--task", "logreg", "--optimizers", "adam", "--trials", "4",
           "--seeds", "1", "--budget", "20000", "--pruner", "none")
    parent = subprocess.Popen([*tuner_command(), "study", "run", "orphans", "--workers", "2",
                               "--db", sqlite_url], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(_children(parent.pid)) < 2:
        time.sleep(0.2)
    workers = _children(parent.pid)
    assert len(workers) >= 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)], "workers outlived their parent"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "tuner-worker" in (
                    entry / "cmdline").read_bytes().decode(errors="replace") or (
                    int(stat.rsplit(")", 1)[1].split()[1]) == pid and "spawn_main" in (
                    entry / "cmdline").read_bytes().decode(errors="replace")):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_lets_the_trial_in_hand_finish_and_run_resumes(sqlite_url: str, monkeypatch):
    create(sqlite_url, "halt", "--task", "logreg", "--optimizers", "adam", "--trials", "3",
           "--seeds", "1", "--budget", "1500", "--pruner", "none")
    env = {**os.environ, HEARTBEAT_ENV: "0.2", GRACE_ENV: "5"}
    worker = subprocess.Popen([*tuner_command(), "worker", "halt", "--db", sqlite_url], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            t.status == "running" for t in trial_rows(sqlite_url, "halt")):
        time.sleep(0.1)
    assert invoke("study", "stop", "halt", "--db", sqlite_url).exit_code == 0
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0 and "stopped at" in output, output
    rows = trial_rows(sqlite_url, "halt")
    assert [t.status for t in rows] == ["complete"]  # finished the one in hand, took no more
    with open_store(sqlite_url, create=False) as store:
        assert study_status(store, "halt").status == "stopped"
    monkeypatch.setenv(HEARTBEAT_ENV, "0.2")
    assert run_study("halt", sqlite_url).stopped == "finished"
    assert sorted(t.slot for t in trial_rows(sqlite_url, "halt")) == [0, 1, 2]


def test_transient_errors_are_retried_at_the_store_boundary(database_url: str):
    """Inject 'database is locked' / serialization failures into real statements: the store's
    operations retry them and succeed; a non-transient error is raised at once."""
    create(database_url, "flaky", "--task", "quadratic", "--optimizers", "sgd", "--trials", "2",
           "--seeds", "2", "--budget", "10", "--pruner", "none")
    store = open_store(database_url, create=False)
    failures = itertools.count()
    budget = {"left": 0, "since": 0}

    def flaky(conn, cursor, statement, parameters, context, executemany):
        # fail one statement on tuner's tables, then let 8 through (a retry of the longest
        # transaction, a run recorded under its claim's guard and closed, can succeed)
        if "tuner_" not in statement:
            return
        budget["since"] += 1
        if budget["left"] > 0 and budget["since"] > 8:
            budget["left"] -= 1
            budget["since"] = 0
            next(failures)
            if conn.dialect.name == "sqlite":
                import sqlite3

                raise sqlite3.OperationalError("database is locked")
            import psycopg

            raise psycopg.errors.SerializationFailure("could not serialize access")

    event.listen(store.engine, "before_cursor_execute", flaky)
    try:
        import tuner.driver.worker as worker_module

        real_open = worker_module.open_store
        worker_module.open_store = lambda url, create=False: store
        store_dispose = store.dispose
        store.dispose = lambda: None
        try:
            budget["left"] = 12  # spread over the claims, records and closes of the study
            report = worker_module.Worker("flaky", database_url).run()
        finally:
            worker_module.open_store = real_open
            store.dispose = store_dispose
        assert report.stopped == "finished"
        assert next(failures) >= 3, "the injected errors were not hit"
        budget["left"] = 0  # the checks below read without injected errors
        with store.session() as session:
            counted = session.scalar(select(func.count()).select_from(Trial)
                                     .where(Trial.status == "complete"))
        assert counted == 2
        calls = {"n": 0}

        def broken() -> None:
            calls["n"] += 1
            raise ValueError("not a database error")

        with pytest.raises(ValueError):
            retrying(broken)
        assert calls["n"] == 1
    finally:
        event.remove(store.engine, "before_cursor_execute", flaky)
        store.dispose()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["study", "create", "big", "--task", "quadratic", "--optimizers", "adam",
          "--trials", "99999999999999999999", "--seeds", "1"], {}, "trials must be at most"),
        (["study", "create", "big", "--task", "quadratic", "--optimizers", "adam",
          "--trials", "3000000000", "--seeds", "1"], {}, "trials must be at most"),
        (["study", "create", "big\n", "--task", "quadratic", "--optimizers", "adam",
          "--trials", "1", "--seeds", "1"], {}, "study name"),
        (["study", "run", "base"], {HEARTBEAT_ENV: "abc"}, "TUNER_HEARTBEAT_SECONDS"),
        (["study", "run", "base"], {GRACE_ENV: "abc"}, "TUNER_GRACE_SECONDS"),
        (["study", "run", "base", "--grace-period", "0"], {}, "--grace-period"),
        (["study", "export", "base", "-o", "/nonexistent/x.csv"], {}, "cannot write"),
    ],
)
def test_bad_settings_are_one_line_and_change_nothing(sqlite_url, args, env, message,
                                                      monkeypatch):
    database_url = sqlite_url
    create(database_url, "base", "--task", "quadratic", "--optimizers", "adam", "--trials",
           "1", "--seeds", "1")
    before = _snapshot(database_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(cli, [*args, "--db", database_url])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert _snapshot(database_url) == before


@pytest.mark.postgres
def test_a_count_beyond_postgres_integers_writes_nothing(postgres_url: str):
    create(postgres_url, "base", "--task", "quadratic", "--optimizers", "adam", "--trials", "1",
           "--seeds", "1")
    before = _snapshot(postgres_url)
    result = invoke("study", "create", "big", "--task", "quadratic", "--optimizers", "adam",
                    "--trials", "3000000000", "--seeds", "1", "--db", postgres_url)
    assert result.exit_code == 1 and "trials must be at most" in result.output
    assert _snapshot(postgres_url) == before  # Optuna's tables too


def test_a_study_file_that_is_not_utf8_is_one_line(sqlite_url: str, tmp_path: Path):
    study_file = tmp_path / "latin.toml"
    study_file.write_bytes('task = "quadratic"\ndescription = "caf\xe9"\n'.encode("latin-1"))
    result = CliRunner().invoke(
        cli, ["study", "create", "x", "--from", str(study_file), "--db", sqlite_url])
    assert result.exit_code == 1 and "not UTF-8" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def _snapshot(url: str) -> list:
    """Every row of every table (tuner's and Optuna's), to compare before and after."""
    from sqlalchemy import MetaData

    with open_store(url, create=False) as store, store.engine.connect() as connection:
        metadata = MetaData()
        metadata.reflect(connection)
        return [(name, sorted(map(repr, connection.execute(table.select()).all())))
                for name, table in sorted(metadata.tables.items())]
