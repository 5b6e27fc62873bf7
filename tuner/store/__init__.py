"""tuner's SQL store: every study, trial, run and curve, on SQLite or PostgreSQL.

Open it with :func:`open_store` (URL from ``--db``, ``$TUNER_DB`` or the default SQLite file),
record a run with :func:`record_run`, read with the query modules or ORM sessions::

    from tuner.store import Run, open_store, record_run

    store = open_store()                        # creates the schema on an empty database
    run_id = record_run(store, None, result)    # one transaction: the run and its curve
    with store.session() as session:
        runs = session.scalars(select(Run).where(Run.task == "quadratic")).all()

``open_store(url, readonly=True)`` opens a store that is only read (an unwritable file, a
PostgreSQL role that may only SELECT). All of tuner's SQL is here, one module a job:

* :mod:`~tuner.store.database`: URLs, engines, schema checks and upgrades, Optuna's storage;
* :mod:`~tuner.store.models`: the tables; :mod:`~tuner.store.target`: whose transaction a
  function writes in; :mod:`~tuner.store.retry`: retries of transient errors;
* :mod:`~tuner.store.studies`: a study written, read back (:func:`get_study`, a
  :class:`~tuner.study.spec.StudySpec`), extended, its progress, export, stop and delete;
* :mod:`~tuner.store.claims`: the driver's trials: claims, heartbeats, reaping, recording and
  closing, reuse of finished seeds;
* :mod:`~tuner.store.runs`: one run and its curve recorded (:func:`record_run`), in a trial's
  transaction or with no trial;
* :mod:`~tuner.store.tasks`: what advice needs of a task, recorded at study creation;
* :mod:`~tuner.store.config_key`: the configuration key (:func:`config_hash`);
* :mod:`~tuner.store.queries`, :mod:`~tuner.store.observations`,
  :mod:`~tuner.store.broken_task`: every read of advice and reports;
* :mod:`~tuner.store.browse`: the service's paged reads;
* :mod:`~tuner.store.values`: the one rule for non-finite numbers.

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
from tuner.store.runs import record_run, run_row
from tuner.store.studies import get_study
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
    "default_database_path",
    "default_database_url",
    "display_url",
    "finite_or_none",
    "get_study",
    "get_task",
    "get_task_by_id",
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
    "training_options",
    "upgrade",
]
