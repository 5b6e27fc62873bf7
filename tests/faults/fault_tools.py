"""Shared parts of the fault tests: studies made by the CLI, worker processes, pausing one
safely, and the invariants every fault scenario checks.

The invariants (:func:`check_invariants`) are those of the kill tests: every slot settled exactly
once, no (configuration, seed) trained twice, no run recorded for a lost claim (every run that
did not fail belongs to a trial that was not failed), and the store's statistics
(``tuner_seed_stats``, ``tuner_config_stats``) counting each of those runs once. Each returns
figures for the closing note of a scenario (:class:`Figures`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select, text

from tuner.cli import cli
from tuner.store import Run, Trial, open_store
from tuner.store.studies import get_study

REASSIGNED = "was reassigned; result discarded"
"""What a worker says, in one line, when it comes back to a trial reaped meanwhile."""

ENDED_TRIALS = ("complete", "pruned", "diverged")


def tuner_command() -> list[str]:
    beside = Path(sys.executable).with_name("tuner")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "tuner"]


def create(url: str, name: str, *args: str) -> None:
    """``tuner study create NAME ARGS --db URL``, which must succeed."""
    result = CliRunner().invoke(cli, ["study", "create", name, *args, "--db", url],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def start_worker(url: str, name: str, env: dict[str, str], *args: str,
                 prefix: list[str] | None = None) -> subprocess.Popen:
    """``tuner worker NAME --db URL`` as a process (its output: stdout and stderr, merged);
    ``prefix`` runs it under another command (``faketime``, ``ip netns exec``)."""
    return subprocess.Popen([*(prefix or []), *tuner_command(), "worker", name, *args,
                             "--db", url], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def worker_children(pid: int) -> list[int]:
    """The worker processes spawned by process ``pid`` (``tuner study run --workers N``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if parent == pid and "multiprocessing" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def trial_rows(url: str, name: str) -> list:
    with open_store(url, create=False) as store:
        spec = get_study(store, name)
        with store.session() as session:
            return session.scalars(select(Trial).where(Trial.study_id == spec.id)
                                   .order_by(Trial.id)).all()


def run_rows(url: str, name: str) -> list:
    with open_store(url, create=False) as store:
        spec = get_study(store, name)
        with store.session() as session:
            return session.scalars(select(Run).where(Run.study_id == spec.id)
                                   .order_by(Run.id)).all()


def wait_for(condition, seconds: float, what: str, every: float = 0.1) -> None:
    """Poll ``condition()`` until it is true; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def running_rows(url: str, name: str) -> list:
    return [t for t in trial_rows(url, name) if t.status == "running"]


def in_transaction(url: str) -> bool:
    """Whether some connection holds a write transaction open on the store (SQLite: the write
    lock is taken; PostgreSQL: a session is inside a transaction other than this check's)."""
    with open_store(url, create=False) as store, store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            import sqlite3

            raw = sqlite3.connect(str(store.engine.url.database), timeout=0)
            try:
                raw.execute("BEGIN IMMEDIATE")
                raw.rollback()
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                raw.close()
        return bool(connection.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'")))


def pause(pid: int, url: str, tries: int = 50) -> None:
    """SIGSTOP process ``pid`` at a moment it holds no transaction open (a process stopped in
    the middle of one would hold its locks, and every other worker would wait for them: a
    different fault from the one under test)."""
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        if not in_transaction(url):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.03)
    raise AssertionError(f"process {pid} was inside a transaction at every try")


@dataclass
class Figures:
    """A scenario's figures: trials settled, slots lost, (configuration, seed) doubled, late
    results refused (attempts that said so), faults injected."""

    faults: int = 0
    settled: int = 0
    lost: int = 0
    doubled: int = 0
    refused: int = 0

    def line(self, scenario: str) -> str:
        return (f"{scenario}: {self.faults} fault(s) injected, {self.settled} trial(s) "
                f"settled, {self.lost} lost, {self.doubled} doubled, {self.refused} late "
                "result(s) refused")


def check_invariants(url: str, name: str, slots: int, refused: int = 0,
                     faults: int = 0) -> Figures:
    """Check a finished study against the invariants of the module docstring; its figures."""
    trials = trial_rows(url, name)
    runs = run_rows(url, name)
    ended = [t for t in trials if t.status in ENDED_TRIALS]
    per_slot = Counter((t.optimizer, t.slot) for t in ended)
    assert all(n == 1 for n in per_slot.values()), f"a slot settled twice: {per_slot}"
    assert len(per_slot) == slots, f"{slots - len(per_slot)} slot(s) not settled"
    assert not [t for t in trials if t.status == "running"], "a running row was left"
    status_of = {t.id: t.status for t in trials}
    late = [r.id for r in runs if r.status != "failed" and status_of[r.trial_id] == "failed"]
    assert not late, f"runs recorded for lost claims: {late}"
    trained = Counter((r.optimizer, r.params_hash, r.seed) for r in runs
                      if r.status != "failed")
    doubled = sum(n - 1 for n in trained.values())
    assert doubled == 0, f"(configuration, seed) trained twice: {trained}"
    with open_store(url, create=False) as store, store.engine.connect() as connection:
        counted = dict(connection.execute(text(
            "SELECT config_hash || '/' || seed, runs FROM tuner_seed_stats")).all())
        configs = dict(connection.execute(text(
            "SELECT config_hash, runs FROM tuner_config_stats")).all())
    mine = Counter(f"{r.config_hash}/{r.seed}" for r in runs)
    assert {k: counted.get(k) for k in mine} == dict(mine), "tuner_seed_stats miscounts"
    assert {k: configs.get(k) for k in {r.config_hash for r in runs}} == dict(
        Counter(r.config_hash for r in runs)), "tuner_config_stats miscounts"
    return Figures(faults=faults, settled=len(ended), lost=slots - len(per_slot),
                   doubled=doubled, refused=refused)


def ranking(url: str, name: str) -> list:
    """The study's ranking as ``tuner study show --json`` gives it, for comparing two runs."""
    shown = CliRunner().invoke(cli, ["study", "show", name, "--db", url, "--json"],
                               catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)


SAME_METRIC = 1e-5
"""How far one optimizer's best metric may lie from the fault-free study's, relative (with a
floor of the same size for metrics near 0). A seeded run on the CPU repeats bit for bit in
one process; across processes the run may be given another number of torch threads, which
sums in another order: float32 rounding (1e-7 relative) carried through a few thousand small
steps stays below 1e-6 on the tasks used here, so 1e-5 separates that from a run that
differs (another configuration, a seed trained twice and averaged in, a run lost)."""


def best_json(url: str, task: str) -> dict:
    """``tuner best --task TASK --db URL --json``: the store's ranking of the task."""
    shown = CliRunner().invoke(cli, ["best", "--task", task, "--db", url, "--json"],
                               catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)


def same_ranking(url_a: str, url_b: str, task: str, tolerance: float = SAME_METRIC) -> list:
    """Assert that two stores, each holding one study of ``task`` of the same settings (one
    with faults, one without), rank the task alike: the same optimizers in the same order,
    each with the same best configuration and its best metric equal within ``tolerance``
    (:data:`SAME_METRIC`). Returns the ranking as (optimizer, best metric) pairs.

    This holds only where the study's configurations do not depend on timing: ``--sampler
    random`` draws each slot's configuration from the slot's own seed, and a retried slot
    keeps its configuration, so faults change when and where runs happen, not what they are.
    (TPE draws from the trials finished so far, which racing workers see in any order.)"""
    rankings = [best_json(url, task)["optimizers"] for url in (url_a, url_b)]
    order = [[entry["optimizer"] for entry in ranked] for ranked in rankings]
    assert order[0] == order[1], f"the optimizers are ranked differently: {order}"
    for mine, theirs in zip(*rankings, strict=True):
        name = mine["optimizer"]
        assert mine["config_hash"] == theirs["config_hash"], (
            f"{name}'s best configuration differs: {mine['params']} / {theirs['params']}")
        assert mine["runs"] == theirs["runs"], f"{name}: {mine['runs']} / {theirs['runs']} runs"
        gap = abs(mine["mean"] - theirs["mean"])
        assert gap <= tolerance * max(1.0, abs(theirs["mean"])), (
            f"{name}'s best metric differs: {mine['mean']} / {theirs['mean']}")
    return [(entry["optimizer"], entry["mean"]) for entry in rankings[0]]


def report(figures: Figures, scenario: str) -> None:
    """Print a scenario's figures (seen with ``-s``; the harness collects them)."""
    print(figures.line(scenario), file=sys.stderr)


def ended(process: subprocess.Popen, seconds: float = 240) -> str:
    """The output of ``process`` once it has ended (killed after ``seconds``)."""
    try:
        output, _ = process.communicate(timeout=seconds)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return output


def finish(process: subprocess.Popen, seconds: float = 240) -> str:
    """The output of ``process``, which must end well (exit 0, no traceback) within
    ``seconds``."""
    output = ended(process, seconds)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    return output
