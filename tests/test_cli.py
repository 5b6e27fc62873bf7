"""The command line as a whole: fast help, documented commands and hooks."""

import inspect
import subprocess
import sys

import click
from click.testing import CliRunner

from tuner import __version__, hookspecs
from tuner.cli import cli


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


def test_every_hook_is_documented():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("register_")]
    assert len(hooks) >= 3
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert "Args:" in doc and "Returns:" in doc, hook.__name__
