"""The store's tables: studies, their trials, the per-seed runs and each run's curve.

Every table is prefixed ``tuner_`` so it can share a database with Optuna's own tables. The models
describe the schema at the newest migration (``alembic/versions``); a change here needs a new
migration, and :data:`tuner.store.database.SCHEMA_REVISIONS` a new entry.

Runs carry ``task`` and ``optimizer`` (denormalised from their study and trial), ``lr``, and the
keys ``params_hash`` (hyperparameters) and ``config_hash`` (hyperparameters plus the training
options that change the result, :mod:`tuner.store.config_key`) as their own indexed columns;
``tuner_config_stats`` keeps per-configuration sums, so an advice query over a million runs reads
one row per configuration. ``tuner_tasks`` records what advice needs of a task (metric,
direction, target), so advice never loads a task plugin.
"""

# No ``from __future__ import annotations`` here: SQLAlchemy would then eval() every column's
# annotation string at import (a third of this module's import time); forward references to
# classes defined further down are quoted instead.

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("complete", "pruned", "diverged", "failed")
"""A run's outcome (the same words as :data:`tuner.training.STATUSES`)."""

TRIAL_STATUSES = ("running", "complete", "pruned", "diverged", "failed")
"""A trial is ``running`` until the driver finishes it with one of the run outcomes."""

TRIAL_ORIGINS = ("recommended", "warm_start", "sampled", "more_seeds")
"""Where a trial's configuration came from: the optimizer's recommended configuration (a
study's first trial), a best known configuration from earlier studies, the sampler, or a
configuration of the study given new seeds (a seed slot of ``tuner study extend``)."""


def utcnow() -> datetime:
    """The current time in UTC (the default of every timestamp column)."""
    return datetime.now(timezone.utc)


def params_hash(params: dict[str, Any]) -> str:
    """A short stable key for a hyperparameter dict: runs of one configuration share it.

    Canonical JSON (sorted keys, no spaces) hashed with SHA-1, first 16 hex digits. Migration
    0002 carries a frozen copy of this function to backfill older rows; keep the two identical.
    """
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


SLOT_HELD = "status != 'failed'"
"""The trials that hold their slot (the condition of the partial unique slot index)."""


def postgresql_options() -> None:
    """Give the partial slot index its PostgreSQL ``where`` (the same condition as on SQLite).

    Called when a PostgreSQL engine is made (:func:`tuner.store.database.make_engine`), not at
    import: naming any ``postgresql_*`` option loads SQLAlchemy's PostgreSQL dialect (about a
    tenth of a second), which a command reading an SQLite store should not pay to start.
    """
    for index in Trial.__table__.indexes:
        if index.name == "uq_tuner_trials_study_id_optimizer_slot":
            index.dialect_options["postgresql"]["where"] = text(SLOT_HELD)


class Base(DeclarativeBase):
    """The declarative base of tuner's tables, with constraint names alembic can refer to."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Meta(Base):
    """Key/value facts about the schema, written by ``tuner db upgrade``.

    Keys: ``schema_revision`` (the alembic head it upgraded to), ``tuner_version`` (the tuner
    that ran the upgrade) and ``min_tuner_version`` (the oldest tuner that understands the
    schema). An older tuner reads them to say which version a newer database needs.
    """

    __tablename__ = "tuner_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class TaskRow(Base):
    """What the store knows of a task: recorded when a study of it is created (migration 0006
    filled it in for older stores), read by advice instead of the task plugin.

    ``kind`` is None when an upgrade could not learn it (the plugin was not installed);
    ``code_ref``, ``code_hash`` and ``params`` are for tasks named by reference and their
    parameters. See :mod:`tuner.store.tasks`.
    """

    __tablename__ = "tuner_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str | None] = mapped_column(String(20))
    metric: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(10))
    target: Mapped[float | None] = mapped_column(Float)
    code_ref: Mapped[str | None] = mapped_column(String(500))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def __repr__(self) -> str:
        return f"TaskRow(name={self.name!r}, metric={self.metric!r})"


class Study(Base):
    """One tuner study: a task, the optimizers to compare, and an equal budget for each.

    ``options`` holds the budget and training options (steps, epochs, device, target, ...);
    ``search_spaces`` holds per-optimizer overrides of the plugins' declared spaces, keyed by
    optimizer name. ``status`` is the driver's: e.g. created, running, finished. ``note`` is
    free text its team keeps beside it (the study page shows and edits it; nothing reads it).
    """

    __tablename__ = "tuner_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(100), index=True)
    optimizers: Mapped[list[Any]] = mapped_column(JSON)
    trials_per_optimizer: Mapped[int] = mapped_column(Integer)
    seeds: Mapped[list[Any]] = mapped_column(JSON)
    sampler: Mapped[str] = mapped_column(String(50), default="tpe")
    pruner: Mapped[str] = mapped_column(String(50), default="median")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    search_spaces: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="created")
    tuner_version: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)

    trials: Mapped[list["Trial"]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Study(id={self.id!r}, name={self.name!r}, task={self.task!r})"


class Trial(Base):
    """One Optuna trial of one optimizer in a study; its runs are the seeds.

    ``value`` is the aggregate over seeds that was reported to Optuna. The worker columns and
    ``heartbeat_at`` are optional bookkeeping for the driver (Optuna keeps its own heartbeats).
    ``origin`` says where its configuration came from: ``recommended`` (the optimizer's
    recommended configuration, a study's first trial), ``warm_start`` (a best known
    configuration from earlier studies), ``sampled`` or ``more_seeds`` (a seed slot: a
    configuration of the study trained on new seeds, slot -1, -2, ...); None on rows older than
    migration 0006 that it could not classify.
    """

    __tablename__ = "tuner_trials"
    __table_args__ = (
        UniqueConstraint("optuna_study_name", "optuna_trial_number"),
        # At most one trial that is not failed holds a slot: the driver's claim (migration 0003).
        # Its PostgreSQL ``where`` is added by postgresql_options(), see there.
        Index(
            "uq_tuner_trials_study_id_optimizer_slot", "study_id", "optimizer", "slot",
            unique=True, sqlite_where=text(SLOT_HELD),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("tuner_studies.id", ondelete="CASCADE"), index=True
    )
    optimizer: Mapped[str] = mapped_column(String(100))
    optuna_study_name: Mapped[str] = mapped_column(String(255))
    optuna_trial_number: Mapped[int] = mapped_column(Integer)
    optuna_trial_id: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    value: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker_host: Mapped[str | None] = mapped_column(String(255))
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    slot: Mapped[int | None] = mapped_column(Integer)
    origin: Mapped[str | None] = mapped_column(String(20))

    study: Mapped[Study] = relationship(back_populates="trials")
    runs: Mapped[list["Run"]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return (
            f"Trial(id={self.id!r}, optimizer={self.optimizer!r}, "
            f"number={self.optuna_trial_number!r}, status={self.status!r})"
        )


class WorkerRow(Base):
    """A worker attached to a study: it is at work on the study, inside a trial or between two.

    A trial row says a worker is busy; this row says one is there at all, so a study whose
    worker is between trials (recording one, claiming the next, starting up) reads as running.
    The worker writes it when it starts, pushes ``alive_until`` forward at every heartbeat
    (its grace period ahead) and deletes it when it leaves; a killed worker's row expires at
    ``alive_until`` (:mod:`tuner.store.workers`).
    """

    __tablename__ = "tuner_workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("tuner_studies.id", ondelete="CASCADE"), index=True
    )
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    alive_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Run(Base):
    """One training run (one seed of one trial): every measurement of a RunResult.

    ``study_id``, ``task`` and ``optimizer`` repeat what the trial and study say so advice
    queries need no join; ``lr`` is ``params["lr"]`` as its own column. ``config_hash`` groups
    the seeds of one configuration (hyperparameters plus result-changing training options);
    ``params_hash`` is the key of the hyperparameters alone. ``trial_id`` is None for a run
    recorded outside a study. ``versions`` keeps every version string the run reported.
    ``param_bytes`` is the size of the trained parameters, so the optimizer's state multiple is
    ``optimizer_state_bytes / param_bytes``.

    ``trajectory`` is the run's path in the plane as ``[x, y]`` pairs (2-D tasks only; a
    non-finite coordinate is stored as null), ``options`` the training options it used and
    ``stopped_early`` whether early stopping ended it. All three are None on runs recorded
    before migration 0005.

    ``function_evals``, ``gradient_evals`` and ``hessian_evals`` are the loss, gradient and
    Hessian evaluations the training loop counted (a line search makes several per step); None
    on runs recorded before migration 0007.

    ``task_params``, ``dtype`` and ``examples_seen`` are facts about the trained model: the
    task's parameter values (a width), the parameters' dtype and the training examples that
    went into the gradients; None on runs recorded before migration 0008.

    ``protocol`` is the key of what the run was trained under (budget, unit, the fixed
    result-changing options: :class:`Protocol`); runs are ranked only against runs of their
    protocol.

    ``lr_meaning`` is what the optimizer's ``lr`` was (its plugin's ``lr_meaning``: ``step
    size``, ``multiplier`` or a named convention such as ``muon/match_rms_adamw``); runs
    recorded before migration 0012 were all of step-size optimizers and say so.
    """

    __tablename__ = "tuner_runs"
    __table_args__ = (
        Index("ix_tuner_runs_task_optimizer_status", "task", "optimizer", "status"),
        Index("ix_tuner_runs_task_optimizer_params_hash", "task", "optimizer", "params_hash"),
        Index("ix_tuner_runs_task_optimizer_config_hash", "task", "optimizer", "config_hash"),
        Index("ix_tuner_runs_task_optimizer_lr_meaning", "task", "optimizer", "lr_meaning"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int | None] = mapped_column(
        ForeignKey("tuner_trials.id", ondelete="CASCADE"), index=True
    )
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("tuner_studies.id", ondelete="CASCADE"), index=True
    )
    task: Mapped[str] = mapped_column(String(100))
    optimizer: Mapped[str] = mapped_column(String(100))
    plugin_version: Mapped[str | None] = mapped_column(String(40))
    space_hash: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params_hash: Mapped[str | None] = mapped_column(String(16))
    config_hash: Mapped[str | None] = mapped_column(String(16))
    lr: Mapped[float | None] = mapped_column(Float, index=True)
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    final_metric: Mapped[float | None] = mapped_column(Float)
    best_metric: Mapped[float | None] = mapped_column(Float)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    steps_to_target: Mapped[int | None] = mapped_column(Integer)
    seconds_to_target: Mapped[float | None] = mapped_column(Float)
    wall_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    optimizer_state_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    param_count: Mapped[int] = mapped_column(BigInteger, default=0)
    param_bytes: Mapped[int | None] = mapped_column(BigInteger)
    device: Mapped[str] = mapped_column(String(40), default="cpu")
    torch_version: Mapped[str | None] = mapped_column(String(40))
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # none_as_null: a run without a path or options gets SQL NULL, not the JSON text 'null'
    trajectory: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    stopped_early: Mapped[bool | None] = mapped_column(Boolean)
    function_evals: Mapped[int | None] = mapped_column(BigInteger)
    gradient_evals: Mapped[int | None] = mapped_column(BigInteger)
    hessian_evals: Mapped[int | None] = mapped_column(BigInteger)
    task_params: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    dtype: Mapped[str | None] = mapped_column(String(20))
    examples_seen: Mapped[int | None] = mapped_column(BigInteger)
    protocol: Mapped[str | None] = mapped_column(String(16))
    lr_meaning: Mapped[str] = mapped_column(String(40), default="step size",
                                            server_default="step size")

    trial: Mapped["Trial | None"] = relationship(back_populates="runs")
    curve: Mapped[list["CurveRow"]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CurveRow.step",
    )

    def __repr__(self) -> str:
        return (
            f"Run(id={self.id!r}, task={self.task!r}, optimizer={self.optimizer!r}, "
            f"seed={self.seed!r}, status={self.status!r}, final_metric={self.final_metric!r})"
        )


class CurveRow(Base):
    """One evaluation point of a run's curve (a :class:`tuner.training.CurvePoint` stored).

    Loss and metric are None where the run produced NaN.
    """

    __tablename__ = "tuner_curve_points"
    __table_args__ = (Index("ix_tuner_curve_points_run_id_step", "run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("tuner_runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float)
    metric: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="curve")


class Protocol(Base):
    """What a protocol key on runs and statistics stands for (:func:`tuner.store.config_key.
    protocol_key`): the budget, its unit, and the result-changing training options held fixed.
    Written with the first run trained under it (migration 0009 filled it in)."""

    __tablename__ = "tuner_protocols"

    key: Mapped[str] = mapped_column(String(16), primary_key=True)
    budget: Mapped[int | None] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(10))
    training: Mapped[dict[str, Any]] = mapped_column(JSON)


class SeedStats(Base):
    """Per-(configuration, seed) totals of the runs, maintained by database triggers (0009).

    One row per (task, optimizer, protocol, config_hash, seed): the same sums as
    :class:`ConfigStats` keeps, over the runs of one seed of one configuration. A second run of
    a (configuration, seed) is a replay and lands in the same row: it adds no observation.
    Never written by tuner's code.
    """

    __tablename__ = "tuner_seed_stats"
    __table_args__ = ({"sqlite_with_rowid": False},)

    task: Mapped[str] = mapped_column(String(100), primary_key=True)
    optimizer: Mapped[str] = mapped_column(String(100), primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(16), primary_key=True)
    seed: Mapped[int] = mapped_column(Integer, primary_key=True)
    lr: Mapped[float | None] = mapped_column(Float)
    runs: Mapped[int] = mapped_column(Integer)
    complete: Mapped[int] = mapped_column(Integer)
    diverged: Mapped[int] = mapped_column(Integer)
    pruned: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    metric_count: Mapped[int] = mapped_column(Integer)
    reached: Mapped[int] = mapped_column(Integer)
    state_measured: Mapped[int] = mapped_column(Integer)
    metric_sum: Mapped[float] = mapped_column(Float)
    metric_sumsq: Mapped[float] = mapped_column(Float)
    steps_sum: Mapped[float] = mapped_column(Float)
    state_multiple_sum: Mapped[float] = mapped_column(Float)


class ConfigStats(Base):
    """Per-configuration figures, recomputed from its :class:`SeedStats` rows by database
    triggers at every write of a run (migration 0009).

    One row per (task, optimizer, protocol, config_hash). Run counts by status (``runs``,
    ``complete``, ``diverged``, ``pruned``, ``failed``) are over runs, replays included. The
    result is over *seeds*, one observation each however often it was replayed:
    ``metric_count`` is the number of seeds with a complete run, ``metric_sum`` and
    ``metric_sumsq`` the sum and sum of squares of those seeds' means, ``metric_mean`` their
    mean (indexed, so the best configuration is one index probe). ``replays`` counts the
    complete runs beyond the first of their seed, and ``replay_sumsq`` their squared deviations
    from their seed's mean: the disagreement of replays (non-deterministic code, another
    device), kept apart as measurement noise. ``reached`` is the number of seeds that reached
    the target and ``steps_sum`` the sum of their mean steps to it. The measured optimizer-state
    multiple (``optimizer_state_bytes / param_bytes``) is over runs: ``state_multiple_sum``,
    ``state_measured`` and their mean ``state_multiple``. Never written by tuner's code.
    """

    __tablename__ = "tuner_config_stats"
    __table_args__ = (
        Index("ix_tuner_config_stats_task_protocol_optimizer_lr", "task", "protocol",
              "optimizer", "lr"),
        Index("ix_tuner_config_stats_task_protocol_optimizer_metric_mean", "task", "protocol",
              "optimizer", "metric_mean"),
        Index("ix_tuner_config_stats_task_protocol_metric_count", "task", "protocol",
              "metric_count"),
        {"sqlite_with_rowid": False},
    )

    task: Mapped[str] = mapped_column(String(100), primary_key=True)
    optimizer: Mapped[str] = mapped_column(String(100), primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), primary_key=True)
    config_hash: Mapped[str] = mapped_column(String(16), primary_key=True)
    lr: Mapped[float | None] = mapped_column(Float)
    runs: Mapped[int] = mapped_column(Integer)
    complete: Mapped[int] = mapped_column(Integer)
    diverged: Mapped[int] = mapped_column(Integer)
    pruned: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    metric_count: Mapped[int] = mapped_column(Integer)
    reached: Mapped[int] = mapped_column(Integer)
    state_measured: Mapped[int] = mapped_column(Integer)
    replays: Mapped[int] = mapped_column(Integer)
    metric_sum: Mapped[float] = mapped_column(Float)
    metric_sumsq: Mapped[float] = mapped_column(Float)
    steps_sum: Mapped[float] = mapped_column(Float)
    state_multiple_sum: Mapped[float] = mapped_column(Float)
    replay_sumsq: Mapped[float] = mapped_column(Float)
    metric_mean: Mapped[float | None] = mapped_column(Float)
    state_multiple: Mapped[float | None] = mapped_column(Float)
