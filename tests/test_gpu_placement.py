"""Local GPU placement: ``--gpus`` parsing, the round-robin assignment, and the environment each
spawned worker process starts with (tested on the CPU: ``CUDA_VISIBLE_DEVICES`` is only a
variable until torch reads it); the ``gpu`` tests run the real placement where CUDA is present."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import threading
import time
from contextlib import suppress
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from test_workers import create

from tuner.cli import cli
from tuner.driver import DriverError, run_study
from tuner.driver.gpus import (
    VISIBLE_DEVICES_ENV,
    assign_gpus,
    detect_gpus,
    parse_gpus,
    worker_environments,
)
from tuner.store import Run, open_store


def test_parse_gpus_names_present_gpus_or_all():
    assert parse_gpus("all", available=["0", "1", "2"]) == ["0", "1", "2"]
    assert parse_gpus("1, 0", available=["0", "1", "2"]) == ["1", "0"]
    assert parse_gpus("1,1", available=["0", "1"]) == ["1"]


@pytest.mark.parametrize(("text", "available", "message"), [
    ("0,1", [], "no GPU found on this machine"),
    ("all", [], "no GPU found on this machine"),
    ("0,3", ["0", "1"], "no GPU 3 on this machine (it has 0, 1)"),
    ("cuda:0", ["0"], "--gpus takes 'all' or indices"),
    ("0,,1", ["0", "1"], "--gpus takes 'all' or indices"),
])
def test_parse_gpus_refuses_what_is_not_there(text, available, message):
    with pytest.raises(DriverError, match="^--gpus") as raised:
        parse_gpus(text, available=available)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_workers_are_spread_round_robin_several_per_gpu():
    assert assign_gpus(8, ["0", "1"]) == ["0", "1", "0", "1", "0", "1", "0", "1"]
    assert assign_gpus(3, ["2"]) == ["2", "2", "2"]
    assert worker_environments(2, ["5", "7"]) == [
        {VISIBLE_DEVICES_ENV: "5"}, {VISIBLE_DEVICES_ENV: "7"}
    ]
    assert worker_environments(2, []) == [{}, {}]


def test_detection_follows_cuda_visible_devices_of_the_parent(monkeypatch):
    monkeypatch.setattr("tuner.driver.gpus._nvidia_smi_gpus", lambda: ["0", "1", "2", "3"])
    monkeypatch.setenv(VISIBLE_DEVICES_ENV, "3,1")
    assert detect_gpus() == ["3", "1"]
    monkeypatch.delenv(VISIBLE_DEVICES_ENV)
    assert detect_gpus() == ["0", "1", "2", "3"]


@pytest.mark.skipif(bool(detect_gpus()), reason="this machine has GPUs")
def test_gpus_without_gpus_fails_in_one_line_and_writes_nothing(sqlite_url: str):
    create(sqlite_url, "nogpu", "--task", "quadratic", "--optimizers", "adam",
           "--trials", "2", "--seeds", "1", "--budget", "20")
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = CliRunner().invoke(cli, ["study", "run", "nogpu", "--workers", "8", "--gpus", "0,1",
                                      "--db", sqlite_url])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: --gpus: no GPU found on this machine (nvidia-smi -L lists none)"
    ]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def _initial_environment(pid: int) -> dict[str, str]:
    """The environment a process was started with (what it had before its first import)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_each_spawned_worker_starts_with_its_gpu(sqlite_url: str, monkeypatch):
    """``/proc/PID/environ`` is the environment a process was started with: what it held before
    its first import. Once all eight are seen, the workers are stopped (SIGTERM); the spread,
    not the training, is under test. The budget is long enough that no worker runs out of work
    before it is seen, and the deadline leaves room for eight torch imports on a loaded
    machine (each takes seconds there)."""
    create(sqlite_url, "spread", "--task", "quadratic", "--optimizers", "adam",
           "--trials", "8", "--seeds", "1", "--budget", "1000000")
    monkeypatch.delenv(VISIBLE_DEVICES_ENV, raising=False)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = run_study("spread", sqlite_url, workers=8, gpus=["0", "1"])
        except BaseException as error:  # noqa: BLE001 - shown by the assertion below
            outcome["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    seen: dict[str, str | None] = {}
    children: list[multiprocessing.Process] = []
    deadline = time.monotonic() + 240
    try:
        while runner.is_alive() and len(seen) < 8 and time.monotonic() < deadline:
            for child in multiprocessing.active_children():
                if child.name.startswith("tuner-worker-") and child.name not in seen:
                    try:
                        environment = _initial_environment(child.pid)
                    except OSError:  # not started yet, or gone: the next look decides
                        continue
                    seen[child.name] = environment.get(VISIBLE_DEVICES_ENV)
                    children.append(child)
            time.sleep(0.01)
    finally:  # every worker, seen or not: none may train its long budget to the end
        for child in [*children, *multiprocessing.active_children()]:
            if child.name.startswith("tuner-worker-") and child.pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        runner.join(timeout=120)
    assert "error" not in outcome, outcome
    assert seen == {f"tuner-worker-{index}": "01"[index % 2] for index in range(8)}
    assert VISIBLE_DEVICES_ENV not in os.environ  # the parent's own environment is untouched


@pytest.mark.gpu
@pytest.mark.skipif(not detect_gpus(), reason="needs CUDA GPUs")
def test_runs_are_placed_on_the_gpus_and_record_them(sqlite_url: str):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    create(sqlite_url, "ongpu", "--task", "logreg", "--optimizers", "adam", "--trials", "4",
           "--seeds", "1", "--budget", "50")
    result = CliRunner().invoke(cli, ["study", "run", "ongpu", "--workers", "2", "--gpus", "all",
                                      "--db", sqlite_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    store = open_store(sqlite_url, create=False)
    try:
        with store.session() as session:
            runs = session.scalars(select(Run)).all()
    finally:
        store.dispose()
    assert len(runs) == 4
    assert all(run.device.startswith("cuda") for run in runs)
    assert all(run.peak_memory_bytes for run in runs)
