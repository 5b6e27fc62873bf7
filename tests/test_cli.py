"""The command line as a whole: fast help, documented commands and hooks."""

import inspect
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from tuner import __version__
from tuner.cli import cli
from tuner.errors import TunerError, describe_exception, first_line
from tuner.plugin import hookspecs


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tuner.cli import cli\n"
        "def walk(group, path):\n"
        "    yield path\n"
        "    for name, cmd in getattr(group, 'commands', {}).items():\n"
        "        yield from walk(cmd, path + [name])\n"
        "for path in walk(cli, []):\n"
        "    result = CliRunner().invoke(cli, path + ['--help'])\n"
        "    assert result.exit_code == 0, (path, result.output)\n"
        "heavy = ('torch', 'optuna', 'sqlalchemy', 'matplotlib')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"--help imported {result.stdout.strip()}"


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_every_command_has_help_text():
    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path, command in walk(cli, ["tuner"]):
        assert command.help and command.help.strip(), f"{' '.join(path)} has no help"
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help", "version"):
                assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"


def test_every_task_option_says_how_to_name_a_task_of_ones_own():
    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    with_task = []
    for path, command in walk(cli, []):
        for param in command.params:
            if isinstance(param, click.Option) and "--task" in param.opts:
                with_task.append(" ".join(path))
                assert "path/to/file.py:NAME" in param.help, path
                assert "package.module:NAME" in param.help, path
    assert {"train", "lr-find", "study create", "best", "advise", "report",
            "plot curves"} <= set(with_task)
    for path in (["train"], ["study", "create"]):
        shown = CliRunner().invoke(cli, [*path, "--help"]).output
        assert "path/to/file.py:NAME" in shown and "package.module:NAME" in shown


def test_every_hook_is_documented():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("register_")]
    assert len(hooks) >= 3
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert "Args:" in doc and "Returns:" in doc, hook.__name__


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["study", "create", "s", "--frobnicate"],
         "Error: No such option '--frobnicate'. (tuner study create --help)"),
        (["--frobnicate"], "Error: No such option '--frobnicate'. (tuner --help)"),
        (["study", "frobnicate"], "Error: No such command 'frobnicate'. (tuner study --help)"),
        (["train", "--optimizer", "adam"],
         "Error: Missing option '--task'. (tuner train --help)"),
        (["train", "--task", "quadratic", "--optimizer", "adam", "--seed", "x"],
         "Error: Invalid value for '--seed': 'x' is not a valid integer. (tuner train --help)"),
        (["study", "export", "s", "--format", "xml"],
         "Error: Invalid value for '--format': 'xml' is not one of 'csv', 'json'. "
         "(tuner study export --help)"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args, message):
    result = CliRunner().invoke(cli, args, prog_name="tuner")
    assert result.exit_code == 2
    assert result.output.splitlines() == [message]


def test_a_usage_error_leaves_the_store_as_it_was(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert CliRunner().invoke(cli, ["db", "upgrade", "--db", url]).exit_code == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    result = subprocess.run(
        [sys.executable, "-m", "tuner", "study", "create", "s", "--task", "quadratic",
         "--optimizers", "adam", "--trials", "many", "--seeds", "1", "--db", url],
        capture_output=True, text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: Invalid value for '--trials': 'many' is not a valid integer. "
        "(tuner study create --help)"
    ]
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_group_without_a_subcommand_still_shows_its_help():
    result = CliRunner().invoke(cli, ["study"])
    assert "Commands:" in result.output and "create" in result.output


def test_any_tuner_error_prints_its_first_line_only():
    @cli.command(name="explode-for-test", hidden=True)
    def explode() -> None:
        """Raise a multi-line TunerError."""
        raise TunerError("the first line says it\nand this traceback-like tail\n  does not")

    try:
        result = CliRunner().invoke(cli, ["explode-for-test"])
    finally:
        del cli.commands["explode-for-test"]
    assert result.exit_code == 1
    assert result.output.splitlines() == ["Error: the first line says it"]


def test_describe_exception_is_one_line():
    error = RuntimeError("\n  first\nsecond\n")
    assert describe_exception(error) == "RuntimeError: first"
    assert describe_exception(SystemExit()) == "SystemExit"
    assert first_line("x" * 1000) == "x" * 297 + "..."
