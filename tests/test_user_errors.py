"""The user's mistakes and the user's failing code, said in the user's terms: an unguarded
script, a task whose code raises (shown at its file and line), a run that fails or diverges, a
study whose workers fail. Real scripts, real `tuner` processes, real stores."""

from __future__ import annotations

import json

from click.testing import CliRunner

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
