"""tuner's SQL store: every study, trial, run and curve, on SQLite or PostgreSQL.

Open it with :func:`open_store` (URL from ``--db``, ``$TUNER_DB`` or the default SQLite file),
write with :func:`record_run` and friends, read with ORM sessions over the models::

    from tuner.store import Run, open_store, record_run

    store = open_store()                        # creates the schema on an empty database
    run_id = record_run(store, trial_id, result)  # one transaction: the run and its curve
    with store.session() as session:
        runs = session.scalars(select(Run).where(Run.task == "quadratic")).all()

``open_store(url, readonly=True)`` opens a store that is only read (an unwritable file, a
PostgreSQL role that may only SELECT). What advice needs of a task is its record
(:mod:`tuner.store.tasks`); a configuration is keyed by :func:`config_hash`
(:mod:`tuner.store.config_key`); every read of advice and reports is in
:mod:`tuner.store.queries`; non-finite numbers follow one rule (:mod:`tuner.store.values`).

Optuna shares the database: :func:`optuna_storage` gives its ``RDBStorage`` on the same URL.
Schema changes are alembic migrations (``tuner db upgrade`` / :func:`upgrade`).
"""

from __future__ import annotations

from tuner.store.config_key import (
    RESULT_OPTIONS,
    config_hash,
    config_key,
    training_options,
)
from tuner.store.database import (
    ENV_VAR,
    HEAD_REVISION,
    SCHEMA_REVISIONS,
    VERSION_TABLE,
    SchemaError,
    SchemaState,
    Store,
    StoreError,
    default_database_path,
    default_database_url,
    display_url,
    make_engine,
    open_store,
    optuna_storage,
    resolve_url,
    schema_problem,
    schema_state,
    upgrade,
)
from tuner.store.models import (
    RUN_STATUSES,
    TRIAL_ORIGINS,
    TRIAL_STATUSES,
    Base,
    ConfigStats,
    CurveRow,
    Meta,
    Run,
    Study,
    TaskRow,
    Trial,
    params_hash,
)
from tuner.store.records import (
    create_study,
    finish_trial,
    get_study,
    heartbeat_trial,
    record_run,
    run_row,
    set_study_status,
    start_trial,
)
from tuner.store.tasks import (
    TaskRecord,
    get_task,
    get_task_by_id,
    list_tasks,
    record_task,
)
from tuner.store.values import (
    finite_or_none,
    plain_json,
)

__all__ = [
    "ENV_VAR",
    "HEAD_REVISION",
    "RESULT_OPTIONS",
    "RUN_STATUSES",
    "SCHEMA_REVISIONS",
    "TRIAL_ORIGINS",
    "TRIAL_STATUSES",
    "VERSION_TABLE",
    "Base",
    "ConfigStats",
    "CurveRow",
    "Meta",
    "Run",
    "SchemaError",
    "SchemaState",
    "Store",
    "StoreError",
    "Study",
    "TaskRecord",
    "TaskRow",
    "Trial",
    "config_hash",
    "config_key",
    "create_study",
    "default_database_path",
    "default_database_url",
    "display_url",
    "finish_trial",
    "finite_or_none",
    "get_study",
    "get_task",
    "get_task_by_id",
    "heartbeat_trial",
    "list_tasks",
    "make_engine",
    "open_store",
    "optuna_storage",
    "params_hash",
    "plain_json",
    "record_run",
    "record_task",
    "resolve_url",
    "run_row",
    "schema_problem",
    "schema_state",
    "set_study_status",
    "start_trial",
    "training_options",
    "upgrade",
]
