"""A network split: a worker in a network namespace of its own reaches the test's own PostgreSQL
through a veth pair (:mod:`own_network`), whose link is cut mid-trial and restored. Another
worker, on this host's side of the split, keeps reaping.

* Cut for less than the grace period, the worker keeps its trial: its heartbeats, held up in
  the network, land in time, and it records the trial; nothing is reaped.
* Cut for longer, the worker on this side reaps the trial and trains the slot again; the worker
  cut off, back, stores nothing of its attempt and says so in one line.

The link is cut only while the worker holds no transaction open (a transaction cut off halfway
holds its locks on the server until the connection times out, and every other worker waits for
them: a different fault from the one under test, as with :func:`fault_tools.pause`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from fault_tools import (
    REASSIGNED,
    check_invariants,
    create,
    finish,
    report,
    run_rows,
    running_rows,
    same_ranking,
    start_worker,
    trial_rows,
    wait_for,
)
from own_network import Link, own_network
from own_postgres import own_postgres

from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, Worker, WorkerSettings

RANDOM = ("--seeds", "1", "--pruner", "none", "--sampler", "random")
"""Random sampling: each slot's configuration comes from its own seed, so the study without
faults draws the same ones (:func:`fault_tools.same_ranking`)."""


def busy(url: str, address: str) -> bool:
    """Whether a connection from ``address`` is inside a transaction or a statement."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        return bool(connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE client_addr = %s AND state <> 'idle'",
            (address,)).fetchone()[0])


def cut_while_idle(link: Link, url: str, tries: int = 50) -> None:
    """Cut the link at a moment the worker behind it holds no transaction open (the server's
    view, read after the cut and after what was on its way has landed)."""
    for _ in range(tries):
        link.cut()
        time.sleep(0.1)
        if not busy(url, link.worker_address):
            return
        link.restore()
        time.sleep(0.05)
    raise AssertionError("the worker was inside a transaction at every try")


def fault_free(tmp_path: Path, name: str, study: tuple[str, ...]) -> str:
    """The same study run without faults, in an SQLite store of its own: its URL."""
    url = f"sqlite:///{tmp_path / 'fault-free.db'}"
    create(url, name, *study)
    assert Worker(name, url).run().stopped == "finished"
    return url


def split(tmp_path: Path, name: str, study: tuple[str, ...], slots: int, cut: float | None,
          beats: dict[str, str], here: WorkerSettings) -> tuple[str, int, str, list]:
    """Run ``study`` with a worker behind the link (``beats``: its heartbeat and grace) and one
    on this side (``here``), started once the first has claimed a trial; cut the link then,
    for ``cut`` seconds, or (None) until the trial is reaped. Returns the output of the
    worker behind the link, the row cut off, its status and its runs; the scenario is
    checked against the invariants and against the study without faults."""
    with own_network() as link, own_postgres(listen=[link.host_address],
                                             clients=[f"{link.worker_address}/32"]) as server:
        url = server.url
        create(url, name, *study)
        behind = start_worker(server.url_at(link.host_address), name, beats,
                              prefix=link.prefix)
        reports = []
        here_worker = threading.Thread(
            target=lambda: reports.append(Worker(name, url, settings=here).run()))

        def status() -> str:
            return next(t.status for t in trial_rows(url, name) if t.id == row)

        try:
            wait_for(lambda: running_rows(url, name), 90, "the claim behind the link")
            row = running_rows(url, name)[0].id
            here_worker.start()
            cut_while_idle(link, url)
            assert status() == "running", "the trial ended before the cut"
            if cut is None:
                wait_for(lambda: status() == "failed", 90, "the reaping")
            else:
                time.sleep(cut)
            link.restore()
            output = finish(behind)
            here_worker.join(timeout=180)
        finally:
            link.restore()
            if behind.poll() is None:
                behind.kill()
                behind.communicate()
        assert [r.stopped for r in reports] == ["finished"]
        ended = status()
        figures = check_invariants(url, name, slots=slots, refused=int(ended == "failed"),
                                   faults=1)
        same_ranking(url, fault_free(tmp_path, name, study), "logreg")
        runs = [r for r in run_rows(url, name) if r.trial_id == row]
    report(figures, f"network split, {'until reaped' if cut is None else f'{cut:g} s'} "
           "(postgresql, 1 worker behind the link, 1 on this side)")
    return output, row, ended, runs


def test_a_split_shorter_than_the_grace_period_loses_nothing(tmp_path):
    """Cut for 2 s; grace 8 s (a heartbeat every 0.5 s, and TCP's retransmission of what was
    held up lands within about 2 s of the restore)."""
    output, _, status, runs = split(
        tmp_path, "short", ("--task", "logreg", "--optimizers", "adam", "--trials", "1",
                            "--budget", "4000", *RANDOM), slots=1, cut=2.0,
        beats={HEARTBEAT_ENV: "0.5", GRACE_ENV: "8"},
        here=WorkerSettings(heartbeat_seconds=0.5, grace_seconds=8.0))
    assert status == "complete", "the trial cut off was reaped"
    assert len(runs) == 1
    assert REASSIGNED not in output, output


@pytest.mark.harness
def test_a_worker_cut_off_past_the_grace_period_does_not_record_its_late_result(tmp_path):
    """Cut until this side's worker (grace 2 s) reaps the trial behind the link; that worker,
    back, says so in one line and stores nothing of the trial."""
    output, row, status, runs = split(
        tmp_path, "long", ("--task", "logreg", "--optimizers", "adam,sgd", "--trials", "2",
                           "--budget", "8000", *RANDOM), slots=4, cut=None,
        beats={HEARTBEAT_ENV: "0.5", GRACE_ENV: "4"},
        here=WorkerSettings(heartbeat_seconds=0.3, grace_seconds=2.0))
    assert status == "failed"
    assert not runs, "a run recorded for the lost claim"
    said = [line for line in output.splitlines() if REASSIGNED in line]
    assert len(said) == 1 and said[0].startswith(f"trial {row} (slot "), output
