"""Workers attached to a study (``tuner_workers``), and a task's one-line summary.

* ``tuner_workers``: one row per worker at work on a study. A study's status used to be read
  from its trial rows alone, so a study whose only worker was between two trials (recording
  one, claiming the next) read as stopped. A worker now writes a row here when it starts, keeps
  its ``alive_until`` ahead at every heartbeat and deletes the row when it leaves
  (:mod:`tuner.store.workers`).
* ``tuner_tasks.summary``: the task plugin's one line, recorded with the task so its page can
  show it without the plugin. Rows recorded before keep NULL until a study of the task is
  created again (:func:`tuner.store.tasks.record_task` fills in what a row lacks).

A table and a column are added; no row changes. The downgrade drops both.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tuner_workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alive_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["tuner_studies.id"], ondelete="CASCADE",
                                name=op.f("fk_tuner_workers_study_id_tuner_studies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuner_workers")),
    )
    op.create_index(op.f("ix_tuner_workers_study_id"), "tuner_workers", ["study_id"])
    op.add_column("tuner_tasks", sa.Column("summary", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tuner_tasks", "summary")
    op.drop_index(op.f("ix_tuner_workers_study_id"), table_name="tuner_workers")
    op.drop_table("tuner_workers")
