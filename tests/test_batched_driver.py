"""Batched studies (``--batch K``): each slot still claimed, heartbeated, recorded and counted
once, and each run the run it would have had alone. Real worker processes on real SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from test_batched_training import ONE_EXAMPLE
from test_workers import check_consistent, tuner_command

from tuner.cli import cli
from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, run_study
from tuner.driver.create import CRASH_ENV
from tuner.store import Run, Trial, open_store, record_run
from tuner.store.config_key import config_hash
from tuner.store.queries import Scope, config_runs
from tuner.store.studies import get_study
from tuner.training.loop import RunResult, train

# digits-mlp for 2 epochs: a run takes tens of milliseconds; weight decay fixed at 0 so that
# every sampled adam configuration has the same active parameters (one batch signature).
STUDY = ["--task", "digits-mlp", "--optimizers", "adam,sgd", "--trials", "3", "--seeds", "2",
         "--budget", "44", "--sampler", "random", "--pruner", "none",
         "--param-range", "weight_decay=0:0"]


def create(url: str, name: str, *args: str) -> None:
    result = CliRunner().invoke(cli, ["study", "create", name, *args, "--db", url],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def rows(url: str, name: str) -> tuple[list[Trial], list[Run]]:
    with open_store(url, create=False) as store:
        spec = get_study(store, name)
        with store.session() as session:
            trials = session.scalars(select(Trial).where(Trial.study_id == spec.id)).all()
            runs = session.scalars(select(Run).where(Run.study_id == spec.id)).all()
    return list(trials), list(runs)


@pytest.fixture(scope="module")
def batched_study(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study run to the end by 2 local worker processes with --batch 4."""
    url = f"sqlite:///{tmp_path_factory.mktemp('batched') / 'tuner.db'}"
    create(url, "batched", *STUDY)
    report = run_study("batched", url, workers=2, batch=4)
    assert report.stopped == "finished"
    return url


def test_two_batched_workers_settle_exactly_n_trials_each_run_as_alone(batched_study: str):
    per_optimizer = check_consistent(batched_study, "batched")
    assert {o: len([t for t in trials if t.status == "complete"])
            for o, trials in per_optimizer.items()} == {"adam": 3, "sgd": 3}
    _, runs = rows(batched_study, "batched")
    assert len(runs) == 2 * 3 * 2  # optimizers x trials x seeds, none twice
    # a worker claims up to 4 free slots of one optimizer (the other may win some of them)
    assert {r.options.get("batch", 1) for r in runs} <= {1, 2, 3}
    assert max(r.options.get("batch", 1) for r in runs) > 1
    for run in runs:
        alone = train("digits-mlp", run.optimizer, run.params, run.seed, budget=44, threads=1)
        assert alone.status == run.status == "complete"
        # a batched run equals its run alone up to float32 summation order (vmap's batched
        # products), so one validation example near a tie may go either way
        assert run.final_metric == pytest.approx(alone.final_metric, abs=ONE_EXAMPLE)
        assert run.steps_to_target == alone.steps_to_target


def test_the_time_advice_leaves_batched_runs_out(sqlite_url: str):
    """Two seeds of one configuration reached the target: one alone, one in a batch of 4,
    whose clock was the batch's; the advice reads the time of the first only."""
    store = open_store(sqlite_url)
    try:
        for seed, batch in ((0, 1), (1, 4)):
            result = RunResult(task="digits-mlp", optimizer="adam", params={"lr": 1e-3},
                               seed=seed, status="complete", final_metric=0.95,
                               best_metric=0.95, steps=44, steps_to_target=22,
                               seconds_to_target=0.5, wall_seconds=1.0, batch=batch,
                               options={"budget": 44, "batch": batch})
            record_run(store, None, result)
        key = config_hash({"lr": 1e-3}, {"budget": 44})
        found = config_runs(store, Scope("digits-mlp"), [("adam", key)])[("adam", key)]
    finally:
        store.dispose()
    assert [(r.seed, r.steps_to_target, r.seconds_to_target) for r in found] == [
        (0, 22, 0.5), (1, 22, None)]


def test_a_worker_killed_mid_batch_is_reaped_and_retried_counting_nothing_twice(
        database_url: str, monkeypatch: pytest.MonkeyPatch):
    """On SQLite and PostgreSQL (the batch's heartbeats are one transaction)."""
    create(database_url, "killed", *STUDY[:3], "sgd", "--trials", "2", *STUDY[6:])
    env = {**os.environ, HEARTBEAT_ENV: "0.2", GRACE_ENV: "1.5", CRASH_ENV: "batch-seed"}
    killed = subprocess.run([*tuner_command(), "worker", "killed", "--batch", "4",
                             "--db", database_url], env=env, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    trials, runs = rows(database_url, "killed")
    assert sorted((t.slot, t.status) for t in trials) == [(0, "running"), (1, "running")]
    assert sorted((r.trial_id, r.seed) for r in runs) == sorted((t.id, 0) for t in trials)
    first_seed_runs = {r.id: r.trial_id for r in runs}

    monkeypatch.setenv(HEARTBEAT_ENV, "0.2")
    monkeypatch.setenv(GRACE_ENV, "1.5")
    assert run_study("killed", database_url, batch=4).stopped == "finished"
    check_consistent(database_url, "killed")
    trials, runs = rows(database_url, "killed")
    dead = {t.id for t in trials if t.id in first_seed_runs.values()}
    assert {t.status for t in trials if t.id in dead} == {"failed"}  # reaped
    retries = {t.id: t for t in trials if t.id not in dead}
    assert sorted(t.slot for t in retries.values()) == [0, 1]
    assert all(t.status == "complete" for t in retries.values())
    assert len(runs) == 2 * 2  # trials x seeds: the seed-0 runs moved, not trained again
    moved = {r.id: r.trial_id for r in runs if r.id in first_seed_runs}
    assert set(moved) == set(first_seed_runs) and set(moved.values()) == set(retries)


def test_the_batch_size_comes_from_the_study_file_and_bad_values_are_one_line(
        sqlite_url: str, tmp_path: Path):
    study_file = tmp_path / "batched.toml"
    study_file.write_text('task = "digits-mlp"\noptimizers = ["sgd"]\ntrials = 3\nseeds = 1\n'
                          'budget = 22\npruner = "none"\nbatch = 3\n')
    create(sqlite_url, "from-file", "--from", str(study_file))
    assert run_study("from-file", sqlite_url).stopped == "finished"
    _, runs = rows(sqlite_url, "from-file")
    assert sorted(r.options.get("batch", 1) for r in runs) == [3, 3, 3]
    for args in (["study", "run", "from-file", "--batch", "0"],
                 ["worker", "from-file", "--batch", "-2"]):
        result = CliRunner().invoke(cli, [*args, "--db", sqlite_url])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code != 0 and len(lines) == 1 and "--batch" in lines[0], lines
    shown = CliRunner().invoke(cli, ["study", "show", "from-file", "--json", "--db",
                                     sqlite_url])
    assert json.loads(shown.output)["status"] == "finished"
