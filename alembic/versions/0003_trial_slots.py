"""Trials get a ``slot``: which of its optimizer's N trials a trial fills (the driver's claim).

A study gives each optimizer exactly N trials, numbered 0..N-1. A worker claims slot ``s`` by
inserting its trial row with ``slot = s``; the partial unique index lets at most one trial that
is not ``failed`` hold a slot, so two workers never run the same slot and a finished slot is
never run again, on SQLite and PostgreSQL alike. A failed (or reaped) trial frees its slot for
a retry. Rows written before this revision have ``slot`` NULL and take no part.

Only a column and an index are added: no table is rebuilt (rebuilding ``tuner_trials`` on SQLite
would cascade-delete its runs through the foreign key).

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOLDS_SLOT = "status != 'failed'"


def upgrade() -> None:
    op.add_column("tuner_trials", sa.Column("slot", sa.Integer(), nullable=True))
    op.create_index(
        "uq_tuner_trials_study_id_optimizer_slot",
        "tuner_trials",
        ["study_id", "optimizer", "slot"],
        unique=True,
        sqlite_where=sa.text(_HOLDS_SLOT),
        postgresql_where=sa.text(_HOLDS_SLOT),
    )


def downgrade() -> None:
    op.drop_index("uq_tuner_trials_study_id_optimizer_slot", table_name="tuner_trials")
    with op.batch_alter_table("tuner_trials") as batch:
        batch.drop_column("slot")
