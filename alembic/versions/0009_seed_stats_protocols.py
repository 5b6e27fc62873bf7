"""One observation per (configuration, seed), and the protocol each run was trained under.

* ``tuner_runs.protocol``: the key of the protocol (budget and its unit, and the result-changing
  training options the study held fixed: a frozen copy of
  :func:`tuner.store.config_key.protocol_hash`), filled in for every run from its options and
  its study's training options. ``tuner_protocols`` says what each key stands for.
* ``tuner_seed_stats``: one row per (task, optimizer, protocol, configuration, seed) with the
  sums of that seed's runs. A run of a (configuration, seed) that already has a run is a
  replay: it lands in the same row.
* ``tuner_config_stats`` is rebuilt keyed on (task, optimizer, protocol, config_hash) and is
  now *recomputed* from its configuration's seed rows at every change: ``metric_count`` counts
  seeds (observations), ``metric_sum``/``metric_sumsq``/``metric_mean`` are over the seeds'
  means, and ``replays``/``replay_sumsq`` keep the disagreement of replays of one seed
  (measurement noise) apart. Run counts (runs, complete, diverged, pruned, failed) and the
  state multiple stay sums over runs.

One trigger body per write of a run (SQLite and PostgreSQL): its seed row gets the run's
contribution (an UPSERT, or a subtraction and a delete at zero runs), then its configuration's
row is recomputed from the seed rows. On PostgreSQL the configuration's row is locked first, so
two workers recording seeds of one configuration at once are serialised and the second
recomputes with the first one's seed (each statement of the trigger sees what was committed
before it began).

The downgrade restores the 0008 statistics (keyed on configuration, summed over runs).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH_SIZE = 5000
_HAS_STATE = "{row}.status IN ('complete', 'pruned', 'diverged') AND {row}.param_bytes > 0"

# -- a frozen copy of tuner.store.config_key's protocol (keep identical) ---------------------

_RESULT_OPTIONS: dict[str, Any] = {
    "budget": None, "schedule": "constant", "warmup": 0, "step_size": None, "gamma": 0.1,
    "plateau_patience": 2, "clip_norm": None, "accumulate": 1, "patience": None,
    "min_delta": 0.0, "batch_size": None, "floor": 0.0, "decay_exclude": False,
    "precision": "float32",
}
_ONLY_WITH: dict[str, tuple[str, tuple[Any, ...]]] = {
    "step_size": ("schedule", ("step",)),
    "gamma": ("schedule", ("step", "plateau")),
    "plateau_patience": ("schedule", ("plateau",)),
    "floor": ("schedule", ("cosine", "linear")),
}


def _plain_json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(item) for item in value]
    return value


def _relevant(options: Mapping[str, Any]) -> dict[str, Any]:
    chosen = {}
    for name, baseline in _RESULT_OPTIONS.items():
        value = options.get(name, baseline)
        if value == baseline:
            continue
        if name in _ONLY_WITH:
            other, values = _ONLY_WITH[name]
            if options.get(other, _RESULT_OPTIONS[other]) not in values:
                continue
        if name == "min_delta" and options.get("patience") is None:
            continue
        chosen[name] = value
    return chosen


def _protocol(budget: Any, unit: str, options: Mapping[str, Any], tuned: set[str]) -> dict:
    fixed = {k: v for k, v in options.items() if k not in tuned and k != "budget"}
    return {"budget": None if budget is None else int(budget), "unit": unit,
            "training": _plain_json(_relevant(fixed))}


def _protocol_hash(key: Mapping[str, Any]) -> str:
    text = json.dumps(dict(key), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _run_protocol(options: Mapping[str, Any] | None, study: Mapping[str, Any] | None) -> dict:
    """A stored run's protocol: its study's nominal budget when the study kept the examples per
    run equal over a tuned batch size, else its own budget in steps; its fixed options."""
    options = dict(options or {})
    study = dict(study or {})
    training = study.get("training") or {}
    tuned = {name for name, value in training.items() if isinstance(value, Mapping)}
    if "batch_size" in tuned and (study.get("budget_unit") or "examples") == "examples":
        return _protocol(study.get("budget"), "examples", options, tuned)
    return _protocol(options.get("budget", study.get("budget")), "steps", options, tuned)


# -- the statistics and their triggers ------------------------------------------------------

_KEY = ("task", "optimizer", "protocol", "config_hash")
_WATCHED = ("task", "optimizer", "protocol", "config_hash", "seed", "lr", "status",
            "final_metric", "steps_to_target", "optimizer_state_bytes", "param_bytes")
_RUN_COUNTS = ("runs", "complete", "diverged", "pruned", "failed")


def _contribution(row: str, sign: str) -> dict[str, str]:
    """The SQL expressions of run ``row``'s contribution to its seed's row."""
    complete = f"{row}.status = 'complete'"
    measured = f"{complete} AND {row}.final_metric IS NOT NULL"
    reached = f"{complete} AND {row}.steps_to_target IS NOT NULL"
    has_state = _HAS_STATE.format(row=row)
    return {
        "runs": f"{sign}1",
        "complete": f"{sign}(CASE WHEN {complete} THEN 1 ELSE 0 END)",
        "diverged": f"{sign}(CASE WHEN {row}.status = 'diverged' THEN 1 ELSE 0 END)",
        "pruned": f"{sign}(CASE WHEN {row}.status = 'pruned' THEN 1 ELSE 0 END)",
        "failed": f"{sign}(CASE WHEN {row}.status = 'failed' THEN 1 ELSE 0 END)",
        "metric_count": f"{sign}(CASE WHEN {measured} THEN 1 ELSE 0 END)",
        "metric_sum": f"{sign}(CASE WHEN {measured} THEN {row}.final_metric ELSE 0.0 END)",
        "metric_sumsq": (f"{sign}(CASE WHEN {measured} THEN {row}.final_metric * "
                         f"{row}.final_metric ELSE 0.0 END)"),
        "reached": f"{sign}(CASE WHEN {reached} THEN 1 ELSE 0 END)",
        "steps_sum": f"{sign}(CASE WHEN {reached} THEN {row}.steps_to_target ELSE 0.0 END)",
        "state_measured": f"{sign}(CASE WHEN {has_state} THEN 1 ELSE 0 END)",
        "state_multiple_sum": (
            f"{sign}(CASE WHEN {has_state} THEN CAST({row}.optimizer_state_bytes AS DOUBLE "
            f"PRECISION) / {row}.param_bytes ELSE 0.0 END)"
        ),
    }


def _seed_key(row: str) -> list[str]:
    return [f"{row}.task", f"{row}.optimizer", f"COALESCE({row}.protocol, '')",
            f"COALESCE({row}.config_hash, '')", f"{row}.seed"]


def _where_config(row: str, prefix: str = "") -> str:
    values = _seed_key(row)[:4]
    return " AND ".join(f"{prefix}{name} = {value}" for name, value in zip(_KEY, values,
                                                                           strict=True))


def _add_seed(row: str) -> str:
    values = _contribution(row, "")
    columns = ", ".join(["task", "optimizer", "protocol", "config_hash", "seed", "lr", *values])
    selected = ", ".join([*_seed_key(row), f"{row}.lr", *values.values()])
    updates = [f"{name} = tuner_seed_stats.{name} + excluded.{name}" for name in values]
    updates.append("lr = COALESCE(tuner_seed_stats.lr, excluded.lr)")
    return (
        f"INSERT INTO tuner_seed_stats ({columns}) VALUES ({selected}) ON CONFLICT "
        f"(task, optimizer, protocol, config_hash, seed) DO UPDATE SET {', '.join(updates)}"
    )


def _remove_seed(row: str) -> list[str]:
    values = _contribution(row, "-")
    where = _where_config(row) + f" AND seed = {row}.seed"
    updates = ", ".join(f"{name} = {name} + {expression}" for name, expression in values.items())
    return [f"UPDATE tuner_seed_stats SET {updates} WHERE {where}",
            f"DELETE FROM tuner_seed_stats WHERE {where} AND runs <= 0"]


_SEED_MEAN = "(s.metric_sum / s.metric_count)"
_RECOMPUTED: dict[str, str] = {
    "lr": "MIN(s.lr)",
    **{name: f"SUM(s.{name})" for name in _RUN_COUNTS},
    "metric_count": "SUM(CASE WHEN s.metric_count > 0 THEN 1 ELSE 0 END)",
    "metric_sum": f"SUM(CASE WHEN s.metric_count > 0 THEN {_SEED_MEAN} ELSE 0.0 END)",
    "metric_sumsq": (f"SUM(CASE WHEN s.metric_count > 0 THEN {_SEED_MEAN} * {_SEED_MEAN} "
                     "ELSE 0.0 END)"),
    "metric_mean": (f"SUM(CASE WHEN s.metric_count > 0 THEN {_SEED_MEAN} END) / "
                    "NULLIF(SUM(CASE WHEN s.metric_count > 0 THEN 1 ELSE 0 END), 0)"),
    "replays": "SUM(CASE WHEN s.metric_count > 1 THEN s.metric_count - 1 ELSE 0 END)",
    "replay_sumsq": (
        "SUM(CASE WHEN s.metric_count > 1 AND s.metric_sumsq > s.metric_sum * "
        f"{_SEED_MEAN} THEN s.metric_sumsq - s.metric_sum * {_SEED_MEAN} ELSE 0.0 END)"
    ),
    "reached": "SUM(CASE WHEN s.reached > 0 THEN 1 ELSE 0 END)",
    "steps_sum": "SUM(CASE WHEN s.reached > 0 THEN s.steps_sum / s.reached ELSE 0.0 END)",
    "state_measured": "SUM(s.state_measured)",
    "state_multiple_sum": "SUM(s.state_multiple_sum)",
    "state_multiple": "SUM(s.state_multiple_sum) / NULLIF(SUM(s.state_measured), 0)",
}
"""Each column of a configuration's row, from its seed rows ``s``: run counts summed, the
metric over the seeds' means, and the replays' disagreement within their seeds."""


def _lock_config(row: str, lock: bool) -> list[str]:
    """Statements that make sure run ``row``'s configuration row exists (zeros until it is
    refreshed) and, on PostgreSQL, lock it for the rest of the transaction."""
    key_values = ", ".join(_seed_key(row)[:4])
    zeros = ", ".join("0" for _ in _RECOMPUTED if _ != "lr")
    columns = [name for name in _RECOMPUTED if name != "lr"]
    statements = [
        f"INSERT INTO tuner_config_stats ({', '.join(_KEY)}, {', '.join(columns)}) "
        f"VALUES ({key_values}, {zeros}) ON CONFLICT ({', '.join(_KEY)}) DO NOTHING",
    ]
    if lock:
        statements.append(
            f"PERFORM 1 FROM tuner_config_stats WHERE {_where_config(row)} FOR UPDATE")
    return statements


def _refresh_config(row: str) -> list[str]:
    """Statements that make run ``row``'s configuration row the aggregate of its seed rows,
    or delete it when none is left."""
    names = list(_RECOMPUTED)
    selected = ", ".join(_RECOMPUTED.values())
    seeds = f"SELECT 1 FROM tuner_seed_stats s WHERE {_where_config(row, 's.')}"
    return [
        f"DELETE FROM tuner_config_stats WHERE {_where_config(row)} AND NOT EXISTS ({seeds})",
        f"UPDATE tuner_config_stats SET ({', '.join(names)}) = (SELECT {selected} FROM "
        f"tuner_seed_stats s WHERE {_where_config(row, 's.')}) WHERE {_where_config(row)}",
    ]


def _on_remove(row: str, lock: bool) -> list[str]:
    return [*_lock_config(row, lock), *_remove_seed(row), *_refresh_config(row)]


def _on_add(row: str, lock: bool) -> list[str]:
    return [*_lock_config(row, lock), _add_seed(row), *_refresh_config(row)]


def _create_tables() -> None:
    counts = [*_RUN_COUNTS, "metric_count", "reached", "state_measured"]
    sums = ["metric_sum", "metric_sumsq", "steps_sum", "state_multiple_sum"]
    op.create_table(
        "tuner_seed_stats",
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("optimizer", sa.String(100), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("config_hash", sa.String(16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("lr", sa.Float(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in counts],
        *[sa.Column(name, sa.Float(), nullable=False) for name in sums],
        sa.PrimaryKeyConstraint(*_KEY, "seed", name="pk_tuner_seed_stats"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tuner_config_stats",
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("optimizer", sa.String(100), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("config_hash", sa.String(16), nullable=False),
        sa.Column("lr", sa.Float(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False)
          for name in [*counts, "replays"]],
        *[sa.Column(name, sa.Float(), nullable=False) for name in [*sums, "replay_sumsq"]],
        sa.Column("metric_mean", sa.Float(), nullable=True),
        sa.Column("state_multiple", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(*_KEY, name="pk_tuner_config_stats"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_tuner_config_stats_task_protocol_optimizer_lr", "tuner_config_stats",
                    ["task", "protocol", "optimizer", "lr"])
    op.create_index("ix_tuner_config_stats_task_protocol_optimizer_metric_mean",
                    "tuner_config_stats", ["task", "protocol", "optimizer", "metric_mean"])
    op.create_table(
        "tuner_protocols",
        sa.Column("key", sa.String(16), nullable=False),
        sa.Column("budget", sa.BigInteger(), nullable=True),
        sa.Column("unit", sa.String(10), nullable=False),
        sa.Column("training", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_tuner_protocols"),
    )


def _aggregate() -> None:
    """Fill the seed rows from every run, then the configuration rows from the seed rows."""
    values = _contribution("r", "")
    key = ", ".join(_seed_key("r"))
    op.execute(
        f"INSERT INTO tuner_seed_stats (task, optimizer, protocol, config_hash, seed, lr, "
        f"{', '.join(values)}) SELECT {key}, MIN(r.lr), "
        f"{', '.join(f'SUM({v})' for v in values.values())} FROM tuner_runs r GROUP BY {key}"
    )
    op.execute(
        f"INSERT INTO tuner_config_stats ({', '.join(_KEY)}, {', '.join(_RECOMPUTED)}) "
        f"SELECT {', '.join('s.' + k for k in _KEY)}, {', '.join(_RECOMPUTED.values())} "
        f"FROM tuner_seed_stats s GROUP BY {', '.join('s.' + k for k in _KEY)}"
    )


def _create_triggers() -> None:
    dialect = op.get_bind().dialect.name
    watched = ", ".join(_WATCHED)
    if dialect == "sqlite":
        def body(statements: list[str]) -> str:
            return "BEGIN " + "; ".join(statements) + "; END"

        op.execute("CREATE TRIGGER tuner_runs_config_stats_insert AFTER INSERT ON tuner_runs "
                   + body(_on_add("NEW", lock=False)))
        op.execute("CREATE TRIGGER tuner_runs_config_stats_delete AFTER DELETE ON tuner_runs "
                   + body(_on_remove("OLD", lock=False)))
        op.execute(f"CREATE TRIGGER tuner_runs_config_stats_update AFTER UPDATE OF {watched} "
                   "ON tuner_runs "
                   + body([*_on_remove("OLD", lock=False), *_on_add("NEW", lock=False)]))
    elif dialect == "postgresql":
        def block(statements: list[str]) -> str:
            return "".join(f"    {statement};\n" for statement in statements)

        op.execute(
            "CREATE FUNCTION tuner_runs_config_stats() RETURNS trigger LANGUAGE plpgsql "
            "AS $$\nBEGIN\n"
            "  IF TG_OP IN ('DELETE', 'UPDATE') THEN\n" + block(_on_remove("OLD", lock=True))
            + "  END IF;\n"
            "  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n" + block(_on_add("NEW", lock=True))
            + "  END IF;\n  RETURN NULL;\nEND;\n$$"
        )
        op.execute(
            f"CREATE TRIGGER tuner_runs_config_stats AFTER INSERT OR DELETE OR UPDATE OF "
            f"{watched} ON tuner_runs FOR EACH ROW EXECUTE FUNCTION tuner_runs_config_stats()"
        )
    else:  # pragma: no cover - tuner supports SQLite and PostgreSQL
        raise NotImplementedError(f"no config-stats triggers for {dialect}")


def _drop_stats() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS tuner_runs_config_stats_{action}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tuner_runs_config_stats ON tuner_runs")
        op.execute("DROP FUNCTION IF EXISTS tuner_runs_config_stats()")
    op.drop_table("tuner_config_stats")


def _fill_protocols(connection: sa.Connection) -> None:
    """Every run's protocol key, from its options and its study's options; and the keys."""
    runs = sa.table("tuner_runs", sa.column("id", sa.Integer()), sa.column("options", sa.JSON()),
                    sa.column("study_id", sa.Integer()), sa.column("protocol", sa.String(16)))
    studies = sa.table("tuner_studies", sa.column("id", sa.Integer()),
                       sa.column("options", sa.JSON()))
    study_options = dict(connection.execute(sa.select(studies.c.id, studies.c.options)).all())
    update = (sa.update(runs).where(runs.c.id == sa.bindparam("run_id"))
              .values(protocol=sa.bindparam("key")))
    protocols: dict[str, dict] = {}
    last = 0
    while True:
        rows = connection.execute(
            sa.select(runs.c.id, runs.c.options, runs.c.study_id)
            .where(runs.c.id > last).order_by(runs.c.id).limit(_BATCH_SIZE)
        ).all()
        if not rows:
            break
        changes = []
        for run_id, options, study_id in rows:
            protocol = _run_protocol(options, study_options.get(study_id))
            key = _protocol_hash(protocol)
            protocols[key] = protocol
            changes.append({"run_id": run_id, "key": key})
        connection.execute(update, changes)
        last = rows[-1][0]
    table = sa.table("tuner_protocols", sa.column("key", sa.String(16)),
                     sa.column("budget", sa.BigInteger()), sa.column("unit", sa.String(10)),
                     sa.column("training", sa.JSON()))
    if protocols:
        connection.execute(sa.insert(table), [
            {"key": key, "budget": p["budget"], "unit": p["unit"], "training": p["training"]}
            for key, p in protocols.items()
        ])


def upgrade() -> None:
    connection = op.get_bind()
    op.add_column("tuner_runs", sa.Column("protocol", sa.String(16), nullable=True))
    _drop_stats()  # its triggers first: the backfill below must not fire them
    _create_tables()
    _fill_protocols(connection)
    _aggregate()
    _create_triggers()


# -- the downgrade: the 0008 statistics, summed over runs ------------------------------------


def downgrade() -> None:
    _drop_stats()
    op.drop_table("tuner_seed_stats")
    op.drop_table("tuner_protocols")
    op.drop_column("tuner_runs", "protocol")
    _restore_0008()


def _restore_0008() -> None:
    """The 0008 ``tuner_config_stats`` (keyed on task, optimizer, config_hash; sums over runs),
    filled from the runs, and its triggers."""
    counts = [*_RUN_COUNTS, "metric_count", "reached"]
    sums = ["metric_sum", "metric_sumsq", "steps_sum"]
    op.create_table(
        "tuner_config_stats",
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("optimizer", sa.String(100), nullable=False),
        sa.Column("config_hash", sa.String(16), nullable=False),
        sa.Column("lr", sa.Float(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in counts],
        *[sa.Column(name, sa.Float(), nullable=False) for name in sums],
        sa.Column("metric_mean", sa.Float(), nullable=True),
        sa.Column("state_measured", sa.Integer(), nullable=False),
        sa.Column("state_multiple_sum", sa.Float(), nullable=False),
        sa.Column("state_multiple", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("task", "optimizer", "config_hash", name="pk_tuner_config_stats"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_tuner_config_stats_task_optimizer_lr", "tuner_config_stats",
                    ["task", "optimizer", "lr"])
    op.create_index("ix_tuner_config_stats_task_optimizer_metric_mean", "tuner_config_stats",
                    ["task", "optimizer", "metric_mean"])
    key = "(task, optimizer, config_hash)"
    means = {
        "metric_mean": ("CASE WHEN {row}.status = 'complete' THEN {row}.final_metric END",
                        "metric_sum", "metric_count"),
        "state_multiple": ("CASE WHEN " + _HAS_STATE + " THEN CAST({row}.optimizer_state_bytes "
                           "AS DOUBLE PRECISION) / {row}.param_bytes END",
                           "state_multiple_sum", "state_measured"),
    }

    def add(row: str) -> str:
        values = _contribution(row, "")
        columns = ", ".join(["task", "optimizer", "config_hash", "lr", *values, *means])
        selected = ", ".join([f"{row}.task", f"{row}.optimizer",
                              f"COALESCE({row}.config_hash, '')", f"{row}.lr",
                              *values.values(),
                              *(first.format(row=row) for first, _, _ in means.values())])
        updates = [f"{n} = tuner_config_stats.{n} + excluded.{n}" for n in values]
        updates.append("lr = COALESCE(tuner_config_stats.lr, excluded.lr)")
        for name, (_, total, count) in means.items():
            new_count = f"tuner_config_stats.{count} + excluded.{count}"
            new_total = f"tuner_config_stats.{total} + excluded.{total}"
            updates.append(f"{name} = CASE WHEN {new_count} > 0 THEN ({new_total}) / "
                           f"({new_count}) END")
        return (f"INSERT INTO tuner_config_stats ({columns}) VALUES ({selected}) "
                f"ON CONFLICT {key} DO UPDATE SET {', '.join(updates)}")

    def remove(row: str) -> list[str]:
        values = _contribution(row, "-")
        where = (f"task = {row}.task AND optimizer = {row}.optimizer AND config_hash = "
                 f"COALESCE({row}.config_hash, '')")
        updates = [f"{n} = {n} + {e}" for n, e in values.items()]
        for name, (_, total, count) in means.items():
            updates.append(f"{name} = CASE WHEN {count} + {values[count]} > 0 THEN "
                           f"({total} + {values[total]}) / ({count} + {values[count]}) END")
        return [f"UPDATE tuner_config_stats SET {', '.join(updates)} WHERE {where}",
                f"DELETE FROM tuner_config_stats WHERE {where} AND runs <= 0"]

    values = _contribution("r", "")
    columns = ", ".join(["task", "optimizer", "config_hash", "lr", *values, *means])
    totals = ", ".join(f"SUM({v})" for v in values.values())
    averages = ", ".join(f"SUM({values[total]}) / NULLIF(SUM({values[count]}), 0)"
                         for _, total, count in means.values())
    op.execute(
        f"INSERT INTO tuner_config_stats ({columns}) SELECT r.task, r.optimizer, "
        f"COALESCE(r.config_hash, ''), MIN(r.lr), {totals}, {averages} FROM tuner_runs r "
        f"GROUP BY r.task, r.optimizer, COALESCE(r.config_hash, '')"
    )
    watched = ("task, optimizer, config_hash, lr, status, final_metric, steps_to_target, "
               "optimizer_state_bytes, param_bytes")
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER tuner_runs_config_stats_insert AFTER INSERT ON tuner_runs "
                   f"BEGIN {add('NEW')}; END")
        op.execute("CREATE TRIGGER tuner_runs_config_stats_delete AFTER DELETE ON tuner_runs "
                   f"BEGIN {'; '.join(remove('OLD'))}; END")
        op.execute(f"CREATE TRIGGER tuner_runs_config_stats_update AFTER UPDATE OF {watched} "
                   f"ON tuner_runs BEGIN {'; '.join(remove('OLD'))}; {add('NEW')}; END")
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION tuner_runs_config_stats() RETURNS trigger LANGUAGE plpgsql "
            "AS $$\nBEGIN\n  IF TG_OP IN ('DELETE', 'UPDATE') THEN\n"
            + "".join(f"    {s};\n" for s in remove("OLD"))
            + "  END IF;\n  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n"
            + f"    {add('NEW')};\n  END IF;\n  RETURN NULL;\nEND;\n$$"
        )
        op.execute(
            f"CREATE TRIGGER tuner_runs_config_stats AFTER INSERT OR DELETE OR UPDATE OF "
            f"{watched} ON tuner_runs FOR EACH ROW EXECUTE FUNCTION tuner_runs_config_stats()"
        )
