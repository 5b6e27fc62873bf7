"""Several workers on one study: every slot is run exactly once; killed workers are recovered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tuner.cli import cli
from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, optuna_study_name, run_study
from tuner.store import Run, Trial, open_store
from tuner.store.studies import FINISHED, get_study


def create(url: str, name: str, *args: str) -> None:
    result = CliRunner().invoke(
        cli, ["study", "create", name, *args, "--db", url], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


def tuner_command() -> list[str]:
    beside = Path(sys.executable).with_name("tuner")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "tuner"]


def check_consistent(url: str, name: str) -> dict[str, list]:
    """Exactly one finished trial per slot of each optimizer (its trial slots and seed slots);
    runs agree with their trials (a complete trial has one run per seed of its slot); Optuna's
    trials agree with tuner's. Returns the trial rows per optimizer."""
    import optuna
    from optuna.trial import TrialState

    store = open_store(url, create=False)
    try:
        config = get_study(store, name)
        with store.session() as session:
            trials = session.scalars(select(Trial).where(Trial.study_id == config.id)).all()
            runs = session.scalars(select(Run).where(Run.study_id == config.id)).all()
        storage = store.optuna_storage()
        per_optimizer: dict[str, list] = {}
        for optimizer in config.optimizers:
            mine = [t for t in trials if t.optimizer == optimizer]
            held = [t for t in mine if t.status != "failed"]
            slots = config.slots(optimizer)
            assert sorted(t.slot for t in held) == sorted(slots), optimizer
            assert all(t.status in FINISHED for t in held), [t.status for t in held]
            study = optuna.load_study(
                study_name=optuna_study_name(name, optimizer), storage=storage
            )
            states = Counter(t.state for t in study.trials)
            assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == len(slots)
            assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0
            by_id = {t._trial_id: t for t in study.trials}
            for trial in mine:
                optuna_trial = by_id[trial.optuna_trial_id]
                expected = {"complete": TrialState.COMPLETE, "diverged": TrialState.COMPLETE,
                            "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}
                assert optuna_trial.state == expected[trial.status]
                if trial.status == "complete":
                    assert optuna_trial.value == pytest.approx(trial.value)
            per_optimizer[optimizer] = mine
        by_trial: dict[int, list[Run]] = {}
        for run in runs:
            assert run.trial_id is not None
            by_trial.setdefault(run.trial_id, []).append(run)
        for trial in trials:
            seeds = [r.seed for r in by_trial.get(trial.id, [])]
            assert len(seeds) == len(set(seeds)), f"duplicate seeds in trial {trial.id}"
            statuses = {r.status for r in by_trial.get(trial.id, [])}
            if trial.status == "complete":
                assert sorted(seeds) == config.slot_seeds(trial.optimizer, trial.slot)
                assert statuses == {"complete"}
                for run in by_trial[trial.id]:  # tuned training options are run options
                    trained = {**run.params, **{k: v for k, v in (run.options or {}).items()
                                                if k in trial.params}}
                    assert trained == trial.params
            if trial.status == "failed":
                assert not statuses & {"complete", "diverged"}, "finished seeds left behind"
        return per_optimizer
    finally:
        store.dispose()


def test_two_local_workers_run_every_slot_once(sqlite_url: str):
    create(sqlite_url, "pair", "--task", "logreg", "--optimizers", "adam,sgd",
           "--trials", "4", "--seeds", "1", "--budget", "80", "--pruner", "median")
    report = run_study("pair", sqlite_url, workers=2)
    assert report.stopped == "finished" and report.trials == 8
    trials = check_consistent(sqlite_url, "pair")
    workers = {t.worker_pid for rows in trials.values() for t in rows}
    assert len(workers) == 2, "both workers took trials"
    assert all(t.status != "failed" for rows in trials.values() for t in rows)


def _poll(url: str, query, deadline: float) -> list:
    store = open_store(url, create=False)
    try:
        while time.monotonic() < deadline:
            with store.session() as session:
                found = session.execute(query).all()
            if found:
                return found
            time.sleep(0.05)
    finally:
        store.dispose()
    pytest.fail("the worker never reached the state the test waits for")


def _mid_trial(url: str, process: subprocess.Popen, within: float = 90) -> tuple[int, int]:
    """Wait (up to ``within`` seconds) until a trial is running with one of its two seeds
    recorded: (trial id, run id)."""
    query = (
        select(Trial.id, Run.id).join(Run, Run.trial_id == Trial.id)
        .where(Trial.status == "running")
    )
    found = _poll(url, query, time.monotonic() + within)
    assert process.poll() is None
    return found[0]


def _status(url: str, trial_id: int) -> str:
    store = open_store(url, create=False)
    try:
        with store.session() as session:
            return session.get(Trial, trial_id).status
    finally:
        store.dispose()


def _owner(url: str, run_id: int) -> Trial:
    store = open_store(url, create=False)
    try:
        with store.session() as session:
            run = session.get(Run, run_id)
            return session.get(Trial, run.trial_id)
    finally:
        store.dispose()


# Each seed trains for about a second, so the state the tests wait for (a trial running with its
# first seed recorded) lasts long enough to be seen by polling, on a fast machine too.
STUDY = ["--task", "logreg", "--optimizers", "adam", "--trials", "1", "--seeds", "2",
         "--budget", "6000", "--pruner", "none"]


def test_killed_worker_is_reaped_and_its_trial_retried(sqlite_url: str, monkeypatch):
    create(sqlite_url, "killed", *STUDY)
    env = {**os.environ, HEARTBEAT_ENV: "0.2", GRACE_ENV: "1.5"}
    worker = subprocess.Popen(
        [*tuner_command(), "worker", "killed", "--db", sqlite_url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        victim, first_seed_run = _mid_trial(sqlite_url, worker)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=30)
    assert _status(sqlite_url, victim) == "running"  # nobody told the store it died

    monkeypatch.setenv(HEARTBEAT_ENV, "0.2")
    monkeypatch.setenv(GRACE_ENV, "1.5")
    report = run_study("killed", sqlite_url)
    assert report.stopped == "finished"
    check_consistent(sqlite_url, "killed")
    assert _status(sqlite_url, victim) == "failed"
    # The retry ran the same slot with the same configuration and kept the committed seed.
    retry = _owner(sqlite_url, first_seed_run)
    store = open_store(sqlite_url, create=False)
    with store.session() as session:
        dead = session.get(Trial, victim)
    store.dispose()
    assert retry.id != victim and retry.status == "complete"
    assert (retry.optimizer, retry.slot, retry.params) == (dead.optimizer, dead.slot, dead.params)


def test_ctrl_c_releases_the_trial_and_the_study_resumes(sqlite_url: str):
    create(sqlite_url, "stopped", *STUDY)
    runner = subprocess.Popen(
        [*tuner_command(), "study", "run", "stopped", "--db", sqlite_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        victim, _ = _mid_trial(sqlite_url, runner)
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, output  # the shell's code for "ended by Ctrl-C"
    assert "run it again to resume" in output
    assert _status(sqlite_url, victim) == "failed"  # released at once, no grace period needed

    resumed = CliRunner().invoke(cli, ["study", "run", "stopped", "--db", sqlite_url],
                                 catch_exceptions=False)
    assert "finished: 1/1 trials" in resumed.output
    check_consistent(sqlite_url, "stopped")
