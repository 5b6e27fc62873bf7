"""Torch threads per run: the default for tuner's small models is one thread on a machine of
any size, a large step gets more within its cores, and ``--threads`` (a flag, a study file,
``Study.run``) overrides the default; the count used is recorded on every run, in a real store.

The machine's core count is faked by replacing :func:`tuner.training.threads.available_cores`,
the one function that reads it; the runs are real (torch really trains on the threads chosen).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from sqlalchemy import select

from tuner.cli import cli
from tuner.plugin.registry import get_registry
from tuner.store import Run, open_store
from tuner.training import threads
from tuner.training.batched.training import train_batched
from tuner.training.loop import train

BUILT_IN = ["quadratic", "rosenbrock", "logreg", "sparse", "digits-mlp", "digits-cnn", "charlm"]
QUICK = ["--task", "quadratic", "--optimizers", "adam,sgd", "--trials", "2", "--seeds", "1",
         "--budget", "20"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def fake_cores(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: count)


def recorded_threads(url: str) -> list[int]:
    """The ``threads`` option of every run in the store at ``url``."""
    with open_store(url, create=False) as store, store.session() as session:
        return [options["threads"] for options in session.scalars(select(Run.options))]


def test_the_built_in_tasks_are_the_ones_checked():
    assert sorted(get_registry().tasks) == sorted(BUILT_IN)


@pytest.mark.parametrize("cores", [1, 2, 8, 64, 256])
def test_every_built_in_task_trains_on_one_thread_on_a_machine_of_any_size(
        monkeypatch: pytest.MonkeyPatch, cores: int):
    fake_cores(monkeypatch, cores)
    before = torch.get_num_threads()
    for task in BUILT_IN:
        result = train(task, "adam", budget=2, eval_every=2)
        assert result.status == "complete", (task, result.error)
        assert result.options["threads"] == 1, (task, cores)
        assert torch.get_num_threads() == before  # put back after the run


def test_a_step_large_enough_gets_one_thread_per_share_of_its_cost(
        monkeypatch: pytest.MonkeyPatch):
    """With the per-thread cost set to 0.8 MFLOP, the digits MLP's step (2.59 MFLOP) takes
    three threads when the machine has them, and no more than its cores otherwise."""
    monkeypatch.setattr(threads, "FLOPS_PER_THREAD", 0.8e6)
    fake_cores(monkeypatch, 64)
    assert train("digits-mlp", "adam", budget=2, eval_every=2).options["threads"] == 3
    fake_cores(monkeypatch, 3)  # one core is left to the rest of the machine: 2 for the run
    assert train("digits-mlp", "adam", budget=2, eval_every=2).options["threads"] == 2
    assert train("digits-mlp", "adam", budget=2, eval_every=2, cores=1).options["threads"] == 1


def test_a_batch_counts_its_vectorised_step(monkeypatch: pytest.MonkeyPatch):
    """Four configurations trained at once make a step four times one run's: above the
    threshold (3.9 MFLOP) that one run (2.59 MFLOP) stays under."""
    monkeypatch.setattr(threads, "FLOPS_PER_THREAD", 3.9e6)
    fake_cores(monkeypatch, 64)
    alone = train("digits-mlp", "adam", {"lr": 1e-3}, budget=2, eval_every=2)
    batch = train_batched("digits-mlp", "adam", [{"lr": 1e-3 * k} for k in (1, 2, 3, 4)], 0,
                          options=None)
    assert alone.options["threads"] == 1
    assert [result.options["threads"] for result in batch] == [2] * 4


def test_the_rule():
    per = threads.FLOPS_PER_THREAD
    assert threads.threads_for(0, 64) == 1
    assert threads.threads_for(per * 0.99, 64) == 1
    assert threads.threads_for(per * 3.5, 64) == 3
    assert threads.threads_for(per * 1000, 8) == 8


def test_threads_given_are_used_recorded_and_put_back():
    before = torch.get_num_threads()
    seen = []
    result = train("digits-mlp", "adam", budget=4, eval_every=2, threads=3,
                   callback=lambda point: seen.append(torch.get_num_threads()))
    assert result.options["threads"] == 3 and seen == [3, 3]
    assert torch.get_num_threads() == before


def test_train_command_records_the_default_and_the_flag(monkeypatch: pytest.MonkeyPatch):
    fake_cores(monkeypatch, 64)
    base = ["train", "--task", "digits-mlp", "--optimizer", "adam", "--budget", "4", "--json"]
    assert json.loads(invoke(*base).output)["options"]["threads"] == 1
    assert json.loads(invoke(*base, "--threads", "2").output)["options"]["threads"] == 2


def test_study_run_records_the_default_and_threads_overrides_it(
        monkeypatch: pytest.MonkeyPatch, sqlite_url: str):
    fake_cores(monkeypatch, 64)
    assert invoke("study", "create", "plain", *QUICK, "--db", sqlite_url).exit_code == 0
    assert invoke("study", "run", "plain", "--db", sqlite_url).exit_code == 0
    assert recorded_threads(sqlite_url) == [1] * 4

    assert invoke("study", "create", "given", *QUICK, "--db", sqlite_url).exit_code == 0
    ran = invoke("study", "run", "given", "--threads", "2", "--db", sqlite_url)
    assert ran.exit_code == 0, ran.output
    assert recorded_threads(sqlite_url) == [1] * 4 + [2] * 4


def test_a_study_file_sets_threads_and_the_flag_wins(tmp_path: Path, sqlite_url: str):
    study_file = tmp_path / "study.toml"
    study_file.write_text('task = "quadratic"\noptimizers = ["adam"]\ntrials = 2\nseeds = 1\n'
                          "budget = 20\nthreads = 3\n")
    for name in ("filed", "flagged"):
        created = invoke("study", "create", name, "--from", str(study_file), "--db", sqlite_url)
        assert created.exit_code == 0, created.output
    assert invoke("study", "run", "filed", "--db", sqlite_url).exit_code == 0
    assert recorded_threads(sqlite_url) == [3, 3]
    assert invoke("worker", "flagged", "--threads", "2", "--db", sqlite_url).exit_code == 0
    assert recorded_threads(sqlite_url) == [3, 3, 2, 2]


def test_worker_processes_and_the_python_api_take_threads(sqlite_url: str):
    from tuner import Study

    spawned = Study.create("spawned", task="quadratic", optimizers=["adam", "sgd"], trials=1,
                           budget=20, db=sqlite_url)
    spawned.run(workers=2, threads=2)
    assert recorded_threads(sqlite_url) == [2, 2]
    Study.create("extended", task="quadratic", optimizers=["adam"], trials=1, budget=20,
                 db=sqlite_url).extend(trials=1, threads=3)
    assert sorted(recorded_threads(sqlite_url)) == [2, 2, 3, 3]


@pytest.mark.parametrize("args, error", [
    (["study", "run", "bad", "--threads", "0"], "--threads must be a whole number from 1"),
    (["worker", "bad", "--threads", "-2"], "--threads must be a whole number from 1"),
    (["study", "run", "bad", "--threads", "2", "--backend", "ray"],
     "a Ray worker's threads are the CPUs it reserves (--cpus-per-worker)"),
    (["train", "--task", "quadratic", "--optimizer", "adam", "--threads", "0"],
     "threads must be a whole number >= 1"),
])
def test_bad_threads_are_one_line_and_change_nothing(sqlite_url: str, args: list[str],
                                                     error: str):
    from test_study_cli import dump

    assert invoke("study", "create", "bad", *QUICK, "--db", sqlite_url).exit_code == 0
    before = dump(sqlite_url)
    result = CliRunner().invoke(cli, [*args, "--db", sqlite_url] if args[0] != "train"
                                else args)
    assert result.exit_code != 0
    assert error in result.output and len(result.output.strip().splitlines()) == 1
    assert dump(sqlite_url) == before


def test_a_study_file_with_bad_threads_is_refused(tmp_path: Path, sqlite_url: str):
    study_file = tmp_path / "study.toml"
    study_file.write_text('task = "quadratic"\noptimizers = ["adam"]\ntrials = 1\nseeds = 1\n'
                          "threads = 0\n")
    result = CliRunner().invoke(cli, ["study", "create", "zero", "--from", str(study_file),
                                      "--db", sqlite_url])
    assert result.exit_code != 0 and "threads must be a positive whole number" in result.output
