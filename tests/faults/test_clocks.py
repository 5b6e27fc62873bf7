"""The database's clock, not the worker's: on PostgreSQL, workers whose clocks are hours ahead
or behind (``faketime``) neither reap each other's live trials nor keep a dead worker's."""

from __future__ import annotations

import shutil

import pytest
from fault_tools import check_invariants, create, finish, report, start_worker, trial_rows

from tuner.driver import GRACE_ENV, HEARTBEAT_ENV
from tuner.driver.claiming import Claimer
from tuner.driver.context import open_context
from tuner.store import open_store

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(shutil.which("faketime") is None,
                       reason="needs faketime (Debian's package of that name)"),
]

HOURS = 3
QUICK_BEATS = {HEARTBEAT_ENV: "0.3", GRACE_ENV: "2"}


def moved(hours: int) -> list[str]:
    """The command prefix that runs a process with its wall clock ``hours`` off (time still
    flows). Its monotonic clock is left alone, as on a real host whose clock is wrong (moved by
    hours, it would make every timed wait in the process wait hours, or not at all)."""
    return ["env", "FAKETIME_DONT_FAKE_MONOTONIC=1", "faketime", "-f", f"{hours:+d}h"]


def abandon_a_claim(url: str, name: str) -> int:
    """Claim a slot as a worker does, then vanish (the claim's worker died): its row id."""
    with open_store(url, create=False) as store:
        return Claimer(open_context(store, name)).claim().row_id


def test_a_worker_with_its_clock_behind_reaps_a_dead_workers_trial(postgres_url):
    """Alone with a dead worker's claim and its clock hours behind: it reaps the claim after
    the grace period (by the server's clock), and finishes the study."""
    create(postgres_url, "behind", "--task", "quadratic", "--optimizers", "adam", "--trials",
           "2", "--seeds", "1", "--budget", "20", "--pruner", "none")
    dead = abandon_a_claim(postgres_url, "behind")
    output = finish(start_worker(postgres_url, "behind", QUICK_BEATS, "--timeout", "60",
                                 prefix=moved(-HOURS)))
    assert "finished" in output, output
    assert [t.id for t in trial_rows(postgres_url, "behind") if t.status == "failed"] == [dead]
    report(check_invariants(postgres_url, "behind", slots=2, faults=1),
           f"clock {-HOURS} h, a dead claim (postgresql)")


@pytest.mark.harness
def test_workers_with_clocks_ahead_and_behind_reap_no_live_trial(postgres_url):
    """Two workers, one hours ahead and one hours behind, share a study whose trials last
    longer than the grace period: neither reaps the other's live trials."""
    create(postgres_url, "skewed", "--task", "logreg", "--optimizers", "adam,sgd", "--trials",
           "2", "--seeds", "1", "--budget", "6000", "--pruner", "none")
    workers = [start_worker(postgres_url, "skewed", QUICK_BEATS, prefix=moved(hours))
               for hours in (HOURS, -HOURS)]
    for worker in workers:
        finish(worker)
    rows = trial_rows(postgres_url, "skewed")
    assert not [t for t in rows if t.status == "failed"], "a live trial was reaped"
    assert len({t.worker_pid for t in rows}) == 2
    report(check_invariants(postgres_url, "skewed", slots=4, faults=2),
           f"clocks {HOURS:+d} h and {-HOURS:+d} h, two workers (postgresql)")
