"""Runs record facts about the model they trained: its task parameters, dtype, examples seen.

``tuner_runs.task_params`` (JSON, nullable) holds the task's parameter values (a width, a
depth: :mod:`tuner.task.params`), ``dtype`` (String, nullable) the parameters' dtype, and
``examples_seen`` (BigInteger, nullable) the training examples that went into the gradients.
They are what advice across model and batch sizes reads. Rows written before this revision keep
NULL: "not recorded".

Only columns are added, as in 0005 and 0007: ``tuner_runs`` is not rebuilt, so its curve points,
the config-stats triggers and every row stay. The downgrade drops the three columns in place.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tuner_runs", sa.Column("task_params", sa.JSON(none_as_null=True),
                                          nullable=True))
    op.add_column("tuner_runs", sa.Column("dtype", sa.String(20), nullable=True))
    op.add_column("tuner_runs", sa.Column("examples_seen", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for name in ("examples_seen", "dtype", "task_params"):
        op.drop_column("tuner_runs", name)
