"""A host cut off by the network in the middle of a transaction: the server finds it dead by
TCP keepalives (:data:`tuner.store.database.KEEPALIVE_SECONDS`), ends its session, and frees its
row locks within the workers' grace period; a connection made without them keeps its locks.

Two processes in a network namespace of their own (:mod:`own_network`) reach the test's own
PostgreSQL (:mod:`own_postgres`) through a veth pair: one through tuner's engine
(:func:`tuner.store.database.make_engine`), one through a plain SQLAlchemy engine (the
baseline). Each locks a row of the store's ``tuner_meta`` (``SELECT ... FOR UPDATE``) and
sleeps inside its transaction; the link is then cut, and this side tries each row every second
(``FOR UPDATE NOWAIT``) and watches each session in ``pg_stat_activity``.

The baseline shows that the test can fail: without keepalives of its own, its session gets the
kernel's (``net.ipv4.tcp_keepalive_time``, two hours unless the machine says otherwise), so the
server keeps its lock through the whole watch; ``pg_terminate_backend`` frees it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from fault_tools import wait_for
from own_network import own_network
from own_postgres import own_postgres

from tuner.driver import WorkerSettings
from tuner.store import open_store
from tuner.store.database import KEEPALIVE_SECONDS

HOLDER = """\
import sys, time
from sqlalchemy import create_engine, text

url, how, key = sys.argv[1:]
if how == "tuner":
    from tuner.store.database import make_engine
    engine = make_engine(url)
else:
    engine = create_engine(url)
with engine.connect() as connection:
    pid, idle = connection.execute(text(
        "SELECT pg_backend_pid(), current_setting('tcp_keepalives_idle')")).one()
    connection.execute(text("SELECT key FROM tuner_meta WHERE key = :key FOR UPDATE"),
                       {"key": key}).one()
    print("locked", pid, idle, flush=True)
    time.sleep(600)
"""
"""A process that locks the row ``key`` of ``tuner_meta`` through tuner's engine (``tuner``)
or a plain one (``plain``), says ``locked PID KEEPALIVE-IDLE`` (its backend and the server's
idle time before the first probe, as the session sees it) and sleeps in its transaction."""

GRACE = WorkerSettings().grace_seconds
"""The workers' default grace period (60 s): the freed lock must come before it, so that the
workers left reap the trial of the host cut off without waiting on its locks."""

DEAD_AFTER = KEEPALIVE_SECONDS[0] + KEEPALIVE_SECONDS[1] * KEEPALIVE_SECONDS[2]
"""Seconds from a session's last packet until the server's kernel calls it dead (40 s): the
idle time, then every probe unanswered. The link is cut a moment after the lock, so the lock
is freed about this long after the cut; the check is against :data:`GRACE`, which leaves 20 s
for the kernel's timer and the once-a-second polling."""

EARLIEST = KEEPALIVE_SECONDS[1] * KEEPALIVE_SECONDS[2] - 2
"""The earliest the lock may be freed after the cut (18 s): at least ``count`` probes, spaced
by ``interval``, go unanswered after it (2 s for the polling). Sooner would mean the session
ended for another reason (the process behind it exited, the link let packets through)."""

WATCH = 120.0
"""How long this side waits, at most, for tuner's lock to be freed."""


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True)


def held(url: str, key: str) -> bool:
    """Whether another session holds the row ``key`` of ``tuner_meta`` (tried, not waited
    for)."""
    with admin(url) as connection:
        try:
            with connection.transaction():
                connection.execute("SELECT key FROM tuner_meta WHERE key = %s FOR UPDATE NOWAIT",
                                   (key,))
        except psycopg.errors.LockNotAvailable:
            return True
    return False


def sessions(url: str, pids: list[int]) -> set[int]:
    """Those of ``pids`` whose sessions the server still keeps."""
    with admin(url) as connection:
        return {row[0] for row in connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))}


def locked(output: Path, process: subprocess.Popen) -> list[str]:
    """The ``locked`` line of a holder (waited for), split: ["locked", pid, idle]."""
    def said() -> bool:
        assert process.poll() is None, output.read_text()
        return output.read_text().startswith("locked")

    wait_for(said, 60, f"the lock of {output.stem}", every=0.2)
    return output.read_text().split()


@pytest.mark.harness
def test_a_host_cut_off_mid_transaction_frees_its_locks_within_the_grace_period(tmp_path):
    """Cut the link under two sessions, each holding a row lock inside a transaction: tuner's
    is ended by the server within the grace period; the baseline's, without keepalives, still
    holds its row then."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    keys = {"tuner": "schema_revision", "plain": "tuner_version"}
    with own_network() as link, own_postgres(listen=[link.host_address],
                                             clients=[f"{link.worker_address}/32"]) as server:
        url = server.url
        open_store(url).dispose()  # tuner's tables, with its tuner_meta rows
        processes: dict[str, subprocess.Popen] = {}
        try:
            for how, key in keys.items():
                with open(tmp_path / f"{how}.out", "w") as output:
                    processes[how] = subprocess.Popen(
                        [*link.prefix, sys.executable, str(script),
                         server.url_at(link.host_address), how, key],
                        stdout=output, stderr=subprocess.STDOUT, env=dict(os.environ))
            said = {how: locked(tmp_path / f"{how}.out", processes[how]) for how in keys}
            pids = {how: int(words[1]) for how, words in said.items()}
            idle = {how: words[2] for how, words in said.items()}
            # the server applies tuner's keepalives to the session; the baseline's are the
            # kernel's (0, its default, shows the socket's own value)
            assert idle["tuner"] == f"{KEEPALIVE_SECONDS[0]}", idle
            assert all(held(url, key) for key in keys.values()), "a row was not locked"

            link.cut()
            cut = time.monotonic()
            while held(url, keys["tuner"]) and time.monotonic() - cut < WATCH:
                time.sleep(1.0)
            freed = time.monotonic() - cut
            assert not held(url, keys["tuner"]), f"tuner's lock still held after {WATCH:g} s"
            assert pids["tuner"] not in sessions(url, list(pids.values())), (
                "tuner's row is free but its session is still there")
            assert all(p.poll() is None for p in processes.values()), (
                "a process behind the link exited: the session did not end by keepalives")
            assert EARLIEST <= freed <= GRACE, (
                f"tuner's lock was freed {freed:.1f} s after the cut, outside "
                f"[{EARLIEST:g}, {GRACE:g}] s")

            # the baseline, watched until the grace period is over, keeps its session and lock
            while time.monotonic() - cut < GRACE:
                assert held(url, keys["plain"]), (
                    f"the baseline's lock was freed {time.monotonic() - cut:.1f} s after the "
                    "cut: this machine's keepalives do not show the difference")
                time.sleep(1.0)
            kept = time.monotonic() - cut
            assert held(url, keys["plain"])
            assert pids["plain"] in sessions(url, list(pids.values()))

            with admin(url) as connection:
                connection.execute("SELECT pg_terminate_backend(%s)", (pids["plain"],))
            wait_for(lambda: not held(url, keys["plain"]), 10, "the baseline's termination")
        finally:
            link.restore()
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=30)
    print(f"cut mid-transaction (postgresql, keepalives {KEEPALIVE_SECONDS}): tuner's lock "
          f"freed {freed:.1f} s after the cut (session keepalive idle {idle['tuner']} s); "
          f"the baseline's still held after {kept:.1f} s (session keepalive idle "
          f"{idle['plain']} s), then terminated", file=sys.stderr)
