"""Per-configuration statistics of runs, kept up to date by the database itself.

``tuner_config_stats`` holds one row per (task, optimizer, params_hash): how many runs, how
many complete/diverged/pruned/failed, and the count, sum and sum of squares of the complete
runs' final metric and steps-to-target. Triggers on ``tuner_runs`` (insert, delete, and an
update of any column the figures depend on) keep it exact whatever writes the runs, so the
advice queries read ~one row per configuration instead of every run: `tuner best` over a
million runs stays well under 100 ms. Existing runs are aggregated into it here.

Revision ID: 0004
Revises: 0003
Create Date: 2025-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "(task, optimizer, params_hash)"
_WATCHED = "task, optimizer, params_hash, lr, status, final_metric, steps_to_target"


def _contribution(row: str, sign: str = "") -> dict[str, str]:
    """The SQL expressions of one run's contribution to its configuration's row."""
    complete = f"{row}.status = 'complete'"
    measured = f"{complete} AND {row}.final_metric IS NOT NULL"
    reached = f"{complete} AND {row}.steps_to_target IS NOT NULL"
    return {
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


def _add(row: str) -> str:
    """An UPSERT adding run ``row`` (NEW) to its configuration's statistics."""
    values = _contribution(row)
    columns = ", ".join(["task", "optimizer", "params_hash", "lr", *values, "metric_mean"])
    selected = ", ".join(
        [f"{row}.task", f"{row}.optimizer", f"COALESCE({row}.params_hash, '')", f"{row}.lr",
         *values.values(),
         f"CASE WHEN {row}.status = 'complete' THEN {row}.final_metric END"]
    )
    count = "tuner_config_stats.metric_count + excluded.metric_count"
    total = "tuner_config_stats.metric_sum + excluded.metric_sum"
    updates = ", ".join(
        [f"{name} = tuner_config_stats.{name} + excluded.{name}" for name in values]
        + ["lr = COALESCE(tuner_config_stats.lr, excluded.lr)",
           f"metric_mean = CASE WHEN {count} > 0 THEN ({total}) / ({count}) END"]
    )
    return (
        f"INSERT INTO tuner_config_stats ({columns}) VALUES ({selected}) "
        f"ON CONFLICT {_KEY} DO UPDATE SET {updates}"
    )


def _remove(row: str) -> list[str]:
    """Statements taking run ``row`` (OLD) out of its configuration's statistics."""
    values = _contribution(row, sign="-")
    key = (
        f"task = {row}.task AND optimizer = {row}.optimizer "
        f"AND params_hash = COALESCE({row}.params_hash, '')"
    )
    updates = ", ".join(
        [f"{name} = {name} + {expression}" for name, expression in values.items()]
        + [
            f"metric_mean = CASE WHEN metric_count + {values['metric_count']} > 0 THEN "
            f"(metric_sum + {values['metric_sum']}) / (metric_count + {values['metric_count']}) "
            "END"
        ]
    )
    return [
        f"UPDATE tuner_config_stats SET {updates} WHERE {key}",
        f"DELETE FROM tuner_config_stats WHERE {key} AND runs <= 0",
    ]


def _create_sqlite_triggers() -> None:
    op.execute(
        "CREATE TRIGGER tuner_runs_config_stats_insert AFTER INSERT ON tuner_runs "
        f"BEGIN {_add('NEW')}; END"
    )
    op.execute(
        "CREATE TRIGGER tuner_runs_config_stats_delete AFTER DELETE ON tuner_runs "
        f"BEGIN {'; '.join(_remove('OLD'))}; END"
    )
    op.execute(
        f"CREATE TRIGGER tuner_runs_config_stats_update AFTER UPDATE OF {_WATCHED} "
        f"ON tuner_runs BEGIN {'; '.join(_remove('OLD'))}; {_add('NEW')}; END"
    )


def _create_postgresql_triggers() -> None:
    op.execute(
        "CREATE FUNCTION tuner_runs_config_stats() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  IF TG_OP IN ('DELETE', 'UPDATE') THEN\n"
        + "".join(f"    {statement};\n" for statement in _remove("OLD"))
        + "  END IF;\n"
        "  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n"
        f"    {_add('NEW')};\n"
        "  END IF;\n"
        "  RETURN NULL;\n"
        "END\n$$"
    )
    op.execute(
        "CREATE TRIGGER tuner_runs_config_stats AFTER INSERT OR DELETE OR UPDATE OF "
        f"{_WATCHED} ON tuner_runs FOR EACH ROW EXECUTE FUNCTION tuner_runs_config_stats()"
    )


def upgrade() -> None:
    op.create_table(
        "tuner_config_stats",
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("optimizer", sa.String(100), nullable=False),
        sa.Column("params_hash", sa.String(16), nullable=False),
        sa.Column("lr", sa.Float(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in (
            "runs", "complete", "diverged", "pruned", "failed", "metric_count", "reached")],
        *[sa.Column(name, sa.Float(), nullable=False) for name in (
            "metric_sum", "metric_sumsq", "steps_sum")],
        sa.Column("metric_mean", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(
            "task", "optimizer", "params_hash", name="pk_tuner_config_stats"
        ),
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
    values = _contribution("r")
    columns = ", ".join(["task", "optimizer", "params_hash", "lr", *values, "metric_mean"])
    sums = ", ".join(f"SUM({expression})" for expression in values.values())
    mean = (
        f"SUM({values['metric_sum']}) / NULLIF(SUM({values['metric_count']}), 0)"
    )
    op.execute(
        f"INSERT INTO tuner_config_stats ({columns}) "
        f"SELECT r.task, r.optimizer, COALESCE(r.params_hash, ''), MIN(r.lr), {sums}, {mean} "
        "FROM tuner_runs r GROUP BY r.task, r.optimizer, COALESCE(r.params_hash, '')"
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _create_sqlite_triggers()
    elif dialect == "postgresql":
        _create_postgresql_triggers()
    else:  # pragma: no cover - tuner supports SQLite and PostgreSQL
        raise NotImplementedError(f"no config-stats triggers for {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS tuner_runs_config_stats_{action}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tuner_runs_config_stats ON tuner_runs")
        op.execute("DROP FUNCTION IF EXISTS tuner_runs_config_stats()")
    op.drop_table("tuner_config_stats")
