"""Task records, the configuration key, measured parameter bytes and trial origins.

* ``tuner_tasks``: what advice needs of a task (name, kind, metric, direction, target; room for
  a code reference, a code hash and task parameters), so advice never loads a task plugin.
  Filled here for existing stores: metric and direction from Optuna's tables (each tuner Optuna
  study carries the user attributes ``task`` and ``metric`` and a direction), kind and target
  from the task plugin where it can be imported now (an upgrade never fails without it).
* ``tuner_runs.config_hash``: the configuration key, hyperparameters plus the training options
  that change the result (a frozen copy of :func:`tuner.store.config_key.config_hash`); runs
  without recorded options get the key of their params alone. Indexed with task and optimizer.
* ``tuner_runs.param_bytes``: bytes of the trained parameters; older runs (all trained in
  float32) get ``param_count * 4``.
* ``tuner_trials.origin``: ``recommended``, ``warm_start`` or ``sampled``, from the Optuna trial
  user attributes the driver set (``recommended``/``warm_start`` true); a retry of a slot takes
  the origin of the slot's first attempt.
* ``tuner_config_stats`` is rebuilt keyed on (task, optimizer, config_hash), with the measured
  optimizer-state multiple, and re-aggregated; its triggers are recreated (self-contained here
  for SQLite and PostgreSQL).

Only columns are added to ``tuner_runs`` and ``tuner_trials`` (``ALTER TABLE ... ADD COLUMN``):
neither table is rebuilt, so no curve point or run is cascade-deleted. The downgrade drops them
in place and restores the 0004 statistics keyed on ``params_hash``.

Revision ID: 0006
Revises: 0005
Create Date: 2025-11-24
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH_SIZE = 5000
_HAS_STATE = (
    "{row}.status IN ('complete', 'pruned', 'diverged') AND {row}.param_bytes > 0"
)

# -- a frozen copy of tuner.store.config_key (keep identical) -------------------------------

_RESULT_OPTIONS: dict[str, Any] = {
    "budget": None, "schedule": "constant", "warmup": 0, "step_size": None, "gamma": 0.1,
    "plateau_patience": 2, "clip_norm": None, "accumulate": 1, "patience": None,
    "min_delta": 0.0, "batch_size": None,
}
_ONLY_WITH: dict[str, tuple[str, tuple[Any, ...]]] = {
    "step_size": ("schedule", ("step",)),
    "gamma": ("schedule", ("step", "plateau")),
    "plateau_patience": ("schedule", ("plateau",)),
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


def _config_hash(params: Mapping[str, Any], options: Mapping[str, Any] | None) -> str:
    key = {
        "params": _plain_json(dict(params)),
        "training": _plain_json(_relevant(options)) if options else {},
    }
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# -- the statistics and their triggers ------------------------------------------------------


def _contribution(row: str, sign: str, with_state: bool) -> dict[str, str]:
    """The SQL expressions of one run's contribution to its configuration's row."""
    complete = f"{row}.status = 'complete'"
    measured = f"{complete} AND {row}.final_metric IS NOT NULL"
    reached = f"{complete} AND {row}.steps_to_target IS NOT NULL"
    values = {
        "runs": f"{sign}1",
        "complete": f"{sign}(CASE WHEN {complete} THEN 1 ELSE 0 END)",
        "diverged": f"{sign}(CASE WHEN {row}.status = 'diverged' THEN 1 ELSE 0 END)",
        "pruned": f"{sign}(CASE WHEN {row}.status = 'pruned' THEN 1 ELSE 0 END)",
        "failed": f"{sign}(CASE WHEN {row}.status = 'failed' THEN 1 ELSE 0 END)",
        "metric_count": f"{sign}(CASE WHEN {measured} THEN 1 ELSE 0 END)",
        "metric_sum": f"{sign}(CASE WHEN {measured} THEN {row}.final_metric ELSE 0.0 END)",
        "metric_sumsq": (
            f"{sign}(CASE WHEN {measured} THEN {row}.final_metric * {row}.final_metric "
            "ELSE 0.0 END)"
        ),
        "reached": f"{sign}(CASE WHEN {reached} THEN 1 ELSE 0 END)",
        "steps_sum": f"{sign}(CASE WHEN {reached} THEN {row}.steps_to_target ELSE 0.0 END)",
    }
    if with_state:
        has_state = _HAS_STATE.format(row=row)
        values["state_measured"] = f"{sign}(CASE WHEN {has_state} THEN 1 ELSE 0 END)"
        values["state_multiple_sum"] = (
            f"{sign}(CASE WHEN {has_state} THEN CAST({row}.optimizer_state_bytes AS DOUBLE "
            f"PRECISION) / {row}.param_bytes ELSE 0.0 END)"
        )
    return values


class _Shape:
    """One shape of ``tuner_config_stats``: keyed on ``config_hash`` with the state multiple
    (this revision), or on ``params_hash`` without it (0004, for the downgrade)."""

    def __init__(self, key: str, with_state: bool) -> None:
        self.key = key
        self.with_state = with_state
        self.watched = ["task", "optimizer", key, "lr", "status", "final_metric",
                        "steps_to_target"]
        if with_state:
            self.watched += ["optimizer_state_bytes", "param_bytes"]

    def means(self, row: str) -> dict[str, tuple[str, str]]:
        """Each mean column: (its first value from run ``row``, its (sum, count) columns)."""
        found = {"metric_mean": (f"CASE WHEN {row}.status = 'complete' THEN "
                                 f"{row}.final_metric END", ("metric_sum", "metric_count"))}
        if self.with_state:
            has_state = _HAS_STATE.format(row=row)
            found["state_multiple"] = (
                f"CASE WHEN {has_state} THEN CAST({row}.optimizer_state_bytes AS DOUBLE "
                f"PRECISION) / {row}.param_bytes END",
                ("state_multiple_sum", "state_measured"),
            )
        return found

    def add(self, row: str) -> str:
        """An UPSERT adding run ``row`` (NEW) to its configuration's statistics."""
        values = _contribution(row, "", self.with_state)
        means = self.means(row)
        columns = ", ".join(["task", "optimizer", self.key, "lr", *values, *means])
        selected = ", ".join(
            [f"{row}.task", f"{row}.optimizer", f"COALESCE({row}.{self.key}, '')", f"{row}.lr",
             *values.values(), *(first for first, _ in means.values())]
        )
        updates = [f"{name} = tuner_config_stats.{name} + excluded.{name}" for name in values]
        updates.append("lr = COALESCE(tuner_config_stats.lr, excluded.lr)")
        for name, (_, (total, count)) in means.items():
            new_count = f"tuner_config_stats.{count} + excluded.{count}"
            new_total = f"tuner_config_stats.{total} + excluded.{total}"
            updates.append(f"{name} = CASE WHEN {new_count} > 0 THEN ({new_total}) / "
                           f"({new_count}) END")
        return (
            f"INSERT INTO tuner_config_stats ({columns}) VALUES ({selected}) "
            f"ON CONFLICT (task, optimizer, {self.key}) DO UPDATE SET {', '.join(updates)}"
        )

    def remove(self, row: str) -> list[str]:
        """Statements taking run ``row`` (OLD) out of its configuration's statistics."""
        values = _contribution(row, "-", self.with_state)
        key = (
            f"task = {row}.task AND optimizer = {row}.optimizer "
            f"AND {self.key} = COALESCE({row}.{self.key}, '')"
        )
        updates = [f"{name} = {name} + {expression}" for name, expression in values.items()]
        for name, (_, (total, count)) in self.means(row).items():
            updates.append(
                f"{name} = CASE WHEN {count} + {values[count]} > 0 THEN "
                f"({total} + {values[total]}) / ({count} + {values[count]}) END"
            )
        return [
            f"UPDATE tuner_config_stats SET {', '.join(updates)} WHERE {key}",
            f"DELETE FROM tuner_config_stats WHERE {key} AND runs <= 0",
        ]

    def create_table(self) -> None:
        counts = ["runs", "complete", "diverged", "pruned", "failed", "metric_count", "reached"]
        sums = ["metric_sum", "metric_sumsq", "steps_sum"]
        columns = [
            sa.Column("task", sa.String(100), nullable=False),
            sa.Column("optimizer", sa.String(100), nullable=False),
            sa.Column(self.key, sa.String(16), nullable=False),
            sa.Column("lr", sa.Float(), nullable=True),
            *[sa.Column(name, sa.Integer(), nullable=False) for name in counts],
            *[sa.Column(name, sa.Float(), nullable=False) for name in sums],
            sa.Column("metric_mean", sa.Float(), nullable=True),
        ]
        if self.with_state:
            columns += [
                sa.Column("state_measured", sa.Integer(), nullable=False),
                sa.Column("state_multiple_sum", sa.Float(), nullable=False),
                sa.Column("state_multiple", sa.Float(), nullable=True),
            ]
        op.create_table(
            "tuner_config_stats",
            *columns,
            sa.PrimaryKeyConstraint("task", "optimizer", self.key, name="pk_tuner_config_stats"),
            sqlite_with_rowid=False,
        )
        op.create_index(
            "ix_tuner_config_stats_task_optimizer_lr", "tuner_config_stats",
            ["task", "optimizer", "lr"],
        )
        op.create_index(
            "ix_tuner_config_stats_task_optimizer_metric_mean", "tuner_config_stats",
            ["task", "optimizer", "metric_mean"],
        )

    def aggregate(self) -> None:
        """Fill the table from every run (one GROUP BY)."""
        values = _contribution("r", "", self.with_state)
        means = self.means("r")
        columns = ", ".join(["task", "optimizer", self.key, "lr", *values, *means])
        sums = ", ".join(f"SUM({expression})" for expression in values.values())
        averages = ", ".join(
            f"SUM({values[total]}) / NULLIF(SUM({values[count]}), 0)"
            for _, (total, count) in means.values()
        )
        op.execute(
            f"INSERT INTO tuner_config_stats ({columns}) "
            f"SELECT r.task, r.optimizer, COALESCE(r.{self.key}, ''), MIN(r.lr), {sums}, "
            f"{averages} FROM tuner_runs r "
            f"GROUP BY r.task, r.optimizer, COALESCE(r.{self.key}, '')"
        )

    def create_triggers(self) -> None:
        dialect = op.get_bind().dialect.name
        watched = ", ".join(self.watched)
        if dialect == "sqlite":
            op.execute(
                "CREATE TRIGGER tuner_runs_config_stats_insert AFTER INSERT ON tuner_runs "
                f"BEGIN {self.add('NEW')}; END"
            )
            op.execute(
                "CREATE TRIGGER tuner_runs_config_stats_delete AFTER DELETE ON tuner_runs "
                f"BEGIN {'; '.join(self.remove('OLD'))}; END"
            )
            op.execute(
                f"CREATE TRIGGER tuner_runs_config_stats_update AFTER UPDATE OF {watched} "
                f"ON tuner_runs BEGIN {'; '.join(self.remove('OLD'))}; {self.add('NEW')}; END"
            )
        elif dialect == "postgresql":
            op.execute(
                "CREATE FUNCTION tuner_runs_config_stats() RETURNS trigger LANGUAGE plpgsql "
                "AS $$\nBEGIN\n"
                "  IF TG_OP IN ('DELETE', 'UPDATE') THEN\n"
                + "".join(f"    {statement};\n" for statement in self.remove("OLD"))
                + "  END IF;\n"
                "  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n"
                f"    {self.add('NEW')};\n"
                "  END IF;\n"
                "  RETURN NULL;\n"
                "END\n$$"
            )
            op.execute(
                "CREATE TRIGGER tuner_runs_config_stats AFTER INSERT OR DELETE OR UPDATE OF "
                f"{watched} ON tuner_runs FOR EACH ROW EXECUTE FUNCTION "
                "tuner_runs_config_stats()"
            )
        else:  # pragma: no cover - tuner supports SQLite and PostgreSQL
            raise NotImplementedError(f"no config-stats triggers for {dialect}")


_CURRENT = _Shape("config_hash", with_state=True)
_BEFORE = _Shape("params_hash", with_state=False)


def _drop_stats() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS tuner_runs_config_stats_{action}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tuner_runs_config_stats ON tuner_runs")
        op.execute("DROP FUNCTION IF EXISTS tuner_runs_config_stats()")
    op.drop_table("tuner_config_stats")


# -- filling in the new columns -------------------------------------------------------------


def _fill_config_hashes(connection: sa.Connection) -> None:
    runs = sa.table(
        "tuner_runs",
        sa.column("id", sa.Integer()),
        sa.column("params", sa.JSON()),
        sa.column("options", sa.JSON()),
        sa.column("config_hash", sa.String(16)),
    )
    update = (
        sa.update(runs).where(runs.c.id == sa.bindparam("run_id"))
        .values(config_hash=sa.bindparam("new_hash"))
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(runs.c.id, runs.c.params, runs.c.options)
            .where(runs.c.id > last).order_by(runs.c.id).limit(_BATCH_SIZE)
        ).all()
        if not rows:
            return
        connection.execute(update, [
            {"run_id": run_id, "new_hash": _config_hash(params or {}, options)}
            for run_id, params, options in rows
        ])
        last = rows[-1][0]


def _fill_origins(connection: sa.Connection, optuna_tables: set[str]) -> None:
    if "trial_user_attributes" in optuna_tables:
        def marked(key: str) -> str:
            return (
                "EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = "
                f"tuner_trials.optuna_trial_id AND a.key = '{key}' AND a.value_json = 'true')"
            )

        op.execute(
            f"UPDATE tuner_trials SET origin = CASE WHEN {marked('recommended')} THEN "
            f"'recommended' WHEN {marked('warm_start')} THEN 'warm_start' ELSE 'sampled' END"
        )
    else:
        op.execute("UPDATE tuner_trials SET origin = 'sampled'")
    # a retry of a slot ran the configuration of the slot's first attempt
    op.execute(
        "UPDATE tuner_trials SET origin = (SELECT f.origin FROM tuner_trials f WHERE "
        "f.study_id = tuner_trials.study_id AND f.optimizer = tuner_trials.optimizer AND "
        "f.slot = tuner_trials.slot ORDER BY f.id LIMIT 1) WHERE slot IS NOT NULL"
    )


def _optuna_tasks(connection: sa.Connection, optuna_tables: set[str]) -> dict[str, Counter]:
    """Per task, how many of its Optuna studies said each (metric, direction)."""
    needed = {"studies", "study_user_attributes", "study_directions"}
    if not needed <= optuna_tables:
        return {}
    attributes: dict[int, dict[str, Any]] = {}
    for study_id, key, value in connection.execute(sa.text(
        "SELECT study_id, key, value_json FROM study_user_attributes "
        "WHERE key IN ('task', 'metric')"
    )):
        try:
            attributes.setdefault(study_id, {})[key] = json.loads(value)
        except (TypeError, ValueError):
            continue
    directions = dict(connection.execute(sa.text(
        "SELECT study_id, CAST(direction AS VARCHAR(8)) FROM study_directions "
        "WHERE objective = 0"
    )).all())
    found: dict[str, Counter] = {}
    for study_id, attrs in attributes.items():
        direction = str(directions.get(study_id) or "").lower()
        task, metric = attrs.get("task"), attrs.get("metric")
        if isinstance(task, str) and isinstance(metric, str) and direction in (
            "minimize", "maximize"
        ):
            found.setdefault(task, Counter())[(metric, direction)] += 1
    return found


def _task_plugins() -> dict[str, Any]:
    """The installed task plugins by name, or none when they cannot be loaded now."""
    try:
        from tuner.plugin.registry import get_registry

        return dict(get_registry().tasks)
    except Exception:  # noqa: BLE001 - an upgrade must not depend on the plugins
        return {}


def _fill_tasks(connection: sa.Connection, optuna_tables: set[str]) -> None:
    names = set(connection.execute(sa.text("SELECT DISTINCT task FROM tuner_studies")).scalars())
    names |= set(connection.execute(sa.text("SELECT DISTINCT task FROM tuner_runs")).scalars())
    if not names:
        return
    told = _optuna_tasks(connection, optuna_tables)
    plugins = _task_plugins()
    now = datetime.now(timezone.utc)
    rows = []
    for name in sorted(names):
        plugin = plugins.get(name)
        if name in told:
            metric, direction = told[name].most_common(1)[0][0]
        elif plugin is not None:
            metric, direction = str(plugin.metric), str(plugin.direction)
        else:
            continue  # nothing says what its metric is: advice will say so by name
        known = plugin is not None and plugin.metric == metric and plugin.direction == direction
        target = getattr(plugin, "target", None) if known else None
        rows.append({
            "name": name, "metric": metric, "direction": direction,
            "kind": str(plugin.kind) if known else None,
            "target": float(target) if target is not None else None,
            "created_at": now,
        })
    if rows:
        tasks = sa.table(
            "tuner_tasks", sa.column("name"), sa.column("kind"), sa.column("metric"),
            sa.column("direction"), sa.column("target"), sa.column("created_at"),
        )
        connection.execute(sa.insert(tasks), rows)


def upgrade() -> None:
    connection = op.get_bind()
    optuna_tables = {
        name for name in sa.inspect(connection).get_table_names()
        if not name.startswith("tuner_")
    }
    op.create_table(
        "tuner_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("code_ref", sa.String(500), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tuner_tasks"),
        sa.UniqueConstraint("name", name="uq_tuner_tasks_name"),
    )
    op.add_column("tuner_trials", sa.Column("origin", sa.String(20), nullable=True))
    op.add_column("tuner_runs", sa.Column("config_hash", sa.String(16), nullable=True))
    op.add_column("tuner_runs", sa.Column("param_bytes", sa.BigInteger(), nullable=True))

    _drop_stats()  # its triggers first: the backfill below must not fire them
    _fill_config_hashes(connection)
    op.execute("UPDATE tuner_runs SET param_bytes = param_count * 4 WHERE param_count > 0")
    op.create_index(
        "ix_tuner_runs_task_optimizer_config_hash", "tuner_runs",
        ["task", "optimizer", "config_hash"],
    )
    _CURRENT.create_table()
    _CURRENT.aggregate()
    _CURRENT.create_triggers()

    _fill_origins(connection, optuna_tables)
    _fill_tasks(connection, optuna_tables)


def downgrade() -> None:
    _drop_stats()
    op.drop_index("ix_tuner_runs_task_optimizer_config_hash", table_name="tuner_runs")
    # In place (ALTER TABLE ... DROP COLUMN, SQLite 3.35+): no rebuild, nothing cascades.
    op.drop_column("tuner_runs", "param_bytes")
    op.drop_column("tuner_runs", "config_hash")
    op.drop_column("tuner_trials", "origin")
    op.drop_table("tuner_tasks")
    _BEFORE.create_table()
    _BEFORE.aggregate()
    _BEFORE.create_triggers()
