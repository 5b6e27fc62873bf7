"""Fencing: a worker records a run, settles a trial and tells Optuna only while its attempt
still holds the claim. A worker that was paused, or silent, past the grace period comes back to
a trial reaped and retried by another: it stores nothing, says so in one line, and the store's
statistics count no run of the lost claim."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta

import pytest
from fault_tools import (
    REASSIGNED,
    check_invariants,
    create,
    pause,
    report,
    run_rows,
    running_rows,
    start_worker,
    trial_rows,
    wait_for,
)
from sqlalchemy import text

from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, Worker, WorkerSettings
from tuner.driver.claiming import Claimer
from tuner.driver.context import open_context
from tuner.driver.trial import LOST, TrialSeeds
from tuner.driver.worker import _settle
from tuner.store import open_store
from tuner.store.claims import reap_stale


def seed_stats(url: str) -> dict[int, int]:
    """{seed: runs} of ``tuner_seed_stats`` (the study has one configuration)."""
    with open_store(url, create=False) as store, store.engine.connect() as connection:
        return dict(connection.execute(text("SELECT seed, runs FROM tuner_seed_stats")).all())


def test_a_run_finished_after_its_claim_was_reaped_is_not_stored(database_url, caplog):
    """The live path's parts, one step at a time: seed 0 is recorded while the claim holds;
    the claim is reaped; seed 1, finished after that, stores nothing and ends the attempt as
    lost, in one line. The retry reuses seed 0 and trains seed 1 once."""
    from tuner.training.loop import train

    create(database_url, "fenced", "--task", "quadratic", "--optimizers", "sgd", "--trials",
           "1", "--seeds", "2", "--budget", "10", "--pruner", "none")
    store = open_store(database_url, create=False)
    try:
        context = open_context(store, "fenced")
        claim = Claimer(context).claim()
        trial = TrialSeeds(context, claim, threading.Event())
        trial.record(0, train(context.task, trial.plugin, trial.hyperparams, trial.seeds[0],
                              **trial.plan.options))
        assert trial.ended is None
        assert reap_stale(store, context.spec.id, timedelta(0)) == [
            ("sgd", claim.trial._trial_id)]
        trial.record(1, train(context.task, trial.plugin, trial.hyperparams, trial.seeds[1],
                              **trial.plan.options))
        assert trial.ended == (LOST, None, None)
        with caplog.at_level(logging.WARNING, logger="tuner.driver.worker"):
            _settle(context, claim, trial.ended)
        assert [r.message for r in caplog.records] == [
            f"trial {claim.row_id} (slot sgd/0) {REASSIGNED}"]
        assert [r.seed for r in run_rows(database_url, "fenced")] == [trial.seeds[0]]
        assert seed_stats(database_url) == {trial.seeds[0]: 1}
    finally:
        store.dispose()
    assert Worker("fenced", database_url).run().stopped == "finished"
    assert seed_stats(database_url) == dict.fromkeys(trial.seeds, 1)
    check_invariants(database_url, "fenced", slots=1)


def test_a_worker_silent_past_the_grace_period_does_not_record_its_late_result(sqlite_url):
    """A worker whose heartbeat is slower than another worker's grace period is paused until
    that worker reaps its trial, then trains on: its heartbeat has not told it, so the record
    is what refuses its finished run."""
    _reassigned_while_training(sqlite_url, "silent", {HEARTBEAT_ENV: "60", GRACE_ENV: "120"})


@pytest.mark.postgres
@pytest.mark.harness
def test_a_worker_paused_past_the_grace_period_does_not_record_its_result(postgres_url):
    """SIGSTOP a worker mid-trial past the grace period; another reaps the trial and retrains
    it; SIGCONT: the paused worker stores nothing and says so in one line."""
    _reassigned_while_training(postgres_url, "paused", {HEARTBEAT_ENV: "0.5", GRACE_ENV: "3"})


def _reassigned_while_training(url: str, name: str, env: dict[str, str]) -> None:
    """Worker A (a process, heartbeat and grace from ``env``) claims the study's one trial and
    is paused; worker B (grace 1 s) reaps it and retrains it; A resumes once its row is
    failed."""
    create(url, name, "--task", "logreg", "--optimizers", "adam", "--trials", "1", "--seeds",
           "1", "--budget", "8000", "--pruner", "none")
    first = start_worker(url, name, env)
    reports = []
    second = threading.Thread(target=lambda: reports.append(Worker(
        name, url, settings=WorkerSettings(heartbeat_seconds=0.2, grace_seconds=1.0)).run()))
    try:
        wait_for(lambda: running_rows(url, name), 60, "the first worker's claim")
        lost = running_rows(url, name)[0].id
        pause(first.pid, url)
        second.start()
        wait_for(lambda: trial_rows(url, name)[0].status == "failed", 60, "the reaping")
        os.kill(first.pid, signal.SIGCONT)
        second.join(timeout=120)
        output, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.communicate()
    assert [r.stopped for r in reports] == ["finished"]
    assert first.returncode == 0, output
    assert [line for line in output.splitlines() if REASSIGNED in line] == [
        f"trial {lost} (slot adam/0) {REASSIGNED}"], output
    assert "Traceback" not in output
    assert [t.status for t in trial_rows(url, name)] == ["failed", "complete"]
    assert not [r for r in run_rows(url, name) if r.trial_id == lost]
    report(check_invariants(url, name, slots=1, refused=1, faults=1),
           f"{name} worker ({url.split(':')[0].split('+')[0]})")
