"""Migrations on real databases: populated upgrades, schema checks, the CLI, Optuna alongside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from tuner.cli import cli
from tuner.store import (
    HEAD_REVISION,
    SCHEMA_REVISIONS,
    VERSION_TABLE,
    Base,
    SchemaError,
    StoreError,
    open_store,
    params_hash,
    schema_state,
    upgrade,
)
from tuner.store.database import alembic_config, make_engine, migrations_directory

SEED_ROWS = [
    "INSERT INTO tuner_studies (id, name, task, optimizers, trials_per_optimizer, seeds, sampler,"
    " pruner, options, search_spaces, status, tuner_version, created_at) VALUES (1, 'old',"
    " 'quadratic', '[\"adamw\"]', 2, '[0, 1]', 'tpe', 'median', '{}', '{}', 'finished', '0.1.0',"
    " '2025-01-01 00:00:00')",
    "INSERT INTO tuner_trials (id, study_id, optimizer, optuna_study_name, optuna_trial_number,"
    " params, value, status, started_at) VALUES (1, 1, 'adamw', 'old:adamw', 0,"
    " '{\"lr\": 0.01}', 0.3, 'complete', '2025-01-01 00:00:00')",
    "INSERT INTO tuner_runs (id, trial_id, study_id, task, optimizer, params, seed, status,"
    " final_metric, best_metric, steps, wall_seconds, optimizer_state_bytes, param_count, device,"
    " versions, created_at) VALUES (1, 1, 1, 'quadratic', 'adamw',"
    " '{\"lr\": 0.01, \"beta1\": 0.9}', 0, 'complete', 0.3, 0.25, 100, 1.5, 800, 100, 'cpu',"
    " '{}', '2025-01-01 00:00:00')",
    "INSERT INTO tuner_runs (id, trial_id, study_id, task, optimizer, params, seed, status,"
    " final_metric, best_metric, steps, wall_seconds, optimizer_state_bytes, param_count, device,"
    " versions, created_at) VALUES (2, 1, 1, 'quadratic', 'adamw', '{\"momentum\": 0.9}', 1,"
    " 'diverged', NULL, 0.5, 40, 0.5, 800, 100, 'cpu', '{}', '2025-01-01 00:00:00')",
    "INSERT INTO tuner_curve_points (run_id, step, train_loss, metric, lr, seconds) VALUES"
    " (1, 0, 1.0, 0.5, 0.01, 0.0), (1, 50, 0.5, 0.3, 0.01, 0.7), (2, 0, 2.0, 0.5, 0.01, 0.0)",
]


def populated_at_first_revision(url: str) -> None:
    """A database created by the first migration, with rows written by plain SQL."""
    upgrade(url, "0001")
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in SEED_ROWS:
            connection.execute(text(statement))
    engine.dispose()


def sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def test_revisions_listed_in_code_match_the_migration_scripts():
    scripts = ScriptDirectory(str(migrations_directory()))
    history = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert history == list(SCHEMA_REVISIONS)
    assert scripts.get_current_head() == HEAD_REVISION
    assert len(history) >= 2


def test_models_match_the_migrated_schema(database_url):
    """Autogenerate finds nothing to do: the migrations build exactly what the models say."""
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"version_table": VERSION_TABLE, "compare_type": True,
                  "include_name": lambda name, type_, _: type_ != "table"
                  or name.startswith("tuner_")},
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_upgrading_a_populated_database_keeps_its_data(database_url):
    populated_at_first_revision(database_url)
    assert schema_state(database_url).revision == "0001"
    before, after = upgrade(database_url)
    assert (before, after) == ("0001", HEAD_REVISION)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        runs = connection.execute(
            text("SELECT id, seed, status, final_metric, lr, params_hash, params"
                 " FROM tuner_runs ORDER BY id")
        ).all()
        curve = connection.execute(text("SELECT count(*) FROM tuner_curve_points")).scalar()
        study = connection.execute(text("SELECT name, status FROM tuner_studies")).one()
        trial = connection.execute(text("SELECT value, status FROM tuner_trials")).one()
        indexes = {i["name"] for i in inspect(connection).get_indexes("tuner_runs")}
    engine.dispose()
    assert [(r.id, r.seed, r.status, r.final_metric) for r in runs] == [
        (1, 0, "complete", 0.3), (2, 1, "diverged", None)]
    assert (runs[0].lr, runs[1].lr) == (0.01, None)
    for run in runs:
        params = run.params if isinstance(run.params, dict) else json.loads(run.params)
        assert run.params_hash == params_hash(params)
    assert curve == 3 and tuple(study) == ("old", "finished") and tuple(trial) == (0.3, "complete")
    assert {"ix_tuner_runs_lr", "ix_tuner_runs_task_optimizer_status",
            "ix_tuner_runs_task_optimizer_params_hash"} <= indexes
    store = open_store(database_url, create=False)  # now usable
    store.dispose()


def _runs_curves_and_stats(url: str) -> tuple[list, int, list]:
    engine = make_engine(url)
    with engine.connect() as connection:
        runs = connection.execute(
            text("SELECT id, seed, status, final_metric, lr FROM tuner_runs ORDER BY id")
        ).all()
        curve = connection.execute(text("SELECT count(*) FROM tuner_curve_points")).scalar()
        stats = connection.execute(
            text("SELECT optimizer, params_hash, runs, complete, diverged, metric_sum"
                 " FROM tuner_config_stats ORDER BY params_hash")
        ).all()
    engine.dispose()
    return [tuple(r) for r in runs], curve, [tuple(r) for r in stats]


def test_a_populated_database_at_0004_upgrades_to_0005_keeping_its_data(database_url):
    """Only columns are added: runs, curves, config stats and their triggers all survive."""
    populated_at_first_revision(database_url)
    upgrade(database_url, "0004")
    before = _runs_curves_and_stats(database_url)
    assert len(before[0]) == 2 and before[1] == 3 and before[2]  # the triggers' table is filled
    assert upgrade(database_url, "0005") == ("0004", "0005")
    assert _runs_curves_and_stats(database_url) == before
    engine = make_engine(database_url)
    with engine.connect() as connection:
        columns = {c["name"]: c for c in inspect(connection).get_columns("tuner_runs")}
        unrecorded = connection.execute(
            text("SELECT count(*) FROM tuner_runs WHERE trajectory IS NULL AND options IS NULL"
                 " AND stopped_early IS NULL")
        ).scalar()
    engine.dispose()
    assert all(columns[name]["nullable"] for name in ("trajectory", "options", "stopped_early"))
    assert unrecorded == 2  # older runs: "not recorded"

    # the 0004 triggers still count a run written after the upgrade, with its new columns
    key = params_hash({"lr": 0.01, "beta1": 0.9})
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO tuner_runs (id, trial_id, study_id, task, optimizer, params, params_hash,"
            " lr, seed, status, final_metric, steps, wall_seconds, optimizer_state_bytes,"
            " param_count, device, versions, created_at, trajectory, options, stopped_early)"
            " VALUES (3, 1, 1, 'quadratic', 'adamw', :params, :key, 0.01, 2, 'complete', 0.1,"
            " 5, 0.1, 800, 100, 'cpu', '{}', '2025-01-02 00:00:00', '[[1.0, 1.0], [0.5, 0.25]]',"
            " '{\"budget\": 5}', false)"
        ), {"params": '{"lr": 0.01, "beta1": 0.9}', "key": key})
    engine.dispose()
    stats = {row[1]: row for row in _runs_curves_and_stats(database_url)[2]}
    assert stats[key][2:5] == (2, 2, 0) and stats[key][5] == pytest.approx(0.4)


def test_downgrade_from_0005_to_0004_drops_only_the_new_columns(database_url):
    populated_at_first_revision(database_url)
    upgrade(database_url, "0005")
    before = _runs_curves_and_stats(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0004")
        connection.commit()
        names = {c["name"] for c in inspect(connection).get_columns("tuner_runs")}
    engine.dispose()
    assert schema_state(database_url).revision == "0004"
    assert not names & {"trajectory", "options", "stopped_early"}
    assert _runs_curves_and_stats(database_url) == before  # no rebuild: nothing cascaded away
    engine = make_engine(database_url)
    with engine.begin() as connection:  # and the triggers are still there
        connection.execute(text("DELETE FROM tuner_runs WHERE id = 2"))
    engine.dispose()
    stats = _runs_curves_and_stats(database_url)[2]
    assert sum(row[2] for row in stats) == 1


def test_downgrade_and_upgrade_again_keep_the_rows_on_sqlite(sqlite_url):
    populated_at_first_revision(sqlite_url)
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        command.downgrade(alembic_config(connection), "0001")
        connection.commit()
    engine.dispose()
    assert schema_state(sqlite_url).revision == "0001"
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tuner_runs")).scalar() == 2
        assert connection.execute(text("SELECT count(*) FROM tuner_curve_points")).scalar() == 3
        assert connection.execute(text("SELECT lr FROM tuner_runs WHERE id = 1")).scalar() == 0.01
    engine.dispose()


def test_an_older_schema_is_refused_and_left_untouched(sqlite_url):
    populated_at_first_revision(sqlite_url)
    path = sqlite_file(sqlite_url)
    before = path.read_bytes()
    for create in (True, False):
        with pytest.raises(SchemaError) as caught:
            open_store(sqlite_url, create=create)
        assert str(caught.value) == (
            f"database at {sqlite_url} is at schema revision 0001, this tuner needs "
            f"{HEAD_REVISION}: run `tuner db upgrade`"
        )
    result = CliRunner().invoke(cli, ["db", "current", "--db", sqlite_url])
    assert result.exit_code == 0 and "run `tuner db upgrade`" in result.output
    assert path.read_bytes() == before
    assert schema_state(sqlite_url).revision == "0001"


def test_a_newer_schema_names_the_tuner_it_needs(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
        connection.execute(
            text("UPDATE tuner_meta SET value = '9.1' WHERE key = 'min_tuner_version'")
        )
    engine.dispose()
    with pytest.raises(SchemaError, match=r"revision 0099, newer than this tuner .* tuner 9\.1"):
        open_store(database_url)
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", database_url])
    assert result.exit_code == 1
    assert "needs tuner 9.1 or newer" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert schema_state(database_url).revision == "0099"


def test_cli_upgrade_then_current(sqlite_url):
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "upgrade", "--db", sqlite_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"to {HEAD_REVISION}" in result.output
    result = runner.invoke(cli, ["db", "current", "--db", sqlite_url], catch_exceptions=False)
    assert result.output.strip() == f"{sqlite_url}: schema revision {HEAD_REVISION} (head)"
    result = runner.invoke(cli, ["db", "current", "--db", sqlite_url, "--json"])
    assert json.loads(result.output)["revision"] == HEAD_REVISION
    result = runner.invoke(cli, ["db", "upgrade", "--db", sqlite_url], catch_exceptions=False)
    assert "already at schema revision" in result.output


def test_cli_reads_tuner_db_and_masks_passwords(monkeypatch):
    monkeypatch.setenv("TUNER_DB", "postgresql://user:secret@127.0.0.1:1/x")
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "url"]).output.strip() == (
        "postgresql+psycopg://user:***@127.0.0.1:1/x")
    result = runner.invoke(cli, ["db", "current"])
    assert result.exit_code == 1 and "secret" not in result.output
    assert result.output.startswith("Error: cannot connect to the database at")
    assert len(result.output.strip().splitlines()) == 1


def test_concurrent_upgrades_of_one_new_database(sqlite_url):
    code = "import sys; from tuner.store import upgrade; print(upgrade(sys.argv[1]))"
    workers = [subprocess.Popen([sys.executable, "-c", code, sqlite_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    outcomes = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outcomes
    assert sum("None" in out for out, _ in outcomes) == 1  # exactly one created the schema
    assert schema_state(sqlite_url).revision == HEAD_REVISION


def _optuna_study(url: str, name: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, study_name=name)
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=2)


def _optuna_cli_lists(url: str, name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from optuna.cli import main; sys.exit(main())",
         "studies", "--storage", url, "-f", "json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [s["name"] for s in json.loads(result.stdout)] == [name]


def test_optuna_first_then_tuner(database_url):
    _optuna_study(database_url, "optuna-first")
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", database_url],
                                catch_exceptions=False)
    assert result.exit_code == 0 and "from an empty schema" in result.output
    _optuna_cli_lists(database_url, "optuna-first")
    tables = set(inspect(create_engine(database_url)).get_table_names())
    assert {"alembic_version", VERSION_TABLE, "studies", "trials", "tuner_runs"} <= tables


def test_tuner_first_then_optuna(database_url):
    open_store(database_url).dispose()
    _optuna_study(database_url, "tuner-first")
    _optuna_cli_lists(database_url, "tuner-first")
    assert schema_state(database_url).state == "current"
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", database_url],
                                catch_exceptions=False)
    assert "already at schema revision" in result.output


def test_unversioned_tuner_tables_are_refused(sqlite_url):
    engine = create_engine(sqlite_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    with pytest.raises(StoreError, match="has tuner tables but no tuner_alembic_version row"):
        open_store(sqlite_url)


# -- 0006: task records, the configuration key, measured parameter bytes, trial origins -------


def _optuna_trials_of_an_old_study(url: str) -> list[int]:
    """Optuna's side of study 'old' as the driver before 0006 left it: a study per optimizer
    with the task, metric and direction, its recommended trial marked, then two plain trials.
    Returns the three Optuna trial ids."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, study_name="tuner/old/adamw", direction="minimize")
    for key, value in (("tuner_study", "old"), ("task", "quadratic"), ("metric", "loss")):
        study.set_user_attr(key, value)
    study.enqueue_trial({}, user_attrs={"recommended": True})
    for _ in range(3):
        study.tell(study.ask(), 0.3)
    engine = make_engine(url)
    with engine.connect() as connection:
        ids = connection.execute(text(
            "SELECT t.trial_id FROM trials t JOIN studies s ON s.study_id = t.study_id"
            " WHERE s.study_name = 'tuner/old/adamw' ORDER BY t.number"
        )).scalars().all()
    engine.dispose()
    return list(ids)


RUN_AT_0005 = (
    "INSERT INTO tuner_runs (id, trial_id, study_id, task, optimizer, params, params_hash, lr,"
    " seed, status, final_metric, steps, wall_seconds, optimizer_state_bytes, param_count,"
    " device, versions, created_at, options) VALUES (:id, :trial, 1, 'quadratic', 'adamw',"
    " :params, :key, 0.01, 0, 'complete', :final, 100, 0.1, 800, 100, 'cpu', '{}',"
    " '2025-01-02 00:00:00', :options)"
)
PARAMS = {"lr": 0.01, "beta1": 0.9}


def populated_at_0005(url: str) -> list[int]:
    """The seed rows, three trials (slot 0 twice: a failed first attempt and its retry) and
    two runs of one params set under budgets 100 and 200, at revision 0005."""
    populated_at_first_revision(url)
    optuna_ids = _optuna_trials_of_an_old_study(url)
    upgrade(url, "0005")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE tuner_trials SET slot = 0, status = 'failed',"
                                " optuna_trial_id = :t WHERE id = 1"), {"t": optuna_ids[0]})
        for row_id, slot, optuna_id in ((2, 1, optuna_ids[1]), (3, 0, optuna_ids[2])):
            connection.execute(text(
                "INSERT INTO tuner_trials (id, study_id, optimizer, optuna_study_name,"
                " optuna_trial_number, optuna_trial_id, params, status, started_at, slot)"
                " VALUES (:id, 1, 'adamw', 'tuner/old/adamw', :id, :t, '{}', 'complete',"
                " '2025-01-02 00:00:00', :slot)"
            ), {"id": row_id, "t": optuna_id, "slot": slot})
        for run_id, trial, budget, final in ((3, 2, 100, 0.2), (4, 3, 200, 0.1)):
            connection.execute(text(RUN_AT_0005), {
                "id": run_id, "trial": trial, "params": json.dumps(PARAMS),
                "key": params_hash(PARAMS), "final": final,
                "options": json.dumps({"budget": budget, "schedule": "constant",
                                       "device": "cpu", "gamma": 0.1}),
            })
    engine.dispose()
    return optuna_ids


def _stats_0006(url: str) -> dict[str, tuple]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT config_hash, runs, complete, diverged, metric_sum, metric_mean,"
            " state_measured, state_multiple FROM tuner_config_stats"
        )).all()
    engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_a_populated_0005_store_upgrades_to_0006_keeping_runs_stats_and_advice(database_url):
    from tuner.advice import best
    from tuner.store import config_hash, get_task, record_run
    from tuner.store.queries import Scope, recommended_configs
    from tuner.training.loop import RunResult

    populated_at_0005(database_url)
    before = _runs_curves_and_stats(database_url)
    assert sum(row[2] for row in before[2]) == 4
    assert upgrade(database_url) == ("0005", HEAD_REVISION)
    after = _runs_curves_and_stats_0006(database_url)
    assert after[:2] == before[:2]  # every run and curve point kept

    engine = make_engine(database_url)
    with engine.connect() as connection:
        runs = connection.execute(text(
            "SELECT id, params, options, params_hash, config_hash, param_bytes FROM tuner_runs"
            " ORDER BY id"
        )).all()
        origins = dict(connection.execute(text("SELECT id, origin FROM tuner_trials")).all())
    engine.dispose()
    for run in runs:
        params = run.params if isinstance(run.params, dict) else json.loads(run.params)
        options = run.options if not isinstance(run.options, str) else json.loads(run.options)
        assert run.config_hash == config_hash(params, options)
        assert run.param_bytes == 400  # 100 float32 parameters
    by_id = {run.id: run for run in runs}
    assert by_id[3].params_hash == by_id[4].params_hash  # one params set...
    assert by_id[3].config_hash != by_id[4].config_hash  # ...under two budgets
    assert by_id[1].config_hash != by_id[1].params_hash  # the key says "no options recorded"
    assert origins == {1: "recommended", 2: "sampled", 3: "recommended"}  # 3 retried slot 0

    stats = _stats_0006(database_url)
    assert sum(row[0] for row in stats.values()) == 4
    assert stats[by_id[4].config_hash][:3] == (1, 1, 0)
    assert stats[by_id[4].config_hash][4] == pytest.approx(0.1)
    assert stats[by_id[4].config_hash][5:] == (1, pytest.approx(2.0))  # 800 / 400 bytes

    store = open_store(database_url, create=False)
    task = get_task(store, "quadratic")  # Optuna said loss/minimize; the plugin kind/target
    assert (task.metric, task.direction, task.kind, task.target) == (
        "loss", "minimize", "analytic", pytest.approx(1e-2))
    ranking = best("quadratic", db=store)  # four runs under three protocols (budgets)
    assert ranking.protocol.budget == 200 and len(ranking.other_protocols) == 2
    adamw = ranking.standing("adamw")
    assert (adamw.trials, adamw.runs, adamw.diverged) == (1, 1, 0)
    assert adamw.mean == pytest.approx(0.1) and adamw.training["budget"] == 200
    assert adamw.state_multiple == pytest.approx(2.0)
    defaults = {c.config_hash for c in recommended_configs(store, Scope("quadratic"))["adamw"]}
    assert defaults == {by_id[1].config_hash, by_id[2].config_hash, by_id[4].config_hash}

    # the new triggers count a run recorded after the upgrade under its configuration key
    if store.engine.dialect.name == "postgresql":  # the seed rows set their ids by hand
        with store.engine.begin() as connection:
            connection.execute(text("SELECT setval(pg_get_serial_sequence('tuner_runs', 'id'),"
                                    " (SELECT max(id) FROM tuner_runs))"))
    record_run(store, 3, RunResult(
        task="quadratic", optimizer="adamw", params=PARAMS, seed=1, status="complete",
        final_metric=0.3, best_metric=0.3, options={"budget": 200}, param_count=100,
        optimizer_state_bytes=800,
    ))
    adamw = best("quadratic", db=store).standing("adamw")
    assert (adamw.seeds, adamw.trials) == (2, 1) and adamw.mean == pytest.approx(0.2)
    store.dispose()


def _runs_curves_and_stats_0006(url: str) -> tuple[list, int]:
    engine = make_engine(url)
    with engine.connect() as connection:
        runs = connection.execute(
            text("SELECT id, seed, status, final_metric, lr FROM tuner_runs ORDER BY id")
        ).all()
        curve = connection.execute(text("SELECT count(*) FROM tuner_curve_points")).scalar()
    engine.dispose()
    return [tuple(r) for r in runs], curve


def test_downgrade_from_0006_restores_the_0005_statistics(database_url):
    populated_at_0005(database_url)
    before = _runs_curves_and_stats(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0005")
        connection.commit()
        names = {c["name"] for c in inspect(connection).get_columns("tuner_runs")}
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert schema_state(database_url).revision == "0005"
    assert not names & {"config_hash", "param_bytes"} and "tuner_tasks" not in tables
    assert _runs_curves_and_stats(database_url) == before  # same rows, same params_hash sums
    engine = make_engine(database_url)
    with engine.begin() as connection:  # and the 0004 triggers are back
        connection.execute(text("DELETE FROM tuner_runs WHERE id = 4"))
    engine.dispose()
    assert sum(row[2] for row in _runs_curves_and_stats(database_url)[2]) == 3
    assert upgrade(database_url) == ("0005", HEAD_REVISION)  # and up again


def test_0006_fills_task_records_without_the_task_plugins(sqlite_url, tmp_path):
    """Without the task plugins, metric and direction still come from Optuna's tables; a task
    nothing tells about gets no record (advice then says so), and the upgrade succeeds."""
    populated_at_0005(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:  # a run of a task no Optuna study and no plugin knows
        connection.execute(text(
            "INSERT INTO tuner_runs (id, task, optimizer, params, seed, status, steps,"
            " wall_seconds, optimizer_state_bytes, param_count, device, versions, created_at)"
            " VALUES (9, 'mystery', 'sgd', '{}', 0, 'complete', 1, 0.1, 0, 1, 'cpu', '{}',"
            " '2025-01-02 00:00:00')"
        ))
    engine.dispose()
    environment = {**os.environ, "TUNER_PLUGINS": "sign"}  # an optimizer plugin: no tasks
    result = subprocess.run(
        [sys.executable, "-m", "tuner", "db", "upgrade", "--db", sqlite_url],
        capture_output=True, text=True, timeout=300, env=environment,
    )
    assert result.returncode == 0, result.stderr
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        tasks = connection.execute(text(
            "SELECT name, kind, metric, direction, target FROM tuner_tasks")).all()
    engine.dispose()
    assert [tuple(t) for t in tasks] == [("quadratic", None, "loss", "minimize", None)]


def test_0012_records_old_runs_as_step_sizes_and_downgrades_in_place(database_url):
    """Runs recorded before 0012 were all of step-size optimizers: the new column says so; a
    run recorded after keeps its own meaning; the downgrade drops the column and its index and
    keeps every row."""
    from tuner.store import record_run
    from tuner.training.loop import RunResult

    populated_at_first_revision(database_url)
    upgrade(database_url, "0011")
    before = _runs_curves_and_stats_0006(database_url)
    assert upgrade(database_url, "0012") == ("0011", "0012")
    assert _runs_curves_and_stats_0006(database_url) == before
    upgrade(database_url)  # a store opens at the head revision only
    store = open_store(database_url, create=False)
    if store.engine.dialect.name == "postgresql":  # the seed rows set their ids by hand
        with store.engine.begin() as connection:
            connection.execute(text("SELECT setval(pg_get_serial_sequence('tuner_runs', 'id'),"
                                    " (SELECT max(id) FROM tuner_runs))"))
    result = RunResult(task="quadratic", optimizer="prodigy", params={"lr": 1.0}, seed=0,
                       status="complete", final_metric=0.2, best_metric=0.2, param_count=100)
    result.lr_meaning = "multiplier"
    record_run(store, None, result)
    store.dispose()
    engine = make_engine(database_url)
    with engine.connect() as connection:
        meanings = connection.execute(
            text("SELECT id, lr_meaning FROM tuner_runs ORDER BY id")).all()
        indexes = {i["name"] for i in inspect(connection).get_indexes("tuner_runs")}
        command.downgrade(alembic_config(connection), "0011")
        connection.commit()
        names = {c["name"] for c in inspect(connection).get_columns("tuner_runs")}
        after = {i["name"] for i in inspect(connection).get_indexes("tuner_runs")}
        count = connection.execute(text("SELECT count(*) FROM tuner_runs")).scalar()
    engine.dispose()
    assert [tuple(row) for row in meanings] == [
        (1, "step size"), (2, "step size"), (3, "multiplier")]
    assert "ix_tuner_runs_task_optimizer_lr_meaning" in indexes
    assert "lr_meaning" not in names and "ix_tuner_runs_task_optimizer_lr_meaning" not in after
    assert count == 3
    assert upgrade(database_url) == ("0011", HEAD_REVISION)


def test_0013_adds_an_empty_note_to_old_studies_and_downgrades_in_place(database_url):
    """A study written before 0013 has no note; one kept afterwards reads back; the downgrade
    drops the column and keeps the study."""
    from tuner.store.studies import set_study_note, study_note

    populated_at_first_revision(database_url)
    upgrade(database_url, "0012")
    assert upgrade(database_url, "0013") == ("0012", "0013")
    store = open_store(database_url, create=False)
    try:
        assert study_note(store, "old") == ""
        set_study_note(store, "old", "seeds 0-1 ran on the old GPU")
        assert study_note(store, "old") == "seeds 0-1 ran on the old GPU"
    finally:
        store.dispose()
    engine = make_engine(database_url)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0012")
        connection.commit()
        names = {c["name"] for c in inspect(connection).get_columns("tuner_studies")}
        study = connection.execute(text("SELECT name, status FROM tuner_studies")).one()
    engine.dispose()
    assert "note" not in names and tuple(study) == ("old", "finished")
    assert upgrade(database_url) == ("0012", HEAD_REVISION)
