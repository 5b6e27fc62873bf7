"""Runs get ``lr`` and ``params_hash`` columns and the indexes the advice queries scan.

Existing runs are backfilled from their ``params`` JSON: ``lr`` is ``params["lr"]`` and
``params_hash`` the first 16 hex digits of the SHA-1 of the canonical JSON (a frozen copy of
:func:`tuner.store.models.params_hash`).

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-21
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH_SIZE = 5000


def _params_hash(params: dict[str, Any]) -> str:
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _lr(params: dict[str, Any]) -> float | None:
    value = params.get("lr")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def upgrade() -> None:
    with op.batch_alter_table("tuner_runs") as batch:
        batch.add_column(sa.Column("params_hash", sa.String(16), nullable=True))
        batch.add_column(sa.Column("lr", sa.Float(), nullable=True))

    runs = sa.table(
        "tuner_runs",
        sa.column("id", sa.Integer()),
        sa.column("params", sa.JSON()),
        sa.column("params_hash", sa.String(16)),
        sa.column("lr", sa.Float()),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(runs.c.id, runs.c.params)).all()
    update = (
        sa.update(runs)
        .where(runs.c.id == sa.bindparam("run_id"))
        .values(params_hash=sa.bindparam("new_hash"), lr=sa.bindparam("new_lr"))
    )
    for start in range(0, len(rows), _BATCH_SIZE):
        batch_rows = [
            {
                "run_id": run_id,
                "new_hash": _params_hash(params or {}),
                "new_lr": _lr(params or {}),
            }
            for run_id, params in rows[start : start + _BATCH_SIZE]
        ]
        connection.execute(update, batch_rows)

    op.create_index("ix_tuner_runs_lr", "tuner_runs", ["lr"])
    op.create_index(
        "ix_tuner_runs_task_optimizer_status", "tuner_runs", ["task", "optimizer", "status"]
    )
    op.create_index(
        "ix_tuner_runs_task_optimizer_params_hash",
        "tuner_runs",
        ["task", "optimizer", "params_hash"],
    )


def downgrade() -> None:
    op.drop_index("ix_tuner_runs_task_optimizer_params_hash", table_name="tuner_runs")
    op.drop_index("ix_tuner_runs_task_optimizer_status", table_name="tuner_runs")
    op.drop_index("ix_tuner_runs_lr", table_name="tuner_runs")
    with op.batch_alter_table("tuner_runs") as batch:
        batch.drop_column("lr")
        batch.drop_column("params_hash")
