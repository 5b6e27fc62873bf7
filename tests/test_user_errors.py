"""The user's mistakes and the user's failing code, said in the user's terms: an unguarded
script, a task whose code raises (shown at its file and line), a run that fails or diverges, a
study whose workers fail. Real scripts, real `tuner` processes, real stores."""

from __future__ import annotations

import json
from pathlib import Path

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

from tuner.task import from_function


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

    created = run_tuner("study", "create", "boom", "--task", "boom.py:task", "--optimizers",
                        "sgd", "--trials", "2", "--seeds", "1", "--db", sqlite_url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    ran = run_tuner("study", "run", "boom", "--db", sqlite_url, cwd=tmp_path)
    assert ran.returncode == 1
    assert f"sgd/0, sgd/1: {expected}" in ran.stderr
    errors = sqlite_rows(sqlite_url, "SELECT status, error FROM tuner_runs")
    assert len(errors) == 6 and set(errors) == {("failed", expected)}  # 3 attempts x 2 slots

    shown = CliRunner().invoke(cli, ["study", "show", "boom", "--db", sqlite_url],
                               catch_exceptions=False)
    assert f"Given up: sgd/0, sgd/1: {expected}" in shown.output.splitlines()


def test_an_error_inside_torch_is_shown_at_the_users_line(tmp_path: Path):
    from tuner.plugins import get_registry
    from tuner.training import train

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

    from tuner.training import train
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
