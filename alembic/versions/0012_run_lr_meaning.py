"""Runs record what their optimizer's lr is: a step size, a multiplier, or a named convention.

``tuner_runs.lr_meaning`` (String, not null) holds the plugin's ``lr_meaning``: ``step size``
(SGD, Adam, Lion), ``multiplier`` (a learning-rate-free method's factor on its own estimate:
Prodigy, D-Adaptation) or a named convention (``muon/match_rms_adamw``). The advice compares
learning rates only like with like and reads the meaning from here, never from the plugins.
Every run recorded before this revision was of an optimizer whose lr is a step size: the
column's server default fills them in as ``step size``.

An index on (task, optimizer, lr_meaning) lets the advice read an optimizer's meanings in two
index probes (the lowest and the highest), however many runs it has.

Only a column and an index are added, as in 0005, 0007 and 0008: ``tuner_runs`` is not rebuilt,
so its curve points, the statistics' triggers and every row stay. The downgrade drops both in
place.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_INDEX = "ix_tuner_runs_task_optimizer_lr_meaning"


def upgrade() -> None:
    op.add_column("tuner_runs", sa.Column("lr_meaning", sa.String(40), nullable=False,
                                          server_default="step size"))
    op.create_index(_INDEX, "tuner_runs", ["task", "optimizer", "lr_meaning"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="tuner_runs")
    op.drop_column("tuner_runs", "lr_meaning")
