"""A database outage is ridden through: PostgreSQL (a server of the test's own) stopped and
started again mid-study. Within the bound the study finishes as if nothing happened, no live
trial reaped when the database comes back; past it the workers stop with one line, and the
next run finishes the study, ranked as the same study without faults."""

from __future__ import annotations

import subprocess
import time

import pytest
from fault_tools import (
    check_invariants,
    create,
    report,
    same_ranking,
    trial_rows,
    tuner_command,
    wait_for,
)
from own_postgres import own_postgres

from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, Worker
from tuner.driver.settings import OUTAGE_ENV

STUDY = ("--task", "logreg", "--optimizers", "adam,sgd", "--trials", "3", "--seeds", "1",
         "--budget", "4000", "--pruner", "none", "--sampler", "random")
"""Random sampling: each slot's configuration comes from its own seed, whichever worker draws
it and when, so the study without faults draws the same ones (:func:`same_ranking`)."""


def run_study(url: str, name: str, outage: float) -> subprocess.Popen:
    """``tuner study run NAME --workers 2`` as a process (stdout and stderr merged)."""
    import os

    env = {**os.environ, HEARTBEAT_ENV: "0.5", GRACE_ENV: "4", OUTAGE_ENV: str(outage)}
    return subprocess.Popen([*tuner_command(), "study", "run", name, "--workers", "2", "--db",
                             url], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _mid_study(url: str, name: str) -> None:
    """Wait until a trial is settled and others are running."""
    wait_for(lambda: any(t.status == "complete" for t in trial_rows(url, name))
             and any(t.status == "running" for t in trial_rows(url, name)), 120,
             "the study to be under way", every=0.2)


def test_a_restart_within_the_bound_is_ridden_through():
    with own_postgres() as server:
        create(server.url, "restart", *STUDY)
        study = run_study(server.url, "restart", outage=120)
        try:
            _mid_study(server.url, "restart")
            server.stop()
            time.sleep(3)
            server.start()
            output, _ = study.communicate(timeout=300)
        finally:
            if study.poll() is None:
                study.kill()
                study.communicate()
        assert study.returncode == 0, output
        assert "Traceback" not in output, output
        assert "finished" in output.splitlines()[-1], output
        failed = [t.id for t in trial_rows(server.url, "restart") if t.status == "failed"]
        assert not failed, f"live trials reaped after the outage: {failed}"
        report(check_invariants(server.url, "restart", slots=6, faults=1),
               "PostgreSQL restarted (3 s down, 2 workers)")


@pytest.mark.harness
def test_an_outage_past_the_bound_stops_the_run_in_one_line_and_the_next_run_finishes(
        tmp_path):
    with own_postgres() as server:
        create(server.url, "long", *STUDY)
        study = run_study(server.url, "long", outage=4)
        try:
            _mid_study(server.url, "long")
            server.stop()
            output, _ = study.communicate(timeout=120)
        finally:
            if study.poll() is None:
                study.kill()
                study.communicate()
            server.start()
        assert study.returncode == 1, output
        assert "Traceback" not in output, output
        errors = [line for line in output.splitlines() if "unreachable for more than" in line]
        assert len(errors) == 1, output
        again = run_study(server.url, "long", outage=60)
        output, _ = again.communicate(timeout=300)
        assert again.returncode == 0 and "Traceback" not in output, output
        figures = check_invariants(server.url, "long", slots=6, faults=1)
        fault_free = f"sqlite:///{tmp_path / 'fault-free.db'}"
        create(fault_free, "long", *STUDY)
        assert Worker("long", fault_free).run().stopped == "finished"
        same_ranking(server.url, fault_free, "logreg")
        report(figures, "PostgreSQL down past the outage bound (2 workers), then run again")
