"""The study commands end to end on real databases: the whole lifecycle, and bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from tuner.cli import cli
from tuner.store import resolve_url

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--task", "quadratic", "--budget", "20", "--seeds", "2"]


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, input=input)


def optuna_command() -> str:
    """Optuna's own command-line tool, installed beside this Python."""
    beside = Path(sys.executable).with_name("optuna")
    found = str(beside) if beside.exists() else shutil.which("optuna")
    if found is None:
        pytest.skip("the optuna command is not installed")
    return found


def dump(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: two dumps are equal when nothing was written."""
    engine = create_engine(resolve_url(url))
    try:
        with engine.connect() as connection:
            tables = sorted(inspect(connection).get_table_names())
            return {
                table: sorted(
                    (tuple(row) for row in connection.execute(text(f'SELECT * FROM "{table}"'))),
                    key=repr,
                )
                for table in tables
            }
    finally:
        engine.dispose()


def test_study_lifecycle(database_url: str, tmp_path: Path):
    created = invoke("study", "create", "life", *QUICK, "--optimizers", "adam,sgd",
                     "--trials", "3", "--pruner", "none", "--db", database_url)
    assert created.exit_code == 0, created.output
    assert "2 optimizers x 3 trials x 2 seeds" in created.output

    listed = invoke("study", "list", "--json", "--db", database_url)
    assert [s["status"] for s in json.loads(listed.output)] == ["created"]

    ran = invoke("study", "run", "life", "--db", database_url)
    assert ran.exit_code == 0, ran.output
    assert "finished: 6/6 trials" in ran.output

    shown = json.loads(invoke("study", "show", "life", "--json", "--db", database_url).output)
    assert shown["status"] == "finished"
    assert [o["done"] for o in shown["per_optimizer"]] == [3, 3]
    adam = shown["per_optimizer"][0]
    assert adam["optimizer"] == "adam" and adam["best_value"] is not None
    assert set(adam["best_params"]) >= {"lr", "beta1", "beta2"}
    table = invoke("study", "show", "life", "--db", database_url)
    assert "best mean loss (lowest)" in table.output

    exported = invoke("study", "export", "life", "--format", "csv", "--db", database_url)
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    complete = [r for r in rows if r["trial_status"] == "complete"]
    assert complete and all(r["param_lr"] for r in rows)
    # How each run was trained travels with it: the budget, the schedule, the threads it took.
    assert {r["option_schedule"] for r in rows} == {"constant"}
    assert all(int(r["option_budget"]) == int(r["steps"]) for r in complete)
    assert all(int(r["option_threads"]) >= 1 and r["protocol"] for r in complete)
    per_trial: dict[tuple[str, str], set[str]] = {}
    for row in complete:
        per_trial.setdefault((row["optimizer"], row["trial"]), set()).add(row["seed"])
    assert all(seeds == {"0", "1"} for seeds in per_trial.values())
    as_json = json.loads(
        invoke("study", "export", "life", "--format", "json", "--db", database_url).output
    )
    assert len(as_json) == len(rows)
    assert {r["optimizer"] for r in as_json} == {"adam", "sgd"}

    # Optuna's own CLI (and so optuna-dashboard) reads the same database.
    optuna_cli = subprocess.run(
        [optuna_command(), "studies", "--storage", resolve_url(database_url), "-f", "json"],
        capture_output=True, text=True, check=True,
    )
    names = {s["name"]: s["n_trials"] for s in json.loads(optuna_cli.stdout)}
    assert names == {"tuner/life/adam": 3, "tuner/life/sgd": 3}

    again = invoke("study", "run", "life", "--db", database_url)
    assert "already finished (6/6 trials); nothing to do" in again.output

    refused = invoke("study", "delete", "life", "--db", database_url, input="n\n")
    assert refused.exit_code != 0
    assert len(json.loads(invoke("study", "list", "--json", "--db", database_url).output)) == 1
    deleted = invoke("study", "delete", "life", "--yes", "--db", database_url)
    assert deleted.exit_code == 0 and f"({len(rows)} runs)" in deleted.output
    assert json.loads(invoke("study", "list", "--json", "--db", database_url).output) == []
    left = dump(database_url)
    for table in ("tuner_runs", "tuner_trials", "tuner_curve_points", "studies", "trials"):
        assert left[table] == [], table


def test_study_file_with_flags_overriding_it(sqlite_url: str, tmp_path: Path):
    study_file = tmp_path / "small.toml"
    study_file.write_text(
        'task = "quadratic"\noptimizers = ["adam", "sgd"]\ntrials = 5\nseeds = 3\n'
        'sampler = "random"\nbudget = 20\n[ranges]\nlr = [1e-3, 1e-1]\nsgd.lr = [1e-2, 5e-2]\n'
    )
    result = invoke("study", "create", "fromfile", "--from", str(study_file), "--trials", "2",
                    "--param-range", "adam.lr=1e-4:1e-2", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    shown = json.loads(invoke("study", "show", "fromfile", "--json", "--db", sqlite_url).output)
    assert shown["trials_per_optimizer"] == 2 and shown["seeds"] == 3
    assert shown["sampler"] == "random"
    assert shown["ranges"] == {"adam": {"lr": [1e-4, 1e-2]}, "sgd": {"lr": [1e-2, 5e-2]}}


def test_ready_made_study_files_are_valid():
    from tuner.driver.resolve import resolve
    from tuner.plugin.registry import get_registry
    from tuner.study.spec import load_study_file

    registry = get_registry()
    for path in sorted((ROOT / "studies").glob("*.toml")):
        settings = load_study_file(path)
        missing = [o for o in settings["optimizers"] if o not in registry.optimizers]
        if settings["task"] not in registry.tasks or missing:
            continue  # a plugin this install lacks; the file is still for users who have it
        spec = resolve({"name": path.stem}, settings)
        assert spec.trials >= 4 and spec.seeds >= 2, path.name


MODERN = ["adamw", "muon", "soap", "ademamix", "lion", "prodigy", "schedulefree-adamw"]
"""AdamW against the optimizers people ask about now (studies/modern.toml)."""


def test_the_modern_study_file_parses_and_its_installed_part_resolves():
    """``studies/modern.toml``: every optimizer on charlm with one tuning budget and seeds,
    pinned to about 15 minutes on two cores (252 runs of 5-12 s over two workers). SOAP,
    AdEMAMix and Prodigy come from the optional ``tuner[more-optimizers]``: what this install
    has of the list must make a valid study (Muon on charlm included)."""
    from tuner.driver.resolve import resolve
    from tuner.plugin.registry import get_registry
    from tuner.study.spec import load_study_file

    settings = load_study_file(ROOT / "studies" / "modern.toml")
    assert settings["task"] == "charlm" and settings["optimizers"] == MODERN
    assert settings["pruner"] == "none" and settings["budget"] == 600
    assert len(MODERN) * settings["trials"] * settings["seeds"] == 252
    assert "ranges" not in settings  # each optimizer keeps its own space
    registry = get_registry()
    installed = [name for name in MODERN if name in registry.optimizers]
    assert {"adamw", "muon", "lion", "schedulefree-adamw"} <= set(installed)
    spec = resolve({}, {**settings, "optimizers": installed})
    assert (spec.name, spec.task, spec.optimizers) == ("modern", "charlm", installed)
    assert (spec.trials, spec.seeds, spec.schedule) == (12, 3, "cosine")


BAD_INPUT = {
    "malformed study file": ["--from", "{bad_file}"],
    "unknown key in study file": ["--from", "{odd_file}"],
    "unknown optimizer": [*QUICK, "--optimizers", "adam,nosuchopt", "--trials", "2"],
    "unknown task": ["--task", "nosuchtask", "--optimizers", "adam", "--trials", "2",
                     "--seeds", "1"],
    "negative trial count": [*QUICK, "--optimizers", "adam", "--trials", "-3"],
    "lr range low above high": [*QUICK, "--optimizers", "adam", "--trials", "2",
                                "--param-range", "lr=1e-1:1e-4"],
    "range of an optimizer not in the study": [*QUICK, "--optimizers", "adam", "--trials", "2",
                                               "--param-range", "sgd.lr=1e-3:1e-1"],
    "unknown sampler": [*QUICK, "--optimizers", "adam", "--trials", "2", "--sampler", "magic"],
    "name taken": [*QUICK, "--optimizers", "adam", "--trials", "2"],
}


@pytest.fixture
def populated_sqlite(sqlite_url: str) -> str:
    result = invoke("study", "create", "taken", *QUICK, "--optimizers", "adam", "--trials", "1",
                    "--seeds", "1", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert invoke("study", "run", "taken", "--db", sqlite_url).exit_code == 0
    return sqlite_url


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_writes_nothing(populated_sqlite: str, tmp_path: Path,
                                                  case: str):
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text('task = "quadratic"\noptimizers = ["adam"\n')
    odd_file = tmp_path / "odd.toml"
    odd_file.write_text('task = "quadratic"\noptimizers = ["adam"]\ntrails = 3\nseeds = 1\n')
    args = [a.format(bad_file=bad_file, odd_file=odd_file) for a in BAD_INPUT[case]]
    name = "taken" if case == "name taken" else "fresh"
    before = dump(populated_sqlite)
    result = invoke("study", "create", name, *args, "--db", populated_sqlite)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert dump(populated_sqlite) == before
    expected = {
        "malformed study file": "not valid TOML",
        "unknown key in study file": "unknown key 'trails'",
        "unknown optimizer": "choose from",
        "unknown task": "choose from",
        "negative trial count": "trials must be a positive",
        "lr range low above high": "low 0.1 must be below high 0.0001",
        "range of an optimizer not in the study": "not in the study",
        "unknown sampler": "tpe, random, qmc, grid",
        "name taken": "already exists",
    }[case]
    assert expected in lines[0]


def test_unknown_study_lists_the_known_ones(populated_sqlite: str):
    for command in (["run"], ["show"], ["export"], ["delete", "--yes"]):
        result = invoke("study", *command, "nosuch", "--db", populated_sqlite)
        assert result.exit_code != 0
        assert "no study named 'nosuch' (studies: taken)" in result.output


def _open_files_under(folder: Path) -> list[str]:
    """This process's open files inside ``folder`` (from /proc/self/fd)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_commands_leave_no_connection_to_the_store_open(tmp_path: Path):
    """A command run inside a process (the Python API, a test, a notebook) closes every
    connection it opened, Optuna's included: an open one keeps SQLite's write-ahead log in use
    and the file's last pages out of it."""
    url = f"sqlite:///{tmp_path / 'closed.db'}"
    for args in (["study", "create", "closed", *QUICK, "--optimizers", "adam", "--trials", "1",
                  "--seeds", "1"], ["study", "run", "closed"], ["study", "delete", "closed",
                                                                "--yes"]):
        result = invoke(*args, "--db", url)
        assert result.exit_code == 0, result.output
        assert _open_files_under(tmp_path) == [], args


def test_a_study_note_is_kept_shown_and_removed_from_the_command_line(sqlite_url: str):
    created = invoke("study", "create", "noted", *QUICK, "--optimizers", "adam", "--trials", "1",
                     "--db", sqlite_url)
    assert created.exit_code == 0, created.output
    assert invoke("study", "note", "noted", "--db", sqlite_url).output == "\n"
    hostile = "lr range from the 12/01 run; =HYPERLINK(\"x\") <b>kept as text</b>"
    kept = invoke("study", "note", "noted", hostile, "--db", sqlite_url)
    assert kept.exit_code == 0 and "Kept the note" in kept.output, kept.output
    assert invoke("study", "note", "noted", "--db", sqlite_url).output == hostile + "\n"
    shown = invoke("study", "show", "noted", "--db", sqlite_url).output
    assert f"Note: {hostile}" in shown.splitlines()
    as_json = json.loads(invoke("study", "show", "noted", "--json", "--db", sqlite_url).output)
    assert as_json["note"] == hostile

    before = dump(sqlite_url)
    too_long = invoke("study", "note", "noted", "x" * 10_001, "--db", sqlite_url)
    assert too_long.exit_code != 0
    assert too_long.output.strip().splitlines() == [
        "Error: a note holds at most 10,000 characters, this one has 10,001"]
    unknown = invoke("study", "note", "nosuch", "text", "--db", sqlite_url)
    assert unknown.exit_code != 0 and len(unknown.output.strip().splitlines()) == 1
    assert "nosuch" in unknown.output
    assert dump(sqlite_url) == before

    removed = invoke("study", "note", "noted", "", "--db", sqlite_url)
    assert "Removed the note" in removed.output
    assert "Note:" not in invoke("study", "show", "noted", "--db", sqlite_url).output
