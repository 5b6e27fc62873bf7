"""The public face: what users and plugin authors import from ``tuner`` itself, the old module
paths that keep working for one release with a warning, and the packages that keep handing out
what their old modules did."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

OLD_PATHS = {
    "tuner.space": "tuner.plugin.space",
    "tuner.optimizer": "tuner.plugin.optimizer",
    "tuner.task_builders": "tuner.task.builders",
    "tuner.hookspecs": "tuner.plugin.hookspecs",
    "tuner.plugins": "tuner.plugin.registry",
    "tuner.batched": "tuner.training.batched",
}


def run_python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (an import happens once per process)."""
    return subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_an_old_path_still_imports_and_warns_with_the_new_one(old: str):
    new = OLD_PATHS[old]
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        f"    import {old} as old\n"
        f"new = importlib.import_module({new!r})\n"
        "assert old is new, (old, new)\n"
        "messages = [str(w.message) for w in seen if w.category is DeprecationWarning]\n"
        f"assert any({new!r} in m for m in messages), messages\n"
        "print(seen[0].filename)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "<string>"  # the warning points at the importing code


def test_an_old_submodule_path_is_the_new_module():
    done = run_python(
        "import warnings\nwarnings.simplefilter('ignore')\n"
        "from tuner.batched.sign import build_lion\n"
        "import tuner.training.batched.sign as new\n"
        "assert build_lion is new.build_lion\n"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["Task", "Problem", "from_function", "KINDS"])
def test_tuner_task_hands_out_what_it_did_without_a_warning(name: str):
    done = run_python(f"from tuner.task import {name}")
    assert done.returncode == 0, done.stderr


def test_tuner_training_and_report_hand_out_what_they_did():
    done = run_python(
        "from tuner.training import train, RunResult, TrainOptions, make_options, STATUSES\n"
        "from tuner.report import write_report, plot_trajectories\n"
        "import tuner.training.loop as loop\n"
        "assert train is loop.train\n"
    )
    assert done.returncode == 0, done.stderr


def test_importing_tuner_and_its_packages_loads_no_torch():
    done = run_python(
        "import sys, tuner, tuner.task, tuner.training, tuner.report, tuner.plugin, tuner.study\n"
        "heavy = sorted({'torch', 'optuna', 'sqlalchemy', 'matplotlib'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    assert done.returncode == 0, done.stderr


def test_the_public_names_are_the_objects_with_their_signatures():
    import tuner
    from tuner.advice.recommend import advise
    from tuner.plugin.space import Float
    from tuner.training.loop import train

    assert tuner.train is train and tuner.advise is advise and tuner.Float is Float
    assert "optimizer" in inspect.signature(tuner.train).parameters
    assert "memory_budget" in inspect.signature(tuner.advise).parameters
    for name in tuner.__all__:
        assert getattr(tuner, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        _ = tuner.nosuch


def test_the_readme_example_plugin_imports_only_from_tuner():
    """The example plugin (the README shows it; tests/test_plugins.py installs and runs it) uses
    the public face, not tuner's inner modules."""
    source = ROOT / "examples" / "tuner-example-plugin" / "tuner_example_plugin.py"
    modules = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    assert {module for module in modules if module.startswith("tuner")} == {"tuner"}
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c",
         "import runpy, sys; ns = runpy.run_path(sys.argv[1]); "
         "found = []; ns['register_optimizers'](found.append); "
         "assert [p.name for p in found] == ['nsgd'], found", str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
