"""The SQL store on real databases: URLs, schema creation, recording runs atomically."""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from study_rows import claim, write

from tuner.store import (
    HEAD_REVISION,
    CurveRow,
    Run,
    SchemaError,
    StoreError,
    TaskRecord,
    Trial,
    default_database_path,
    display_url,
    get_study,
    open_store,
    optuna_storage,
    params_hash,
    record_run,
    resolve_url,
    schema_state,
)
from tuner.store.claims import close_trial
from tuner.training.loop import CurvePoint, RunResult

QUADRATIC = TaskRecord("quadratic", "analytic", "loss", "minimize", 1e-2)


def make_result(seed: int = 0, points: int = 20, **changes) -> RunResult:
    values = dict(
        task="quadratic",
        optimizer="adamw",
        params={"lr": 3e-3, "weight_decay": 0.01},
        seed=seed,
        status="complete",
        final_metric=0.25,
        best_metric=0.2,
        curve=[CurvePoint(i * 10, 1.0 / (i + 1), 0.5 - i / 100, 3e-3, i * 0.01)
               for i in range(points)],
        steps=points * 10,
        steps_to_target=50,
        seconds_to_target=0.05,
        wall_seconds=0.2,
        peak_memory_bytes=12345,
        optimizer_state_bytes=800,
        param_count=100,
        device="cpu",
        versions={"torch": "2.13.0", "tuner": "0.1.0", "plugin": "1.2"},
    )
    values.update(changes)
    return RunResult(**values)


def new_trial(store, name: str = "s1") -> int:
    """A study written as ``tuner study create`` writes it, and its first slot claimed."""
    spec = write(store, QUADRATIC, name, ["adamw", "sgd"], trials=4, seeds=3, budget=100,
                 ranges={"adamw": {"lr": [1e-4, 1e-1]}})
    return claim(store, spec, "adamw", {"lr": 3e-3, "weight_decay": 0.01},
                 worker_host="host-a", worker_pid=123)


def test_url_resolution(monkeypatch, tmp_path):
    assert default_database_path() == tmp_path / "xdg-data" / "tuner" / "tuner.db"
    assert resolve_url(None) == f"sqlite:///{default_database_path()}"
    monkeypatch.setenv("TUNER_DB", "sqlite:///from-env.db")
    assert resolve_url(None) == "sqlite:///from-env.db"
    assert resolve_url("sqlite:///explicit.db") == "sqlite:///explicit.db"
    assert resolve_url("postgresql://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert display_url("postgresql://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    with pytest.raises(StoreError, match="not a database URL"):
        resolve_url("no-scheme-here")


def test_default_database_is_created_in_the_data_directory():
    store = open_store()
    try:
        assert default_database_path().exists()
        assert schema_state().revision == HEAD_REVISION
    finally:
        store.dispose()


def test_open_creates_an_empty_sqlite_database_in_wal_mode(sqlite_url):
    store = open_store(sqlite_url)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    store.dispose()
    state = schema_state(sqlite_url)
    assert (state.state, state.revision) == ("current", HEAD_REVISION)
    assert state.meta["tuner_version"] and state.meta["schema_revision"] == HEAD_REVISION


def test_open_without_create_writes_nothing(sqlite_url):
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    with pytest.raises(SchemaError, match=r"no tuner tables: run `tuner db upgrade`"):
        open_store(sqlite_url, create=False)
    assert not path.exists()


def test_unreachable_server_is_one_line_without_the_password():
    url = "postgresql://user:secret@127.0.0.1:1/x"
    for attempt in (lambda: open_store(url), lambda: schema_state(url)):
        with pytest.raises(StoreError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and "secret" not in message
        assert "cannot connect" in message and "user:***@127.0.0.1:1/x" in message


def test_record_run_stores_every_field_and_the_curve(database_url):
    store = open_store(database_url)
    trial_id = new_trial(store)
    options = {"schedule": "cosine", "budget": 300, "clip_norm": None, "min_delta": math.inf}
    result = make_result(seed=1, points=30, options=options, stopped_early=True,
                         trajectory=[(1.5, -2.0), (0.5, math.nan), (math.inf, 0.25)])
    run_id = record_run(store, trial_id, result, space_hash="abc123")
    plain_id = record_run(store, trial_id, make_result(seed=2))  # no path, no options
    assert close_trial(store, trial_id, "complete", 0.25)
    with store.session() as session:
        run = session.get(Run, run_id)
        assert run.trial_id == trial_id and run.study_id == run.trial.study_id
        assert (run.task, run.optimizer, run.seed, run.status) == ("quadratic", "adamw", 1,
                                                                   "complete")
        assert run.lr == pytest.approx(3e-3)
        assert run.params == {"lr": 3e-3, "weight_decay": 0.01}
        assert run.params_hash == params_hash(result.params)
        assert (run.plugin_version, run.space_hash, run.torch_version) == ("1.2", "abc123",
                                                                           "2.13.0")
        assert (run.final_metric, run.best_metric) == (0.25, 0.2)
        assert (run.steps, run.steps_to_target, run.seconds_to_target) == (300, 50, 0.05)
        assert (run.peak_memory_bytes, run.optimizer_state_bytes, run.param_count) == (
            12345, 800, 100)
        assert run.versions["tuner"] == "0.1.0" and run.device == "cpu"
        assert [p.step for p in run.curve] == [i * 10 for i in range(30)]
        assert run.curve[3].train_loss == pytest.approx(0.25)
        # pairs as lists; non-finite numbers as null, which PostgreSQL's JSON accepts
        assert run.trajectory == [[1.5, -2.0], [0.5, None], [None, 0.25]]
        assert run.options == {"schedule": "cosine", "budget": 300, "clip_norm": None,
                               "min_delta": None}
        assert run.stopped_early is True
        plain = session.get(Run, plain_id)
        assert (plain.trajectory, plain.options, plain.stopped_early) == (None, None, False)
        unrecorded = session.scalar(  # SQL NULL, not the JSON text 'null'
            select(func.count()).select_from(Run)
            .where(Run.trajectory.is_(None), Run.options.is_(None))
        )
        assert unrecorded == 1
        trial = session.get(Trial, trial_id)
        assert (trial.status, trial.value, trial.worker_host) == ("complete", 0.25, "host-a")
        assert trial.finished_at is not None
    assert get_study(store, "s1").ranges["adamw"]["lr"] == [1e-4, 0.1]
    store.dispose()


def test_diverged_run_keeps_its_curve_with_non_finite_values_as_null(database_url):
    """One rule on both databases: NaN and both infinities are stored as NULL / JSON null."""
    store = open_store(database_url)
    curve = [CurvePoint(0, 1.0, 0.5, 1.0, 0.0), CurvePoint(10, math.nan, math.inf, -math.inf, 0.1)]
    result = make_result(status="diverged", final_metric=None, best_metric=math.inf, curve=curve,
                         error="loss became nan at step 10", params={"lr": 1.0, "eps": math.nan},
                         seconds_to_target=-math.inf, trajectory=[(1.0, 2.0), (math.inf, 0.5)])
    run_id = record_run(store, None, result)
    with store.session() as session:
        run = session.get(Run, run_id)
        assert run.status == "diverged" and run.final_metric is None and run.study_id is None
        assert (run.best_metric, run.seconds_to_target) == (None, None)
        point = run.curve[1]
        assert (point.train_loss, point.metric, point.lr) == (None, None, None)
        assert run.params == {"lr": 1.0, "eps": None}
        assert run.trajectory == [[1.0, 2.0], [None, 0.5]]
        assert run.error.startswith("loss became nan")
    store.dispose()


def test_the_one_rule_for_values():
    from tuner.store.values import finite_or_none, plain_json

    assert [finite_or_none(v) for v in (None, 1, 2.5, math.nan, math.inf, -math.inf)] == [
        None, 1.0, 2.5, None, None, None]
    assert plain_json({1: (math.inf, [math.nan, 0.5]), "k": {"x": -math.inf, "y": True}}) == {
        "1": [None, [None, 0.5]], "k": {"x": None, "y": True}}


def test_record_run_is_one_transaction(database_url):
    """A curve that cannot be stored leaves no run row behind, on SQLite and PostgreSQL."""
    store = open_store(database_url)
    trial_id = new_trial(store)
    broken = make_result(curve=[CurvePoint(0, 1.0, 0.5, 1e-3, 0.0),
                                CurvePoint(None, 1.0, 0.5, 1e-3, 0.1)])
    with pytest.raises(StoreError, match="recording the adamw run"):
        record_run(store, trial_id, broken)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert session.scalar(select(func.count()).select_from(CurveRow)) == 0
    record_run(store, trial_id, make_result())
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1
        assert session.scalar(select(func.count()).select_from(CurveRow)) == 20
    store.dispose()


def test_record_run_joins_a_session_transaction(sqlite_url):
    store = open_store(sqlite_url)
    trial_id = new_trial(store)
    with store.session() as session:
        record_run(session, trial_id, make_result(seed=0))
        record_run(session, trial_id, make_result(seed=1))
        session.rollback()
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
    with store.session() as session, session.begin():
        record_run(session, trial_id, make_result(seed=2))
    with store.session() as session:
        assert session.scalars(select(Run.seed)).all() == [2]
    store.dispose()


def test_bad_status_and_duplicate_study_are_one_line_errors(sqlite_url):
    store = open_store(sqlite_url)
    new_trial(store)
    with pytest.raises(StoreError, match="a study named 's1' already exists"):
        new_trial(store)
    with pytest.raises(StoreError, match="unknown run status 'exploded'"):
        record_run(store, None, make_result(status="exploded"))
    with pytest.raises(Exception, match=r"no study named 'nope' \(studies: s1\)"):
        get_study(store, "nope")
    store.dispose()


def test_deleting_a_study_cascades_to_trials_runs_and_curves(database_url):
    store = open_store(database_url)
    trial_id = new_trial(store)
    record_run(store, trial_id, make_result())
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM tuner_studies"))
    with store.session() as session:
        for model in (Trial, Run, CurveRow):
            assert session.scalar(select(func.count()).select_from(model)) == 0
    store.dispose()


def _record_many(url: str, trial_id: int, worker: int, count: int) -> None:
    store = open_store(url, create=False)
    for seed in range(count):
        record_run(store, trial_id, make_result(seed=worker * 1000 + seed, points=10))
    store.dispose()


def test_several_processes_record_into_one_sqlite_file(sqlite_url):
    store = open_store(sqlite_url)
    trial_id = new_trial(store)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_record_many, args=(sqlite_url, trial_id, w, 25))
               for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 100
        assert session.scalar(select(func.count()).select_from(CurveRow)) == 1000
    store.dispose()


def test_optuna_storage_shares_the_database(database_url):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_store(database_url)
    storage = optuna_storage(database_url, heartbeat_interval=60)
    assert storage.heartbeat_interval == 60
    study = optuna.create_study(storage=storage, study_name="s1:adamw")
    study.optimize(lambda trial: (trial.suggest_float("lr", 1e-4, 1e-1, log=True) - 0.01) ** 2,
                   n_trials=3)
    trial_id = new_trial(store)
    record_run(store, trial_id, make_result())
    assert len(optuna.load_study(study_name="s1:adamw", storage=database_url).trials) == 3
    assert schema_state(database_url).state == "current"
    storage.engine.dispose()
    store.dispose()


def test_a_trial_records_where_its_configuration_came_from(sqlite_url):
    from tuner.store import TRIAL_ORIGINS

    store = open_store(sqlite_url)
    spec = write(store, QUADRATIC, "o", ["sgd"], trials=2)
    trial_id = claim(store, spec, "sgd", {"lr": 0.1}, slot=0, origin="recommended")
    with store.session() as session:
        assert (session.get(Trial, trial_id).origin, session.get(Trial, trial_id).slot) == (
            "recommended", 0)
    assert TRIAL_ORIGINS == ("recommended", "warm_start", "sampled", "more_seeds")
    with pytest.raises(StoreError, match="unknown trial origin 'guessed'"):
        claim(store, spec, "sgd", {}, slot=1, origin="guessed")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Trial)) == 1
    store.dispose()


def test_postgresql_sessions_keep_alive_so_a_cut_off_host_frees_its_locks(postgres_url: str):
    """Both ends of every PostgreSQL connection (tuner's, Optuna's, the read-only one) probe
    an idle link, so a host cut off mid-transaction is found dead before the grace period
    ends and the server frees its locks (tuner.store.database.KEEPALIVE_SECONDS)."""
    from sqlalchemy import text

    from tuner.store import open_store
    from tuner.store.database import KEEPALIVE_SECONDS, make_engine, optuna_storage

    idle, interval, count = KEEPALIVE_SECONDS
    assert idle + interval * count < 60  # found dead within the default grace period

    def server_side(engine) -> tuple[str, ...]:
        with engine.connect() as connection:
            return tuple(connection.execute(text(f"SHOW {name}")).scalar() for name in
                         ("tcp_keepalives_idle", "tcp_keepalives_interval",
                          "tcp_keepalives_count", "tcp_user_timeout"))

    unacknowledged_ms = str(1000 * (idle + interval * count))
    expected = (*(str(value) for value in KEEPALIVE_SECONDS), unacknowledged_ms)
    store = open_store(postgres_url)
    readonly = make_engine(postgres_url, readonly=True)
    storage = optuna_storage(postgres_url)
    try:
        for engine in (store.engine, readonly, storage.engine):
            assert server_side(engine) == expected
            with engine.connect() as connection:  # and libpq's end of the connection
                info = connection.connection.driver_connection.info
                assert info.get_parameters()["keepalives_idle"] == str(idle)
        with readonly.connect() as connection:
            assert connection.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
    finally:
        store.dispose()
        readonly.dispose()
        storage.engine.dispose()


def test_an_upgrade_told_at_once_that_sqlite_is_locked_tries_again(tmp_path, monkeypatch):
    """SQLite reports some lock conflicts without waiting out its busy timeout; an upgrade so
    told tries again (it is safe to: it reads its starting revision under its write lock) and
    makes the store, where it used to fail the command."""
    from tuner.store import database

    real, calls = database._upgrade_once, []

    def locked_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise database._SqliteLocked()
        return real(*args)

    monkeypatch.setattr(database, "_upgrade_once", locked_once)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    before, after = database.upgrade(url)
    assert (before, after) == (None, database.HEAD_REVISION) and len(calls) == 2
    with database.open_store(url, create=False) as store:
        assert store.engine.dialect.name == "sqlite"
