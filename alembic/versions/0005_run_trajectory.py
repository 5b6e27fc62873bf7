"""Runs keep their 2-D path, the training options they used, and whether they stopped early.

``trajectory`` (JSON list of ``[x, y]`` pairs, for tasks that record one), ``options`` (JSON
object of the training options actually used) and ``stopped_early`` (boolean) are nullable:
rows written before this revision have them NULL, meaning "not recorded". The report draws
the 2-D paths from ``trajectory`` instead of training again.

Only columns are added (``ALTER TABLE ... ADD COLUMN``): ``tuner_runs`` is not rebuilt. On
SQLite a rebuild would drop the table, cascade-deleting its curve points, and lose the
config-stats triggers of 0004. The downgrade drops the columns in place too (``DROP COLUMN``,
SQLite 3.35 or newer), so a downgrade to 0004 keeps the curves and the triggers.

Revision ID: 0005
Revises: 0004
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("trajectory", "options", "stopped_early")


def upgrade() -> None:
    op.add_column("tuner_runs", sa.Column("trajectory", sa.JSON(), nullable=True))
    op.add_column("tuner_runs", sa.Column("options", sa.JSON(), nullable=True))
    op.add_column("tuner_runs", sa.Column("stopped_early", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # In place, as the upgrade: ALTER TABLE ... DROP COLUMN (SQLite 3.35+), no table rebuild.
    for name in reversed(_COLUMNS):
        op.drop_column("tuner_runs", name)
