"""Studies that fail: slots given up and retried once the code is fixed, and a task whose every
run is NaN from the start, told apart from a bad learning rate. Real task files, real
`python -m tuner` processes, real SQLite stores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

BLOBS = '''
import torch
from torch import nn

import tuner.task as T

BROKEN = True
LOSS_SCALE = 1.0
METRIC_SCALE = 1.0


class Blobs(T.Task):
    name = "{name}"
    summary = "two Gaussian blobs, a linear classifier"
    kind = "convex"
    metric = "val_loss"
    direction = "minimize"
    target = 0.2
    budget = 20
    eval_every = 10
    batch_size = 32

    def build(self, seed, device):
        if BROKEN:
            raise RuntimeError("the data is not there yet")
        generator = torch.Generator().manual_seed(1234)
        x = torch.randn(120, 2, generator=generator)
        y = (x[:, 0] + x[:, 1] > 0).long()
        return T.Problem(model=nn.Linear(2, 2), train=(x[:80], y[:80]), val=(x[80:], y[80:]))

    def loss(self, model, batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y) * LOSS_SCALE

    def evaluate(self, model, problem):
        x, y = problem.val
        return float(nn.functional.cross_entropy(model(x), y)) * METRIC_SCALE


task = Blobs()
'''


def write_task(folder: Path, name: str, **settings: object) -> Path:
    """The task file, with module constants changed by ``settings`` (``BROKEN=False``)."""
    text = BLOBS.format(name=name)
    for key, value in settings.items():
        default = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(default, f"{key} = {value}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "blobs.py"
    path.write_text(text)
    return path


def tuner(*args: str, db: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args, "--db", db], cwd=cwd, capture_output=True,
        text=True, timeout=300, env={**os.environ, "TUNER_GRACE_SECONDS": "5",
                                     "TUNER_HEARTBEAT_SECONDS": "1"},
    )


def cli(*args: str, db: str):
    """``tuner ...`` in this process, for the steps that only read or write the store."""
    from click.testing import CliRunner

    from tuner.cli import cli as tuner_cli

    return CliRunner().invoke(tuner_cli, [*args, "--db", db], catch_exceptions=False)


def rows(db: str, query: str) -> list[tuple]:
    with sqlite3.connect(db.removeprefix("sqlite:///")) as connection:
        return connection.execute(query).fetchall()


def dialect(url: str) -> str:
    """``sqlite`` or ``postgresql``: a suffix that keeps task names apart between the two runs
    of a test in one process (a task name belongs to one file per process)."""
    return url.split(":")[0].split("+")[0]


def no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr, done.stderr


# -- retrying given-up slots ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["study", "run"], ["worker"]])
def test_given_up_slots_are_retried_after_a_fix_and_the_failures_stay_on_record(
    tmp_path: Path, sqlite_url: str, command: list[str]
):
    """A task whose build fails: every slot is given up. Fixing the code and running again
    (even with --allow-changed) changes nothing; --retry-given-up reopens the slots, the study
    reaches N/N, and each slot keeps its failed attempts, with their runs and errors."""
    path = write_task(tmp_path, f"blobs-{command[0]}")  # one name per task file in a process
    created = cli("study", "create", "fix", "--task", f"{path}:task", "--optimizers",
                  "adamw,sgd", "--trials", "2", "--seeds", "1", "--pruner", "none", db=sqlite_url)
    assert created.exit_code == 0, created.output
    first = tuner("study", "run", "fix", db=sqlite_url, cwd=tmp_path)
    assert first.returncode == 1 and "0/4 trials, 4 slot(s) given up" in first.stderr
    assert "--retry-given-up" in first.stderr
    no_traceback(first)
    failed_before = rows(sqlite_url, "select id, optimizer, slot, params from tuner_trials")

    write_task(tmp_path, f"blobs-{command[0]}", BROKEN=False)
    same = tuner("study", "run", "fix", "--allow-changed", db=sqlite_url, cwd=tmp_path)
    assert same.returncode == 1 and "ended incomplete: 0/4 trials" in same.stderr

    retried = tuner(*command, "fix", "--retry-given-up", "--allow-changed", db=sqlite_url,
                    cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert ("Reopened 4 given-up slot(s) of study 'fix' (adamw/0, adamw/1, sgd/0, sgd/1)"
            in retried.stdout)
    assert "Study 'fix' finished: 4/4 trials" in retried.stdout
    status = json.loads(cli("study", "show", "fix", "--json", db=sqlite_url).stdout)
    assert status["status"] == "finished" and status["trials_done"] == status["trials_total"]
    assert status["slots_given_up"] == 0 and status["errors"] == {}

    # the failed attempts are still there, failed, with their failed runs and errors
    after = rows(sqlite_url, "select id, optimizer, slot, params, status from tuner_trials")
    earlier = {row[0] for row in failed_before}
    assert [row[:4] for row in after if row[0] in earlier] == failed_before
    assert {row[4] for row in after if row[0] in earlier} == {"failed"}
    failed_runs = rows(sqlite_url, "select error from tuner_runs where status = 'failed'")
    assert len(failed_runs) == len(failed_before)
    assert all("the data is not there yet" in error for (error,) in failed_runs)
    # one new attempt per slot, of the configuration its failed attempts trained; nothing twice
    new = [row for row in after if row[0] not in earlier]
    assert sorted((row[1], row[2]) for row in new) == [
        ("adamw", 0), ("adamw", 1), ("sgd", 0), ("sgd", 1)]
    trained = {(optimizer, slot): params for _, optimizer, slot, params in failed_before}
    assert all(trained[(optimizer, slot)] == params for _, optimizer, slot, params, _ in new)
    assert {row[4] for row in new} == {"complete"}
    assert rows(sqlite_url, "select count(*) from tuner_runs where status = 'complete'") == [(4,)]

    again = tuner("study", "run", "fix", "--retry-given-up", "--allow-changed", db=sqlite_url,
                  cwd=tmp_path)
    assert again.returncode == 0 and "has no given-up slots to retry" in again.stdout
    assert "already finished (4/4 trials)" in again.stdout


def test_python_api_retries_given_up_slots(tmp_path: Path, database_url: str, monkeypatch):
    """``Study.run(retry_given_up=True)``: the report lists the reopened slots."""
    import tuner
    from tuner.study_api import StudyRunError
    from tuner.task.reference import ALLOW_CHANGED_ENV

    monkeypatch.delenv(ALLOW_CHANGED_ENV, raising=False)
    path = write_task(tmp_path, f"blobs-api-{dialect(database_url)}")
    study = tuner.Study.create("api", task=f"{path}:task", optimizers=["sgd"], trials=1,
                               seeds=1, db=database_url, pruner="none")
    with pytest.raises(StudyRunError, match="given up .*retry_given_up=True"):
        study.run()  # the user's code failed in every attempt: the run says so, loudly
    assert study.status().status == "incomplete"
    write_task(tmp_path, f"blobs-api-{dialect(database_url)}", BROKEN=False)
    report = study.run(allow_changed=True, retry_given_up=True)
    assert report.reopened == ["sgd/0"]
    assert ALLOW_CHANGED_ENV not in os.environ  # only that run's workers allowed changed code
    status = study.status()
    assert status.status == "finished" and status.done == status.total == 1
    assert status.optimizers[0].failed_attempts == 3  # kept on record


# -- a task broken from the first step --------------------------------------------------------


def test_a_task_whose_loss_is_nan_from_the_start_is_reported_as_broken(
    tmp_path: Path, sqlite_url: str
):
    """Every lr of every optimizer diverges at step 1: `study run` exits non-zero with one
    line saying the task is broken, and `study show`, `advise` and `best` say the same."""
    path = write_task(tmp_path, "nan-blobs", BROKEN=False, LOSS_SCALE='float("nan")')
    created = cli("study", "create", "nan", "--task", f"{path}:task", "--optimizers",
                  "adamw,sgd", "--trials", "3", "--seeds", "1", db=sqlite_url)
    assert created.exit_code == 0, created.output
    done = tuner("study", "run", "nan", db=sqlite_url, cwd=tmp_path)
    no_traceback(done)
    configurations = rows(sqlite_url, "select count(distinct config_hash) from tuner_runs")[0][0]
    assert configurations == 6  # 2 optimizers x 3 trials, each its own configuration
    line = ("every run of task 'nan-blobs' diverged at its first evaluation (loss not finite "
            f"at step 1) for all {configurations} configurations: the task itself is broken "
            "(check its loss and data), not the learning rate")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Study 'nan' at 6/6 trials: {line}."]

    shown = cli("study", "show", "nan", db=sqlite_url)
    assert f"Task problem: {line}." in shown.stdout
    shown_json = json.loads(cli("study", "show", "nan", "--json", db=sqlite_url).stdout)
    assert shown_json["task_problem"] == line
    advised = cli("advise", "--task", "nan-blobs", db=sqlite_url)
    assert advised.stdout.strip() == line[0].upper() + line[1:] + "."
    assert "run a study first" not in advised.stdout
    best = json.loads(cli("best", "--task", "nan-blobs", "--json", db=sqlite_url).stdout)
    assert best["task_problem"] == line
    table = cli("best", "--task", "nan-blobs", db=sqlite_url)
    assert table.stdout.strip().splitlines()[-1] == line[0].upper() + line[1:] + "."
    again = tuner("study", "run", "nan", db=sqlite_url, cwd=tmp_path)
    assert again.returncode == 1 and line in again.stderr

    # the same answers are pure reads of the store: no torch, Optuna or plugin is imported
    script = (
        "import sys\nfrom tuner.advice import advise, best\n"
        "from tuner.driver.supervision import current_status\n"
        f"db = {sqlite_url!r}\n"
        "answers = [advise('nan-blobs', db=db).text, best('nan-blobs', db=db).task_problem,\n"
        "           current_status(db, 'nan').task_problem]\n"
        "heavy = [m for m in ('torch', 'optuna', 'tuner_plugins', 'tuner.plugin.registry')\n"
        "         if m in sys.modules]\n"
        "print(all(answers), heavy)\n"
    )
    pure = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert pure.stdout.strip() == "True []", pure.stderr


def test_the_broken_task_rule(database_url: str, tmp_path: Path):
    """The rule on recorded runs: NaN at step 1 is the task's fault even for one
    configuration; a metric that is NaN at the first evaluation of every configuration too;
    one configuration that blows up later is not; one finite result clears the task."""
    from tuner import train
    from tuner.store import open_store, record_run
    from tuner.store.broken_task import broken_task

    suffix = dialect(database_url)

    def runs(name: str, lrs: list[float], **settings: object) -> list:
        write_task(tmp_path / name, f"{name}-{suffix}", BROKEN=False, **settings)
        reference = f"{tmp_path / name / 'blobs.py'}:task"
        return [train(reference, "sgd", {"lr": lr}, 0) for lr in lrs]

    store = open_store(database_url)
    try:
        for result in runs("loss-nan", [0.1], LOSS_SCALE='float("nan")'):
            record_run(store, None, result)
        found = broken_task(store, f"loss-nan-{suffix}", "val_loss")
        assert found is not None and found.loss_steps == (1, 1)
        assert "(loss not finite at step 1) for the one configuration tried" in found.message()

        for result in runs("metric-nan", [0.01, 0.1], METRIC_SCALE='float("nan")'):
            record_run(store, None, result)
        found = broken_task(store, f"metric-nan-{suffix}", "val_loss")
        assert found is not None and found.metric_steps == (10, 10)
        assert "(val_loss not finite at step 10) for all 2 configurations" in found.message()

        # one lr so large that the loss passes the divergence limit before the first
        # evaluation: that lr is too large, the task may well be fine
        late = train("quadratic", "sgd", {"lr": 1.0}, 0)
        assert late.status == "diverged" and 1 < late.steps and not late.curve
        record_run(store, None, late)
        assert broken_task(store, "quadratic", "loss") is None

        for result in runs("metric-nan", [1e-3], METRIC_SCALE="1.0"):
            record_run(store, None, result)  # the task was fixed: one finite result
        assert broken_task(store, f"metric-nan-{suffix}", "val_loss") is None
    finally:
        store.dispose()
