"""A study's note: free text its team keeps beside it (``tuner_studies.note``).

The study page shows it and a token holder edits it (``PUT /api/studies/NAME/note``); it
changes nothing that the driver or the advice reads. Studies written before this revision have
no note: the column is nullable and stays NULL for them.

Only a column is added, as in 0011 (``tuner_tasks.summary``): no row changes, and the
downgrade drops the column in place.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tuner_studies", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("tuner_studies", "note")
