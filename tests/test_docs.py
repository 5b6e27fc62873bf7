"""The README stays true: its example plugin is the one the tests install, every command it shows
exists with the options it shows, and its sample output is what the main job prints."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from tuner.cli import cli

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


# -- every command the README shows exists, with the options it shows -----------------------


def readme_commands(text: str) -> list[str]:
    """Every ``tuner ...`` command in the text: inline code spans, and the lines of code blocks
    (each part of an ``&&`` chain; comments and environment assignments dropped)."""
    commands = []
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
    for block in blocks:
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                found = re.match(r"\s*(?:[A-Z_]+=(?:\$\([^)]*\)|\S*)\s+)*(tuner\s.*)", part)
                if found:
                    commands.append(" ".join(found.group(1).split()))
    outside = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`(tuner [^`]+)`", outside):
        for part in span.split("&&"):
            if part.split()[:1] == ["tuner"]:
                commands.append(" ".join(part.split()))
    return commands


def command_problem(line: str) -> str | None:
    """What is wrong with one README command against the click tree, or None.

    Walks the subcommand path (a group must be followed by one of its subcommands, unless the
    command names only the group), then checks that every ``--option`` belongs to the command
    and that no more positional words are given than it has arguments. ``...`` stands for
    omitted words; UPPER-CASE words are placeholders for values.
    """
    words = [w for w in shlex.split(line)[1:] if w != "..."]
    command: click.Command = cli
    path = ["tuner"]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        if words[0] not in command.commands:
            return f"{' '.join(path)} has no subcommand {words[0]!r}"
        command = command.commands[words.pop(0)]
        path.append(command.name)
    options = {name: param for param in command.params if isinstance(param, click.Option)
               for name in (*param.opts, *param.secondary_opts)}
    if isinstance(command, click.Group):
        return f"{' '.join(path)} has no option {words[0]!r}" if words and not (
            words[0] in options or words[0] in ("--help", "--version")) else None
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    room = float("inf") if any(a.nargs == -1 for a in arguments) else sum(
        a.nargs for a in arguments)
    positional = 0
    while words:
        word = words.pop(0)
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            if name == "--help":
                continue
            if name not in options:
                return f"{' '.join(path)} has no option {name!r}"
            takes_value = not options[name].is_flag and options[name].nargs > 0
            if takes_value and "=" not in word and words and not words[0].startswith("--"):
                words.pop(0)
            continue
        positional += 1
    if positional > room:
        return f"{' '.join(path)} takes {room} argument(s), the README gives {positional}"
    return None


def test_readme_commands_exist_with_their_options():
    commands = readme_commands(README)
    assert len(commands) > 20 and any(c.startswith("tuner study create") for c in commands)
    problems = [f"{line!r}: {command_problem(line)}" for line in commands
                if command_problem(line)]
    assert not problems, "\n".join(problems)


def test_study_file_commands_exist_with_their_options():
    """The commands a study file's comments tell its reader to run (``#   tuner ...``)."""
    commands = []
    for path in sorted((ROOT / "studies").glob("*.toml")):
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                for part in re.split(r"&&|#\s*or:|\(|,\s", line.lstrip("# ")):
                    if part.split()[:1] == ["tuner"]:
                        commands.append((path.name, " ".join(part.split())))
    assert len(commands) >= 10
    problems = [f"{name}: {line!r}: {command_problem(line)}" for name, line in commands
                if command_problem(line)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("tuner study frobnicate", "tuner study has no subcommand 'frobnicate'"),
        ("tuner frobnicate --task x", "tuner has no subcommand 'frobnicate'"),
        ("tuner study create NAME --frobnicate 3", "tuner study create has no option"),
        ("tuner best --task T extra", "tuner best takes 0 argument(s), the README gives 1"),
        ("tuner study show A B", "tuner study show takes 1 argument(s), the README gives 2"),
        ("tuner study --nope", "tuner study has no option '--nope'"),
        ("tuner study create NAME --task T --trials 20 --warm-start", None),
        ("tuner study create ... --optimizers nsgd,adam", None),
        ("tuner study export NAME -o out.csv --format csv", None),
    ],
)
def test_the_readme_command_check_catches_what_does_not_exist(line, problem):
    found = command_problem(line)
    assert (found is None) if problem is None else (found and found.startswith(problem)), found


def test_readme_commands_are_found_in_spans_and_code_blocks():
    text = ("Run `tuner study show NAME` or\n```bash\nX=$(a b) Y=1 tuner best --task T  # note\n"
            "tuner db upgrade && tuner advise --task T\n```\nand `tuner.best()`.\n")
    assert readme_commands(text) == [
        "tuner best --task T", "tuner db upgrade", "tuner advise --task T",
        "tuner study show NAME"]


# -- the main job prints what the README shows ----------------------------------------------


def main_job() -> list[list[str]]:
    """The README's main job as argument lists (``&&`` parts)."""
    line = re.search(r"# the main job.*\n(.+)\n", README).group(1)
    return [shlex.split(part) for part in line.split("&&")]


def readme_sample() -> list[str]:
    """The sample output in "A first session": the code block after the main job's paragraph."""
    section = README[README.index("## A first session"):]
    return re.search(r"^```\n(.*?)^```", section, flags=re.S | re.M).group(1).splitlines()


def comparable(lines: list[str]) -> list[str]:
    """Lines as far as they can be compared between runs: elapsed and remaining times (h:mm:ss)
    masked, runs of spaces and of progress-bar characters made one."""
    masked = []
    for line in lines:
        line = re.sub(r"\b\d+:\d\d:\d\d\b", "H:MM:SS", line)
        line = re.sub(r"[━╸╺─]+", "━", line)
        masked.append(" ".join(line.split()))
    return [line for line in masked if line]


def test_the_readme_main_job_is_a_tuner_command_chain():
    assert all(args[0] == "tuner" for args in main_job())
    assert subprocess.run(["git", "-C", str(ROOT), "ls-files", "--error-unmatch",
                           "studies/quickstart.toml"], capture_output=True).returncode == 0


# The sample is compared by what it says, not by its digits: the training is seeded, but
# another processor's vector units round float32 differently, and after the first trials the
# sampler may then draw other configurations.

METRIC_TOLERANCE = 0.03
"""How far a best val_accuracy on another processor may be from the sample's. Measured between
two x86-64 processors on this job: up to 0.0042 (lion's best of 4 trials, 0.9681 and 0.9639) and
0.0014 (adam); 0.03 is about 11 of digits' 360 validation examples, seven times that."""

PROGRESS = re.compile(r"^(?P<name>\S+) ━ (?P<done>\d+)/(?P<total>\d+)"
                      r"(?: best (?P<metric>\S+) (?P<best>[-\d.]+))?")
NUMBER = re.compile(r"(?<![A-Za-z])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


@dataclass
class Sample:
    """What a main job's output says: per optimizer (in order) its trials and best value, the
    closing line, and the advice: its winner, the winner's value, the optimizers it names as
    tied, and the shape of its sentences (names and numbers masked)."""

    progress: list[tuple[str, int, int, str | None, float | None]]
    closing: str
    winner: str
    winner_value: float
    tied: set[str]
    shape: list[str]


def read_sample(lines: list[str]) -> Sample:
    lines = comparable(lines)
    progress = []
    for line in lines:
        found = PROGRESS.match(line)
        if found:
            best = found["best"]
            progress.append((found["name"], int(found["done"]), int(found["total"]),
                             found["metric"], float(best) if best else None))
    closing = next(line for line in lines if line.startswith("Study "))
    advice = next(line for line in lines if line.startswith("On "))
    names = [name for name, *_ in progress if name != "all"]
    opening = re.match(r"On \S+, use (\S+) with lr \S+: (\S+?)%", advice)
    tied = re.findall(r"(\S+(?:, \S+)*(?: and \S+)?) (?:is|are) tied within noise", advice)
    return Sample(
        progress=progress, closing=closing, winner=opening[1],
        winner_value=float(opening[2]) / 100,
        tied={name for group in tied for name in re.split(r", | and ", group)},
        shape=advice_shape(advice, names),
    )


def advice_shape(advice: str, names: list[str]) -> list[str]:
    """The advice's clauses with optimizer names and numbers masked (``NAME``, ``#``), a list of
    names as one, and singular and plural alike: what it says, not which or how much."""
    pattern = r"\b(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\b"
    masked = re.sub(pattern, "NAME", advice)
    masked = NUMBER.sub("#", masked)
    masked = re.sub(r"NAME(?:, NAME)*(?: and NAME)?", "NAME", masked)
    masked = re.sub(r"\b(seed|trial|run)s\b", r"\1", masked)
    return [" ".join(clause.split()) for clause in re.split(r"(?<=[.;])\s+", masked)]


def meaning_differences(sample: Sample, printed: Sample) -> list[str]:
    """How ``printed`` says something else than ``sample`` (empty: the same meaning).

    The same optimizers in the same order with the same trial counts and metric, each best value
    within :data:`METRIC_TOLERANCE`; the same closing line; advice of the same shape whose winner
    is the sample's or one the sample names as tied with it (a tie may break the other way on
    another processor), its value within the tolerance.
    """
    problems = []
    shown = [(name, done, total, metric) for name, done, total, metric, _ in sample.progress]
    got = [(name, done, total, metric) for name, done, total, metric, _ in printed.progress]
    if shown != got:
        problems.append(f"progress lines {got} instead of {shown}")
    else:
        for (name, *_, want), (*_, value) in zip(sample.progress, printed.progress, strict=True):
            if (want is None) != (value is None) or (
                    want is not None and abs(value - want) > METRIC_TOLERANCE):
                problems.append(f"{name}: best {value} is not within {METRIC_TOLERANCE} of "
                                f"{want}")
    if printed.closing != sample.closing:
        problems.append(f"closing line {printed.closing!r} instead of {sample.closing!r}")
    if printed.winner not in {sample.winner} | sample.tied:
        problems.append(f"winner {printed.winner} is neither {sample.winner} nor tied with it")
    if abs(printed.winner_value - sample.winner_value) > METRIC_TOLERANCE:
        problems.append(f"the winner's {printed.winner_value} is not within {METRIC_TOLERANCE} "
                        f"of {sample.winner_value}")
    if printed.shape != sample.shape:
        problems.append(f"advice shaped {printed.shape} instead of {sample.shape}")
    return problems


def perturbed(lines: list[str], by: float) -> list[str]:
    """The sample with every best value and percentage moved by ``by`` (a fraction)."""
    moved = []
    for line in lines:
        line = re.sub(r"(best \S+ )([\d.]+)", lambda m: f"{m[1]}{float(m[2]) + by:.4f}", line)
        line = re.sub(r"([\d.]+)%", lambda m: f"{float(m[1]) + 100 * by:.1f}%", line)
        moved.append(line)
    return moved


def test_the_sample_comparison_allows_rounding_and_catches_a_changed_meaning():
    lines = readme_sample()
    sample = read_sample(lines)
    assert [name for name, *_ in sample.progress] == ["adam", "adamw", "momentum", "lion", "all"]
    assert meaning_differences(sample, read_sample(lines)) == []
    within = 0.8 * METRIC_TOLERANCE
    assert meaning_differences(sample, read_sample(perturbed(lines, within))) == []
    assert meaning_differences(sample, read_sample(perturbed(lines, -within))) == []
    assert meaning_differences(sample, read_sample(perturbed(lines, 1.5 * METRIC_TOLERANCE)))

    swapped = [lines[1], lines[0], *lines[2:]]
    assert any("progress lines" in p for p in meaning_differences(sample, read_sample(swapped)))
    counted = [lines[0].replace("4/4", "3/4", 1), *lines[1:]]
    assert any("progress lines" in p for p in meaning_differences(sample, read_sample(counted)))
    dropped = [line for line in lines if not line.startswith("lion")]
    assert any("progress lines" in p for p in meaning_differences(sample, read_sample(dropped)))
    advice = next(i for i, line in enumerate(lines) if line.startswith("On "))
    outsider = "nadam"  # an optimizer the sample neither names as winner nor as tied
    untied = [*lines[:advice],
              lines[advice].replace(f"use {sample.winner} ", f"use {outsider} ", 1)]
    assert outsider not in sample.tied | {sample.winner}
    assert any(f"winner {outsider}" in p
               for p in meaning_differences(sample, read_sample(untied)))
    shorter = [*lines[:advice], lines[advice].rsplit(". ", 1)[0] + "."]
    assert any("advice shaped" in p for p in meaning_differences(sample, read_sample(shorter)))


@pytest.mark.slow
def test_the_readme_sample_output_is_what_the_main_job_prints(tmp_path):
    """Runs the main job as the README gives it, on a fresh default store (``XDG_DATA_HOME``),
    and compares what it prints with the sample by meaning (:func:`meaning_differences`)."""
    env = {key: value for key, value in os.environ.items() if key != "TUNER_DB"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    output: list[str] = []
    for args in main_job():
        done = subprocess.run([sys.executable, "-m", "tuner", *args[1:]], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        output += done.stdout.splitlines()
    assert (tmp_path / "data" / "tuner" / "tuner.db").exists()  # the default store was used
    problems = meaning_differences(read_sample(readme_sample()), read_sample(output))
    assert not problems, "\n".join(problems) + "\n" + "\n".join(output)
