"""``tuner study run --backend ray``: workers as Ray tasks, the database still the coordinator.

Each end-to-end test runs the real command, which starts its own local Ray (2 CPUs: one per
worker, no dashboard, in a temporary directory) and shuts it down; so one Ray
instance serves one test. The refusals (SQLite with a remote address, Ray missing, bad
placements) happen before Ray starts or anything is written.
"""

from __future__ import annotations

import glob
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from test_workers import _mid_trial, _status, check_consistent, create, tuner_command

from tuner.cli import cli
from tuner.driver import GRACE_ENV, HEARTBEAT_ENV
from tuner.store import Run, Trial, open_store

pytest.importorskip("ray", reason='Ray is the optional extra tuner[ray]')


def _ray_run(url: str, name: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*tuner_command(), "study", "run", name, "--backend", "ray", "--workers", "2",
         "--db", url],
        env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


def test_two_ray_workers_run_exactly_n_trials_per_optimizer(sqlite_url: str):
    create(sqlite_url, "tiny", "--task", "quadratic", "--optimizers", "adam,sgd",
           "--trials", "3", "--seeds", "1", "--budget", "20")
    runner = _ray_run(sqlite_url, "tiny")
    output, _ = runner.communicate(timeout=240)
    assert runner.returncode == 0, output
    assert "Study 'tiny' finished: 6/6 trials" in output
    trials = check_consistent(sqlite_url, "tiny")
    assert {name: len(rows) for name, rows in trials.items()} == {"adam": 3, "sgd": 3}
    pids = {t.worker_pid for rows in trials.values() for t in rows}
    assert runner.pid not in pids, "the trials ran in Ray's worker processes"
    ray_dirs = glob.glob(os.path.join(tempfile.gettempdir(), f"tuner-ray-{runner.pid}-*"))
    ray_dirs += glob.glob(f"/tmp/tuner-ray-{runner.pid}-*")
    assert ray_dirs == [], "Ray's temporary directory is removed"


def test_ray_worker_killed_mid_trial_is_restarted_and_its_trial_retried(sqlite_url: str):
    # Each seed trains for about two seconds on an idle machine, so a trial is seen running with
    # one seed recorded and is still running when its worker is killed a moment later; the grace
    # period (3 s, 10 heartbeats) outlasts the pauses a loaded machine gives a live worker.
    create(sqlite_url, "killed", "--task", "logreg", "--optimizers", "adam", "--trials", "2",
           "--seeds", "2", "--budget", "12000", "--pruner", "none")
    runner = _ray_run(sqlite_url, "killed", **{HEARTBEAT_ENV: "0.3", GRACE_ENV: "3"})
    try:
        victim, _ = _mid_trial(sqlite_url, runner, within=300)  # Ray's start, on a busy machine
        store = open_store(sqlite_url, create=False)
        with store.session() as session:
            ray_worker = session.get(Trial, victim).worker_pid
        store.dispose()
        assert ray_worker not in (None, runner.pid)
        os.kill(ray_worker, signal.SIGKILL)
        output, _ = runner.communicate(timeout=400)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, output
    assert "Study 'killed' finished: 2/2 trials" in output
    check_consistent(sqlite_url, "killed")
    assert _status(sqlite_url, victim) == "failed"  # reaped by the heartbeat, then retried
    store = open_store(sqlite_url, create=False)
    with store.session() as session:
        counted = session.scalar(
            select(func.count()).select_from(Run).join(Trial, Run.trial_id == Trial.id)
            .where(Trial.status == "complete")
        )
    store.dispose()
    assert counted == 2 * 2, "every seed of every trial counted once"


def test_sqlite_with_a_remote_address_fails_in_one_line_and_writes_nothing(sqlite_url: str):
    create(sqlite_url, "far", "--task", "quadratic", "--optimizers", "adam", "--trials", "2",
           "--seeds", "1", "--budget", "20")
    before = _digest(sqlite_url)
    result = CliRunner().invoke(cli, ["study", "run", "far", "--backend", "ray", "--address",
                                      "ray://10.0.0.1:10001", "--db", sqlite_url])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --backend ray --address needs a "
                                                   "database every host of the cluster reaches")
    assert _digest(sqlite_url) == before


def test_ray_missing_says_how_to_install_it(sqlite_url: str, monkeypatch):
    create(sqlite_url, "noray", "--task", "quadratic", "--optimizers", "adam", "--trials", "2",
           "--seeds", "1", "--budget", "20")
    before = _digest(sqlite_url)
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray does
    result = CliRunner().invoke(cli, ["study", "run", "noray", "--backend", "ray",
                                      "--db", sqlite_url])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        'Error: --backend ray needs Ray, which is not installed: pip install "tuner[ray]"'
    ]
    assert _digest(sqlite_url) == before


@pytest.mark.parametrize(("flags", "message"), [
    (["--address", "auto"], "Error: --address only with --backend ray"),
    (["--gpus-per-worker", "0.5"], "Error: --gpus-per-worker only with --backend ray"),
    (["--backend", "ray", "--cpus-per-worker", "0"], "Error: --cpus-per-worker must be positive"),
    (["--backend", "ray", "--gpus-per-worker", "-1"],
     "Error: --gpus-per-worker must be zero or positive"),
    (["--backend", "ray", "--gpus", "all"], "Error: --gpus places local workers; with "
     "--backend ray use --gpus-per-worker (Ray assigns the GPUs)"),
])
def test_placement_flags_are_checked_before_anything_runs(sqlite_url: str, flags, message):
    create(sqlite_url, "flags", "--task", "quadratic", "--optimizers", "adam", "--trials", "2",
           "--seeds", "1", "--budget", "20")
    before = _digest(sqlite_url)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["study", "run", "flags", *flags, "--db", sqlite_url])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert _digest(sqlite_url) == before
    assert time.monotonic() - started < 30, "refused before any Ray start"


def test_tuner_settings_reach_the_workers_of_a_cluster(monkeypatch):
    from tuner.driver.ray_backend import RayPlacement, _runtime_env

    monkeypatch.setenv("TUNER_ALLOW_CHANGED", "1")
    monkeypatch.setenv("TUNER_DB", "postgresql://user:secret@db/tuner")
    assert _runtime_env(RayPlacement()) == {}  # a local Ray's workers inherit the environment
    forwarded = _runtime_env(RayPlacement(address="auto"))["runtime_env"]["env_vars"]
    assert forwarded["TUNER_ALLOW_CHANGED"] == "1" and "TUNER_DB" not in forwarded
