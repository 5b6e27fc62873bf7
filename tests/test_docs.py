"""The README stays true: its example plugin is the one the tests install, its commands exist."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_example_plugin_is_the_tested_package():
    example = ROOT / "examples" / "tuner-example-plugin"
    assert (example / "tuner_example_plugin.py").read_text() in README
    assert (example / "pyproject.toml").read_text() in README


def test_ci_runs_the_readme_test_command():
    block = re.search(r"# the tests\n(.+)\n", README).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == block


def test_readme_commands_name_real_subcommands():
    from click.testing import CliRunner

    from tuner.cli import cli

    for line in re.findall(r"`(tuner [a-z][^`]*)`", README):
        words = [w for w in line.split()[1:] if re.fullmatch(r"[a-z][a-z-]*", w)]
        command, path = cli, []
        for word in words:
            if not hasattr(command, "commands") or word not in command.commands:
                break
            command, path = command.commands[word], [*path, word]
        assert path, f"README mentions {line!r}, which is not a tuner command"
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, line


def test_readme_main_job_is_a_tuner_command_chain():
    main = re.search(r"# the main job.*\n(.+)\n", README).group(1)
    assert all(part.strip().startswith("tuner ") for part in main.split("&&"))
    assert subprocess.run(["git", "-C", str(ROOT), "ls-files", "--error-unmatch",
                           "studies/quickstart.toml"], capture_output=True).returncode == 0
