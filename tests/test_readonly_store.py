"""Read-only stores and pure reads: advice, reports and study views write nothing, create
nothing, import neither torch nor Optuna nor the plugins, and work where writing is impossible
(a read-only mount, a PostgreSQL role that may only SELECT)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tuner.cli import cli
from tuner.store import (
    SchemaError,
    TaskRecord,
    open_store,
    record_run,
    record_task,
    schema_state,
)
from tuner.training.loop import CurvePoint, RunResult

TASK = TaskRecord("my-model", "vision", "val_accuracy", "maximize", 0.9)
READ_COMMANDS = [
    ["best", "--task", "my-model", "--json"],
    ["advise", "--task", "my-model", "--memory-budget", "1n"],
    ["compare", "--json"],
    ["study", "list", "--json"],
    ["study", "show", "s", "--json"],
    ["study", "export", "s"],
]
HEAVY = ("torch", "optuna", "tuner_plugins")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def fill(url: str) -> None:
    """A store of a task no plugin has: a study, and synthetic runs of two optimizers."""
    from study_rows import claim, write

    from tuner.store.studies import set_status

    store = open_store(url)
    record_task(store, TASK)
    spec = write(store, TASK, "s", ["adam", "sgd"], trials=2, seeds=2)
    set_status(store, spec.id, "finished")
    for slot, (optimizer, lr, state, finals) in enumerate((
        ("adam", 1e-3, 2.0, [0.95, 0.96]), ("adam", 1e-2, 2.0, [0.93, 0.94]),
        ("sgd", 0.1, 0.0, [0.90, 0.91]), ("sgd", 0.3, 0.0, [0.88, 0.89]),
    )):
        trial_id = claim(store, spec, optimizer, {"lr": lr}, slot=slot % 2,
                         origin="recommended" if slot % 2 == 0 else "sampled")
        for seed, final in enumerate(finals):
            record_run(store, trial_id, RunResult(
                task=TASK.name, optimizer=optimizer, params={"lr": lr}, seed=seed,
                status="complete", final_metric=final, best_metric=final, param_count=1000,
                optimizer_state_bytes=int(state * 4000), options={"budget": 100},
                curve=[CurvePoint(step, 1.0 / (step + 1), final * step / 100, lr, 0.1)
                       for step in (0, 50, 100)],
                steps_to_target=50,
            ))
    store.dispose()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_readonly_open_writes_and_creates_nothing(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    url = f"sqlite:///{folder / 'tuner.db'}"
    fill(url)
    before = snapshot(folder)
    assert list(before) == ["tuner.db"]  # WAL checkpointed and removed at the last close
    store = open_store(url, readonly=True)
    assert store.readonly
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tuner_runs")).scalar() == 8
        with pytest.raises(OperationalError, match="readonly"):
            connection.execute(text("DELETE FROM tuner_runs"))
    store.dispose()
    for command in READ_COMMANDS:
        result = invoke(*command, "--db", url)
        assert result.exit_code == 0, (command, result.output)
    report = invoke("report", "--task", TASK.name, "--out", str(tmp_path / "r"), "--db", url)
    assert report.exit_code == 0, report.output
    assert snapshot(folder) == before  # same bytes, no -wal or -shm left behind


def test_a_readonly_open_of_nothing_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(SchemaError) as missing:
        open_store(url, readonly=True)
    assert missing.value.state.state == "missing"
    result = invoke("best", "--task", TASK.name, "--db", url)
    assert result.output.strip() == f"Error: no tuner store at {url}; run a study first"
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(SchemaError) as caught:
        open_store(f"sqlite:///{empty}", readonly=True)
    assert caught.value.state.state == "empty"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    assert empty.stat().st_size == 0


def _run(arguments: list[str], prefix: list[str], home: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "XDG_DATA_HOME": str(home), "HOME": str(home),
                   "MPLCONFIGDIR": str(home / "mpl")}
    environment.pop("TUNER_DB", None)
    return subprocess.run([*prefix, sys.executable, "-m", "tuner", *arguments],
                          capture_output=True, text=True, timeout=300, env=environment)


@pytest.fixture
def unwritable_store(tmp_path: Path) -> Iterator[tuple[str, list[str], Path]]:
    """A store the command cannot write: on a read-only bind mount when the sandbox allows
    mounts, else a 0555 folder with a 0444 file read by the unprivileged user ``nobody``.
    Yields (its URL, the command prefix, a writable home for the command)."""
    source, mounted = tmp_path / "src", tmp_path / "ro"
    source.mkdir()
    mounted.mkdir()
    fill(f"sqlite:///{source / 'tuner.db'}")
    home = tmp_path / "home"
    home.mkdir()
    bind = subprocess.run(["mount", "--bind", str(source), str(mounted)], capture_output=True)
    if bind.returncode == 0:
        try:
            readonly = subprocess.run(["mount", "-o", "remount,ro,bind", str(mounted)],
                                      capture_output=True)
            if readonly.returncode == 0:
                yield f"sqlite:///{mounted / 'tuner.db'}", [], home
                return
        finally:
            subprocess.run(["umount", str(mounted)], capture_output=True)
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("cannot make an unwritable store here: no mount and no setpriv as root")
    (source / "tuner.db").chmod(0o444)
    source.chmod(0o555)
    for folder in (tmp_path, home):
        folder.chmod(0o777)
    yield (f"sqlite:///{source / 'tuner.db'}",
           [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"], home)
    source.chmod(0o755)


def test_read_commands_on_a_store_that_cannot_be_written(unwritable_store, tmp_path):
    url, prefix, home = unwritable_store
    path = Path(url.removeprefix("sqlite:///"))
    probe = _run(["db", "current", "--db", url], prefix, home)
    assert probe.returncode == 0, probe.stderr
    assert "schema revision" in probe.stdout
    cannot_write = subprocess.run(
        [*prefix, sys.executable, "-c", "import sys; open(sys.argv[1], 'ab')", str(path)],
        capture_output=True, text=True)
    assert cannot_write.returncode != 0  # the setting is honest: this process may not write
    for command in READ_COMMANDS:
        result = _run([*command, "--db", url], prefix, home)
        assert result.returncode == 0, (command, result.stderr)
    best = json.loads(_run(["best", "--task", TASK.name, "--json", "--db", url], prefix,
                           home).stdout)
    assert [o["optimizer"] for o in best["optimizers"]] == ["adam", "sgd"]
    assert best["optimizers"][0]["mean"] == pytest.approx(0.955)
    advice = _run(["advise", "--task", TASK.name, "--memory-budget", "1n", "--db", url],
                  prefix, home).stdout
    assert advice.startswith("On my-model, use sgd") and "memory budget: adam" in advice
    out = home / "report"
    report = _run(["report", "--task", TASK.name, "--out", str(out), "--db", url], prefix, home)
    assert report.returncode == 0, report.stderr
    assert (out / "index.html").is_file() and (out / "learning_curves.png").is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["tuner.db"]


def test_read_commands_as_a_postgres_role_that_may_only_select(postgres_url, tmp_path):
    import psycopg

    fill(postgres_url)
    invoke("db", "upgrade", "--db", postgres_url)  # nothing to do; the role will not either
    server = make_url(postgres_url)
    role = f"tuner_reader_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(server.set(drivername="postgresql").render_as_string(
        hide_password=False), autocommit=True)
    try:
        admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'reader'")
        admin.execute(f'GRANT CONNECT ON DATABASE "{server.database}" TO "{role}"')
        admin.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        reader = server.set(username=role, password="reader").render_as_string(
            hide_password=False)
        with psycopg.connect(make_url(reader).set(drivername="postgresql").render_as_string(
                hide_password=False)) as connection, pytest.raises(psycopg.Error):
            connection.execute("DELETE FROM tuner_runs")  # the role really cannot write
        assert schema_state(reader).state == "current"
        for command in READ_COMMANDS:
            result = invoke(*command, "--db", reader)
            assert result.exit_code == 0, (command, result.output)
        best = json.loads(invoke("best", "--task", TASK.name, "--json", "--db", reader).output)
        assert best["optimizers"][0]["optimizer"] == "adam"
        assert best["db"].startswith(f"postgresql+psycopg://{role}:***@")
        report = invoke("report", "--task", TASK.name, "--out", str(tmp_path / "r"),
                        "--db", reader)
        assert report.exit_code == 0, report.output
    finally:
        with psycopg.connect(server.set(drivername="postgresql").render_as_string(
                hide_password=False), autocommit=True) as owner:
            owner.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


PROBE = """
import json, sys
from tuner.cli import cli
try:
    cli(sys.argv[2:], standalone_mode=False)
finally:
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(sys.modules), out)
"""


@pytest.mark.parametrize("command", [
    ["best", "--task", "my-model"], ["advise", "--task", "my-model", "--memory-budget", "2n"],
    ["compare"], ["report", "--task", "my-model"],
])
def test_read_commands_import_no_torch_optuna_or_plugins(command, tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    fill(url)
    listing = tmp_path / "modules.json"
    if command[0] == "report":
        command = [*command, "--out", str(tmp_path / "report")]
    environment = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", PROBE, str(listing), *command, "--db", url],
                            capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(listing.read_text())
    assert "tuner.store" in loaded  # it did read the store
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY or m == "tuner.plugin.registry"]
    assert heavy == []
    plotting = any(m.split(".")[0] == "matplotlib" for m in loaded)
    assert plotting == (command[0] == "report")
