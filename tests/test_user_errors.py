"""The user's mistakes and the user's failing code, said in the user's terms: an unguarded
script, a task whose code raises (shown at its file and line), a run that fails or diverges, a
study whose workers fail. Real scripts, real `tuner` processes, real stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_own_model import run_tuner, sqlite_rows

from tuner.cli import cli

# -- tuner train's exit status ----------------------------------------------------------------


def test_tuner_train_exits_non_zero_when_the_run_diverges():
    # gradient descent on x^2 + 10 y^2 multiplies y by (1 - 20 lr) each step: at lr 1, by -19
    args = ["train", "--task", "quadratic", "--optimizer", "sgd", "--param", "lr=1",
            "--budget", "30"]
    data = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert data.exit_code == 4
    run = json.loads(data.stdout)
    assert run["status"] == "diverged"
    table = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert table.exit_code == 4
    assert table.stdout.strip().splitlines()[-1].startswith(f"diverged after {run['steps']}")
    assert table.stderr.strip().splitlines() == [
        f"Error: the run diverged at step {run['steps']}: its loss blew up or became NaN (a "
        "smaller learning rate may help)"
    ]


# -- a task whose code raises -----------------------------------------------------------------

FAILING_TASK = '''\
import torch

from tuner.task.builders import from_function


def load_data():
    raise RuntimeError("boom in build")


def build(seed):
    inputs = load_data()
    return torch.nn.Linear(2, 2), (inputs, inputs), (inputs, inputs)


task = from_function(name="{name}", build=build, budget=10, batch_size=4)
'''


def write_failing_task(folder: Path, name: str) -> Path:
    path = folder / "boom.py"
    path.write_text(FAILING_TASK.format(name=name))
    return path


def line_of(path: Path, code: str) -> int:
    """The number of the line of ``path`` that holds ``code``."""
    return next(number for number, line in enumerate(path.read_text().splitlines(), start=1)
                if code in line)


def expected_failure(path: Path, shown: str) -> str:
    """The recorded error of the failing task, its file shown as ``shown``."""
    raised = line_of(path, 'raise RuntimeError("boom in build")')
    called = line_of(path, "inputs = load_data()")
    return (f'RuntimeError: boom in build (at {shown}:{raised} in load_data: raise '
            f'RuntimeError("boom in build"); called from {shown}:{called} in build)')


def test_a_failing_task_is_shown_at_its_line_by_train_study_run_and_show(
    tmp_path: Path, sqlite_url: str
):
    path = write_failing_task(tmp_path, "boom-cli")
    expected = expected_failure(path, "boom.py")  # under the current directory: relative
    trained = run_tuner("train", "--task", "boom.py:task", "--optimizer", "sgd", cwd=tmp_path)
    assert trained.returncode == 3
    assert trained.stdout.strip().splitlines()[-1].startswith("failed after 0 steps")
    assert trained.stderr.strip().splitlines() == [f"Error: the run failed: {expected}"]

    created = CliRunner().invoke(cli, ["study", "create", "boom", "--task", f"{path}:task",
                                       "--optimizers", "sgd", "--trials", "2", "--seeds", "1",
                                       "--db", sqlite_url], catch_exceptions=False)
    assert created.exit_code == 0, created.output
    ran = run_tuner("study", "run", "boom", "--db", sqlite_url, cwd=tmp_path)
    assert ran.returncode == 1
    assert f"sgd/0, sgd/1: {expected}" in ran.stderr
    errors = sqlite_rows(sqlite_url, "SELECT status, error FROM tuner_runs")
    assert len(errors) == 6 and set(errors) == {("failed", expected)}  # 3 attempts x 2 slots

    shown = CliRunner().invoke(cli, ["study", "show", "boom", "--db", sqlite_url],
                               catch_exceptions=False)
    assert f"Given up: sgd/0, sgd/1: {expected}" in shown.output.splitlines()


def test_an_error_inside_torch_is_shown_at_the_users_line(tmp_path: Path):
    from tuner.plugin.registry import get_registry
    from tuner.training.loop import train

    path = tmp_path / "layer.py"
    path.write_text(FAILING_TASK.format(name="bad-layer").replace(
        "torch.nn.Linear(2, 2)", 'torch.nn.Linear(2, "two")').replace(
        "inputs = load_data()", "inputs = torch.zeros(8, 2)"))
    result = train(get_registry().task(f"{path}:task"), "sgd", seed=0)
    assert result.status == "failed"
    line = line_of(path, 'torch.nn.Linear(2, "two")')
    assert result.error.startswith("TypeError: ")
    assert result.error.endswith(
        f'(at {path}:{line} in build: return torch.nn.Linear(2, "two"), (inputs, inputs), '
        "(inputs, inputs))")


def test_without_a_frame_of_the_users_the_plugins_code_is_shown():
    """A built-in task's own code failing (here on a start point that is no number) is shown
    at the plugin's file: no frame of the traceback is the user's."""
    import inspect

    from tuner.training.loop import train
    from tuner_plugins.tasks import _common
    from tuner_plugins.tasks.quadratic import Quadratic

    class Misplaced(Quadratic):
        name = "misplaced-quadratic"
        start = ("one", "two")

    result = train(Misplaced(), "sgd", seed=0)
    assert result.status == "failed"
    source, first = inspect.getsourcelines(_common.Point.__init__)
    line = first + next(i for i, text in enumerate(source) if "torch.nn.Parameter" in text)
    assert f"_common.py:{line} in __init__: self.xy = torch.nn.Parameter(" in result.error
    assert "called from " in result.error and "_common.py" in result.error.split("called")[1]


def test_study_run_raises_when_the_task_fails_in_every_trial(tmp_path: Path, sqlite_url: str):
    import tuner
    from tuner.study_api import StudyRunError

    path = write_failing_task(tmp_path, "boom-api")
    study = tuner.Study.create("boom-api", task=f"{path}:task", optimizers=["sgd", "adam"],
                               trials=2, seeds=1, db=sqlite_url)
    with pytest.raises(StudyRunError) as raised:
        study.run()
    expected = expected_failure(path, str(path))  # outside the current directory: absolute
    assert str(raised.value) == (
        "study 'boom-api' ended incomplete at 0/4 trials: 4 slot(s) given up after their "
        f"training failed again and again; sgd/0, sgd/1, adam/0 and 1 more: {expected}; "
        "once fixed, run(retry_given_up=True) retries them"
    )


# -- an unguarded script ----------------------------------------------------------------------

STUDY_CALLS = '''\
study = tuner.Study.create("scripted", task="quadratic", optimizers=["sgd"], trials=2, seeds=1,
                           budget=10, pruner="none")
report = study.run(workers=2)
print("ran", report.trials, report.stopped)
'''


def run_script(folder: Path, guarded: bool, url: str) -> subprocess.CompletedProcess:
    """Write the README's kind of script, with or without the guard, and run it."""
    body = textwrap.indent(STUDY_CALLS, "    ") if guarded else STUDY_CALLS
    guard = 'if __name__ == "__main__":\n' if guarded else ""
    script = folder / ("guarded.py" if guarded else "unguarded.py")
    script.write_text(f"import tuner\n\n{guard}{body}")
    return subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TUNER_DB": url})


def test_an_unguarded_script_stops_in_one_line_and_the_guarded_one_runs(tmp_path: Path):
    unguarded_url = f"sqlite:///{tmp_path / 'unguarded.db'}"
    refused = run_script(tmp_path, guarded=False, url=unguarded_url)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "tuner.Study.create/run was called while a worker process was starting (each re-runs "
        'unguarded.py): the script that calls it must guard it with  if __name__ == "__main__":'
    ]
    assert refused.stdout == ""  # the script stopped at the run: no report that looks normal
    # the workers created no second study and ran nothing
    assert sqlite_rows(unguarded_url, "SELECT name, status FROM tuner_studies") == [
        ("scripted", "created")]
    assert sqlite_rows(unguarded_url, "SELECT count(*) FROM tuner_trials") == [(0,)]

    guarded_url = f"sqlite:///{tmp_path / 'guarded.db'}"
    ran = run_script(tmp_path, guarded=True, url=guarded_url)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "ran 2 finished"
    assert sqlite_rows(guarded_url, "SELECT count(*) FROM tuner_trials WHERE status = "
                       "'complete'") == [(2,)]


def test_a_process_not_started_by_tuner_gets_the_error_itself():
    """Any process that re-runs an unguarded script while it starts (a pool of the user's
    own) stops at the first study call with the same one line."""
    import multiprocessing

    from tuner.driver.script_guard import UnguardedScriptError, refuse_in_starting_worker

    namespace = {"__name__": "__mp_main__", "refuse": refuse_in_starting_worker}
    with pytest.raises(UnguardedScriptError, match="guard it with  if __name__"):
        exec(compile("refuse()", "script.py", "exec"), namespace)
    assert multiprocessing.current_process().name == "MainProcess"
    refuse_in_starting_worker()  # an ordinary call: nothing to refuse
    error = UnguardedScriptError("the line")
    assert isinstance(error, SystemExit) and error.code == "the line"  # uncaught: one line


# -- workers that fail ------------------------------------------------------------------------

FAILS_IN_WORKERS = '''\
import multiprocessing

import torch

from tuner.task.builders import from_function

if multiprocessing.current_process().name != "MainProcess":
    raise RuntimeError("the data is only on the head node")


def build(seed):
    inputs = torch.randn(16, 2)
    return torch.nn.Linear(2, 2), (inputs, (inputs[:, 0] > 0).long()), (inputs, inputs[:, 0])


task = from_function(name="head-only", build=build, budget=10, batch_size=4)
'''


def test_worker_processes_that_fail_make_the_run_fail(tmp_path: Path, sqlite_url: str):
    import tuner
    from tuner.study_api import StudyRunError

    path = tmp_path / "head_only.py"
    path.write_text(FAILS_IN_WORKERS)
    study = tuner.Study.create("head", task=f"{path}:task", optimizers=["sgd"], trials=2,
                               seeds=1, db=sqlite_url)
    with pytest.raises(StudyRunError) as raised:
        study.run(workers=2)
    line = line_of(path, "raise RuntimeError")
    assert str(raised.value).startswith(
        "study 'head': 2 of 2 worker processes failed; tuner-worker-")
    assert (f"importing head_only.py raised RuntimeError: the data is only on the head node "
            f"(at {path}:{line} in <module>: raise RuntimeError(") in str(raised.value)
    ran = CliRunner().invoke(cli, ["study", "run", "head", "--workers", "2", "--db", sqlite_url])
    assert ran.exit_code == 1
    assert ran.stderr.strip().splitlines()[-1].startswith(
        "Error: 2 of 2 worker processes failed; tuner-worker-")


def test_how_worker_processes_ended_is_combined_honestly():
    from tuner.driver.policy import how_it_stopped
    from tuner.driver.processes import (
        ProcessEnd,
        WorkerProcessError,
        combined_report,
    )
    from tuner.driver.script_guard import UNGUARDED_EXIT_CODE, UnguardedScriptError
    from tuner.driver.worker import WorkerReport

    def done(trials: int, stopped: str) -> ProcessEnd:
        return ProcessEnd(f"w{trials}", 0, report=WorkerReport(trials, stopped))

    finished = combined_report([done(3, "finished"), done(2, "finished")], "finished", None)
    assert (finished.trials, finished.stopped) == (5, "finished")
    # workers stopped by SIGTERM before they could report were stopped, not broken
    stopped = combined_report([done(1, "interrupted"), ProcessEnd("w", -signal.SIGTERM)],
                              "stopped", None)
    assert (stopped.trials, stopped.stopped) == (1, "interrupted")
    with pytest.raises(WorkerProcessError, match="1 of 2 worker processes failed; w: killed "
                       "by SIGKILL"):
        combined_report([done(1, "finished"), ProcessEnd("w", -signal.SIGKILL)], "stopped",
                        None)
    with pytest.raises(WorkerProcessError, match="w0: exited with status 1 without a report"):
        combined_report([ProcessEnd("w0", 1), ProcessEnd("w1", 0, error="boom")], "created",
                        None)
    with pytest.raises(UnguardedScriptError):
        combined_report([ProcessEnd("w0", UNGUARDED_EXIT_CODE)] * 2, "created", None)
    # "timeout" only when a timeout was given
    assert how_it_stopped("stopped", ["timeout"], 5.0) == "timeout"
    assert how_it_stopped("running", [], None) == "unfinished"
    assert how_it_stopped("running", [], 5.0) == "timeout"
    assert how_it_stopped("stopping", [], None) == "stopped"
    assert how_it_stopped("incomplete", ["finished"], None) == "finished"
