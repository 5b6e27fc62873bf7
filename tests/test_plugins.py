"""The plugin system: real entry points, the README's example package, broken plugins."""

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tuner.cli import cli
from tuner.errors import NotInstalledError
from tuner.plugin import registry as plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tuner-example-plugin"


def run_tuner(*args: str, path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args], capture_output=True, text=True, env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def example_installed(tmp_path_factory) -> Path:
    """The README's example package, pip-installed into a directory of its own."""
    target = tmp_path_factory.mktemp("example-plugin")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True,
    )
    assert (target / "tuner_example_plugin-0.1.0.dist-info" / "entry_points.txt").exists()
    return target


def fake_distribution(root: Path, name: str, module: str, source: str) -> Path:
    """A minimal installed distribution: a module plus a dist-info with one entry point."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[tuner]\n{name} = {module}\n")
    return root


@pytest.fixture
def isolated_registry(monkeypatch):
    """Plugins reloaded from scratch, and forgotten again after the test."""
    plugins.reset()
    yield lambda path: monkeypatch.syspath_prepend(str(path))
    plugins.reset()


def test_example_plugin_is_listed_and_runs(example_installed, isolated_registry):
    result = run_tuner("optimizers", "list", "--json", path=example_installed)
    assert result.returncode == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)["optimizers"]}
    assert listed["nsgd"]["plugin"] == "nsgd" and listed["nsgd"]["version"] == "0.1.0"

    shown = run_tuner("plugins", path=example_installed)
    assert "tuner-example-plugin" in shown.stdout and "register_optimizers" in shown.stdout

    trained = run_tuner("train", "--task", "quadratic", "--optimizer", "nsgd", "--param",
                        "lr=0.1", "--json", path=example_installed)
    assert trained.returncode == 0, trained.stderr
    run = json.loads(trained.stdout)
    assert run["optimizer"] == "nsgd" and run["status"] == "complete"
    assert run["final_metric"] < 0.5  # the quadratic starts at 106

    isolated_registry(example_installed)
    plugin = plugins.get_registry().optimizer("nsgd")
    x = torch.tensor([4.0, 3.0], requires_grad=True)
    optimizer = plugin.create([x], {"lr": 0.1})
    for _ in range(100):
        optimizer.zero_grad()
        (x[0] ** 2 + 10 * x[1] ** 2).backward()
        optimizer.step()
    assert float(x[0].detach() ** 2 + 10 * x[1].detach() ** 2) < 0.5  # from 106


NEEDS_A_PACKAGE = """
    import torch, tuner
    from tuner.plugin.optimizer import OptimizerPlugin, Requirement
    from tuner.plugin.space import Float

    @tuner.hookimpl
    def register_optimizers(register):
        for name, module in (("absent-sgd", "tuner_no_such_package"), ("present-sgd", "json")):
            register(OptimizerPlugin(
                name=name, summary="SGD behind a package",
                space=[Float("lr", 1e-3, 1.0, default=0.1, log=True)],
                build=lambda params, hp: torch.optim.SGD(params, lr=hp["lr"]),
                state_multiple=0, requires=Requirement(module, f"pip install {module}")))
"""


def test_an_optimizer_whose_package_is_missing_is_listed_as_not_installed(
    tmp_path, isolated_registry
):
    isolated_registry(fake_distribution(tmp_path, "needs", "tuner_needs", NEEDS_A_PACKAGE))
    registry = plugins.get_registry()
    assert "present-sgd" in registry.optimizers  # its package is there: an ordinary optimizer
    assert "absent-sgd" not in registry.optimizers
    assert registry.not_installed["absent-sgd"].plugin == "needs"
    message = ("optimizer 'absent-sgd' needs the package 'tuner_no_such_package', which is not "
               "installed: pip install tuner_no_such_package")
    with pytest.raises(NotInstalledError) as raised:
        registry.optimizer("absent-sgd")
    assert str(raised.value) == message and raised.value.status == 404
    with pytest.raises(NotInstalledError, match="'absent-sgd' needs the package"):
        registry.optimizer("lookahead-absent-sgd")  # a wrapper around it says so too

    listed = CliRunner().invoke(cli, ["optimizers", "list"], catch_exceptions=False)
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert not any(line.startswith("absent-sgd") for line in lines)
    missing = [line for line in lines if line.startswith("Not installed")]
    assert missing == ["Not installed (the package 'tuner_no_such_package' is missing): "
                       "absent-sgd; to add: pip install tuner_no_such_package"]
    trained = CliRunner().invoke(cli, ["train", "--task", "quadratic", "--optimizer",
                                       "absent-sgd"])
    assert trained.exit_code != 0 and trained.output.strip() == f"Error: {message}"


def test_builtins_are_plugins_of_the_same_entry_point_group():
    result = run_tuner("plugins", "--all", "--json")
    assert result.returncode == 0, result.stderr
    builtin = {p["name"] for p in json.loads(result.stdout) if p["builtin"]}
    assert {"torch_optim", "tasks"} <= builtin


BROKEN = {
    "import": ("import this_module_does_not_exist\n", "failed to import: ModuleNotFoundError"),
    "range": (
        """
        import torch, tuner
        from tuner.plugin.optimizer import OptimizerPlugin
        from tuner.plugin.space import Float

        @tuner.hookimpl
        def register_optimizers(register):
            register(OptimizerPlugin(
                name="upside-down", summary="bad range",
                space=[Float("lr", 1.0, 1e-3, default=0.01, log=True)],
                build=lambda params, hp: torch.optim.SGD(params, lr=hp["lr"]),
                state_multiple=0))
        """,
        "optimizer 'upside-down': parameter 'lr': low 1 must be below high 0.001",
    ),
    "hook": (
        """
        import tuner

        @tuner.hookimpl
        def register_optimisers(register):
            pass
        """,
        "unknown hook 'register_optimisers'",
    ),
    "duplicate": (
        """
        import torch, tuner
        from tuner.plugin.optimizer import OptimizerPlugin

        @tuner.hookimpl
        def register_optimizers(register):
            register(OptimizerPlugin(
                name="sgd", summary="taken", space=[],
                build=lambda params, hp: torch.optim.SGD(params, lr=0.1), state_multiple=0))
        """,
        "optimizer 'sgd' is already registered by plugin 'torch_optim'",
    ),
    "exit": ("raise SystemExit(3)\n", "failed to import: SystemExit: 3"),
    "base": (
        "class Stop(BaseException):\n    pass\n\nraise Stop('not an Exception')\n",
        "failed to import: Stop: not an Exception",
    ),
    "multiline": (
        "raise RuntimeError('first line\\nsecond line\\nthird line')\n",
        "failed to import: RuntimeError: first line",
    ),
    "hookexit": (
        """
        import tuner

        @tuner.hookimpl
        def register_tasks(register):
            raise SystemExit("bye")
        """,
        "register_tasks raised SystemExit: bye",
    ),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_plugin_gives_one_line_naming_it(tmp_path, kind):
    source, expected = BROKEN[kind]
    root = fake_distribution(tmp_path / "site", f"broken_{kind}", f"broken_{kind}_mod", source)
    result = run_tuner("optimizers", "list", path=root)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: plugin 'broken_{kind}'")
    assert expected in lines[0]


@pytest.mark.parametrize(
    "args",
    [("tasks", "list"), ("optimizers", "list"), ("train", "--task", "quadratic", "--optimizer",
                                                 "adam")],
)
def test_an_unknown_name_in_tuner_plugins_is_an_error_listing_the_installed(monkeypatch, args):
    monkeypatch.setenv("TUNER_PLUGINS", "tasks,nosuch")
    result = run_tuner(*args)
    assert result.returncode == 1 and result.stdout == ""
    installed = sorted({point.name for point in entry_points(group="tuner")})
    assert {"tasks", "torch_optim"} <= set(installed)
    assert result.stderr.strip().splitlines() == [
        "Error: TUNER_PLUGINS names 'nosuch', which is not installed; the installed plugins "
        f"are: {', '.join(installed)}"
    ]


def test_an_unknown_tuner_plugins_name_leaves_the_store_as_it_was(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run_tuner("db", "upgrade", "--db", url).returncode == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    monkeypatch.setenv("TUNER_PLUGINS", "nosuch")
    result = run_tuner("study", "create", "s", "--task", "quadratic", "--optimizers", "adam",
                       "--trials", "2", "--seeds", "1", "--db", url)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: TUNER_PLUGINS names 'nosuch'")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_registry_without_tasks_says_so_instead_of_an_empty_list(monkeypatch):
    monkeypatch.setenv("TUNER_PLUGINS", "torch_optim")
    result = run_tuner("train", "--task", "quadratic", "--optimizer", "adam")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: unknown task 'quadratic'; no task is registered by the loaded plugins "
        "(TUNER_PLUGINS=torch_optim loads only those plugins); or a task of your own: "
        "path/to/file.py:NAME or package.module:NAME"
    )


def test_only_named_plugins_load_with_tuner_plugins_env(tmp_path, monkeypatch):
    root = fake_distribution(tmp_path / "site", "broken", "broken_mod", "raise SystemError\n")
    monkeypatch.setenv("TUNER_PLUGINS", "torch_optim")
    result = run_tuner("optimizers", "list", "--json", path=root)
    assert result.returncode == 0, result.stderr
    assert "adam" in {o["name"] for o in json.loads(result.stdout)["optimizers"]}


def test_trace_switch_reports_hook_calls(monkeypatch):
    monkeypatch.setenv("TUNER_TRACE_PLUGINS", "1")
    result = run_tuner("optimizers", "list")
    assert "tuner: torch_optim.register_optimizers registered 'adam'" in result.stderr


def test_unknown_optimizer_lists_the_valid_ones():
    result = run_tuner("optimizers", "show", "adamm")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: unknown optimizer 'adamm'; choose from: ")
    assert "adamw" in result.stderr and len(result.stderr.strip().splitlines()) == 1
