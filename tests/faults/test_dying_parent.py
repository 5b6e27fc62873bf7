"""Worker processes whose parent is killed while they start end quietly: no traceback, no
``KeyboardInterrupt``, and none outlives its parent."""

from __future__ import annotations

import subprocess
import time

import pytest
from fault_tools import alive, create, tuner_command, wait_for, worker_children


@pytest.mark.parametrize("delay", [0.0, 0.6])
def test_workers_starting_under_a_killed_parent_exit_quietly(sqlite_url, tmp_path, delay):
    """SIGKILL ``tuner study run --workers 2`` as soon as its workers exist (they are still
    importing) and a little later (they are setting up): their output has no traceback."""
    create(sqlite_url, "orphans", "--task", "quadratic", "--optimizers", "adam", "--trials",
           "4", "--seeds", "1", "--budget", "20", "--pruner", "none")
    log_path = tmp_path / "output.txt"
    with open(log_path, "w") as log:
        parent = subprocess.Popen([*tuner_command(), "study", "run", "orphans", "--workers",
                                   "2", "--db", sqlite_url], stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(worker_children(parent.pid)) >= 2, 60, "the workers",
                     every=0.02)
            workers = worker_children(parent.pid)
            time.sleep(delay)
        finally:
            parent.kill()
            parent.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), 60, "the workers to end")
    output = log_path.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
