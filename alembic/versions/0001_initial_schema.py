"""Initial schema: studies, trials, runs, curve points and the meta table.

Revision ID: 0001
Revises:
Create Date: 2025-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None



def upgrade() -> None:
    op.create_table(
        "tuner_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_tuner_meta"),
    )
    op.create_table(
        "tuner_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("optimizers", sa.JSON(), nullable=False),
        sa.Column("trials_per_optimizer", sa.Integer(), nullable=False),
        sa.Column("seeds", sa.JSON(), nullable=False),
        sa.Column("sampler", sa.String(50), nullable=False),
        sa.Column("pruner", sa.String(50), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("search_spaces", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("tuner_version", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tuner_studies"),
        sa.UniqueConstraint("name", name="uq_tuner_studies_name"),
    )
    op.create_index("ix_tuner_studies_task", "tuner_studies", ["task"])
    op.create_table(
        "tuner_trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("optimizer", sa.String(100), nullable=False),
        sa.Column("optuna_study_name", sa.String(255), nullable=False),
        sa.Column("optuna_trial_number", sa.Integer(), nullable=False),
        sa.Column("optuna_trial_id", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_host", sa.String(255), nullable=True),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["tuner_studies.id"],
            name="fk_tuner_trials_study_id_tuner_studies",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tuner_trials"),
        sa.UniqueConstraint(
            "optuna_study_name",
            "optuna_trial_number",
            name="uq_tuner_trials_optuna_study_name_optuna_trial_number",
        ),
    )
    op.create_index("ix_tuner_trials_study_id", "tuner_trials", ["study_id"])
    op.create_table(
        "tuner_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=True),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("optimizer", sa.String(100), nullable=False),
        sa.Column("plugin_version", sa.String(40), nullable=True),
        sa.Column("space_hash", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("final_metric", sa.Float(), nullable=True),
        sa.Column("best_metric", sa.Float(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("steps_to_target", sa.Integer(), nullable=True),
        sa.Column("seconds_to_target", sa.Float(), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("optimizer_state_bytes", sa.BigInteger(), nullable=False),
        sa.Column("param_count", sa.BigInteger(), nullable=False),
        sa.Column("device", sa.String(40), nullable=False),
        sa.Column("torch_version", sa.String(40), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["tuner_trials.id"],
            name="fk_tuner_runs_trial_id_tuner_trials",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["tuner_studies.id"],
            name="fk_tuner_runs_study_id_tuner_studies",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tuner_runs"),
    )
    op.create_index("ix_tuner_runs_trial_id", "tuner_runs", ["trial_id"])
    op.create_index("ix_tuner_runs_study_id", "tuner_runs", ["study_id"])
    op.create_table(
        "tuner_curve_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("metric", sa.Float(), nullable=True),
        sa.Column("lr", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["tuner_runs.id"],
            name="fk_tuner_curve_points_run_id_tuner_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tuner_curve_points"),
    )
    op.create_index(
        "ix_tuner_curve_points_run_id_step", "tuner_curve_points", ["run_id", "step"]
    )


def downgrade() -> None:
    op.drop_table("tuner_curve_points")
    op.drop_table("tuner_runs")
    op.drop_table("tuner_trials")
    op.drop_table("tuner_studies")
    op.drop_table("tuner_meta")
