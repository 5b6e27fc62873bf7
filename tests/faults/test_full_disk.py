"""A full disk: the SQLite store on a small filesystem of its own (a ``tmpfs`` of a few MB) that
fills mid-study. Every worker stops with one line that names the full disk (no traceback), the
store passes ``PRAGMA integrity_check``, and once the space is freed the study runs to its end,
nothing lost or doubled, ranked as the same study without faults."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from fault_tools import (
    check_invariants,
    create,
    ended,
    report,
    same_ranking,
    start_worker,
    trial_rows,
    tuner_command,
    wait_for,
)
from sqlalchemy.exc import OperationalError

from tuner.cli import cli
from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, Worker, WorkerSettings
from tuner.driver.script_guard import WORKER_NAME_PREFIX
from tuner.store.database import DatabaseFullError
from tuner.store.retry import retrying

SIZE = "4m"
"""The filesystem's size: the store of the study below takes well under 1 MB when filled."""

def study(budget: int) -> tuple[str, ...]:
    """The study's settings, with ``budget`` steps a run."""
    return ("--task", "logreg", "--optimizers", "adam,sgd", "--trials", "6", "--seeds", "1",
            "--budget", str(budget), "--pruner", "none", "--sampler", "random")


STUDY = study(300)
"""Random sampling: each slot's configuration comes from its own seed, so the study without
faults draws the same ones (:func:`fault_tools.same_ranking`)."""

SLOTS = 12
QUICK_BEATS = {HEARTBEAT_ENV: "0.3", GRACE_ENV: "2"}
FULL = ("the disk that holds the database is full (database or disk is full); free space on "
        "it, then run again")
"""The one line a worker stops with (SQLite's own words in brackets)."""


@contextmanager
def small_filesystem(size: str) -> Iterator[Path]:
    """A ``tmpfs`` of ``size`` mounted on a new folder, unmounted and removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to mount a small tmpfs for the store")
    if shutil.which("mount") is None:
        pytest.skip("needs mount (util-linux)")
    folder = Path(tempfile.mkdtemp(prefix="tuner-full-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(folder)], capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True, timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to its last byte with a file; its path."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    os.write(descriptor, block)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    finally:
        os.close(descriptor)
    assert os.statvfs(folder).f_bavail == 0
    return filler


def truncate_wal(path: Path) -> None:
    """Checkpoint the store and truncate its write-ahead log to nothing, so that the workers'
    next commit needs new space (a log that has grown once is reused from its start, and
    writes into it need none for a while)."""
    connection = sqlite3.connect(path, timeout=30)
    try:
        for _ in range(100):  # busy (1) while a worker reads or writes: again
            if connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
                return
            time.sleep(0.01)
    finally:
        connection.close()
    raise AssertionError("the write-ahead log could not be truncated")


def integrity(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()


def filled_mid_study(folder: Path, url: str, processes: list) -> tuple[list[str], int]:
    """Once the study in ``folder`` (run by ``processes``) has settled a trial, fill the disk
    and wait for the processes to end; then free the space and check the store. Their outputs
    and the trials settled before."""
    try:
        wait_for(lambda: any(t.status == "complete" for t in trial_rows(url, "full")), 90,
                 "the study to be under way", every=0.05)
        truncate_wal(folder / "tuner.db")
        filler = fill(folder)
        outputs = [ended(process, 120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    settled = sum(t.status == "complete" for t in trial_rows(url, "full"))
    assert settled < SLOTS, "the study finished before the disk was full"
    filler.unlink()
    assert integrity(folder / "tuner.db") == [("ok",)]
    return outputs, settled


def one_line(output: str, line: str) -> None:
    """``output`` names the full disk once, in ``line``, and holds no traceback."""
    assert "Traceback" not in output, output
    assert [text for text in output.splitlines() if "full" in text] == [line], output


def fault_free(tmp_path: Path, settings: tuple[str, ...]) -> str:
    """The same study run without faults, in a store of its own: its URL."""
    url = f"sqlite:///{tmp_path / 'fault-free.db'}"
    create(url, "full", *settings)
    assert Worker("full", url).run().stopped == "finished"
    return url


def test_a_full_disk_is_not_retried_and_says_so_in_one_line():
    """SQLite's and PostgreSQL's full-disk errors, as SQLAlchemy raises them: the operation runs
    once (a full disk stays full) and the error is one line naming the disk."""
    import psycopg

    for error in (sqlite3.OperationalError("database or disk is full"),
                  psycopg.errors.DiskFull('could not extend file "base/1/2": No space left')):
        calls: list[int] = []

        def write(error: Exception = error, calls: list[int] = calls) -> None:
            calls.append(1)
            raise OperationalError("INSERT INTO tuner_runs ...", {}, error)

        with pytest.raises(DatabaseFullError) as raised:
            retrying(write)
        assert len(calls) == 1
        assert str(raised.value).startswith("the disk that holds the database is full (")
        assert "\n" not in str(raised.value)


def test_a_store_opened_on_a_full_disk_says_so_in_one_line():
    """A store closed cleanly has no shared-memory file; opening it makes one, which a full
    disk refuses: each command says so in one line, and the store is readable once space is
    freed."""
    with small_filesystem(SIZE) as folder:
        url = f"sqlite:///{folder / 'tuner.db'}"
        # created by a process that ends, closing every connection (this one keeps some)
        made = subprocess.run([*tuner_command(), "study", "create", "full", *STUDY, "--db",
                               url], capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stdout + made.stderr
        assert not (folder / "tuner.db-shm").exists()
        filler = fill(folder)
        for command in (["study", "show", "full"], ["worker", "full"], ["study", "run", "full"],
                        ["study", "create", "other", *STUDY]):
            result = CliRunner().invoke(cli, [*command, "--db", url])
            assert result.exit_code == 1, (command, result.output)
            assert result.output.splitlines() == [
                f"Error: {FULL.replace('database or disk is full', 'disk I/O error')}"
            ], (command, result.output)
        filler.unlink()
        assert integrity(folder / "tuner.db") == [("ok",)]
        assert [t.status for t in trial_rows(url, "full")] == []


def test_a_full_disk_stops_each_worker_in_one_line_and_the_study_resumes(tmp_path):
    """Two ``tuner worker`` processes; the study resumed in this process once space is
    freed."""
    with small_filesystem(SIZE) as folder:
        url = f"sqlite:///{folder / 'tuner.db'}"
        create(url, "full", *STUDY)
        workers = [start_worker(url, "full", QUICK_BEATS) for _ in range(2)]
        outputs, settled = filled_mid_study(folder, url, workers)
        for worker, output in zip(workers, outputs, strict=True):
            assert worker.returncode == 1, output
            one_line(output, f"Error: {FULL}")
        settings = WorkerSettings(heartbeat_seconds=0.3, grace_seconds=2.0)
        assert Worker("full", url, settings=settings).run().stopped == "finished"
        assert integrity(folder / "tuner.db") == [("ok",)]
        figures = check_invariants(url, "full", slots=SLOTS, faults=1)
        same_ranking(url, fault_free(tmp_path, STUDY), "logreg")
    report(figures, f"disk full, {settled} of {SLOTS} trials settled before (SQLite, "
           "2 tuner workers)")


@pytest.mark.harness
def test_a_full_disk_stops_a_study_run_in_one_line_and_the_next_run_finishes(tmp_path):
    """``tuner study run --workers 2``, longer trials; run again once space is freed."""
    longer = study(3000)
    with small_filesystem(SIZE) as folder:
        url = f"sqlite:///{folder / 'tuner.db'}"
        create(url, "full", *longer)
        outputs, settled = filled_mid_study(folder, url, [run_study(url)])
        one_line(outputs[0], f"Error: 2 of 2 worker processes failed; {WORKER_NAME_PREFIX}0: "
                 f"{FULL} (and 1 more)")
        again = run_study(url)
        output = ended(again, 120)
        assert again.returncode == 0 and "Traceback" not in output, output
        assert "finished" in output.splitlines()[-1], output
        assert integrity(folder / "tuner.db") == [("ok",)]
        figures = check_invariants(url, "full", slots=SLOTS, faults=1)
        same_ranking(url, fault_free(tmp_path, longer), "logreg")
    report(figures, f"disk full, {settled} of {SLOTS} trials settled before (SQLite, "
           "tuner study run --workers 2, run again)")


def run_study(url: str) -> subprocess.Popen:
    """``tuner study run full --workers 2`` as a process (stdout and stderr merged)."""
    return subprocess.Popen([*tuner_command(), "study", "run", "full", "--workers", "2",
                             "--db", url], env={**os.environ, **QUICK_BEATS},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
