"""Runs record their evaluation counts: function, gradient and Hessian evaluations.

``tuner_runs.function_evals``, ``gradient_evals`` and ``hessian_evals`` (BigInteger, nullable)
are what the training loop counted at every forward pass, backward pass and dense Hessian of the
training loss (:class:`tuner.plugin.objective.EvaluationCounts`): a line search or L-BFGS's inner
iterations make several per step, so steps alone do not compare such methods with first-order
ones. Rows written before this revision keep NULL: "not counted" (a full-batch first-order run
made one of each per step, but the store does not guess).

Only columns are added (``ALTER TABLE ... ADD COLUMN``), as in 0005: ``tuner_runs`` is not
rebuilt, so its curve points, the config-stats triggers and every row stay. The downgrade drops
the three columns in place.

Revision ID: 0007
Revises: 0006
Create Date: 2025-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("function_evals", "gradient_evals", "hessian_evals")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("tuner_runs", sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # In place, as the upgrade: ALTER TABLE ... DROP COLUMN (SQLite 3.35+), no table rebuild.
    for name in reversed(_COLUMNS):
        op.drop_column("tuner_runs", name)
