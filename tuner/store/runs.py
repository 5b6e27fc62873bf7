"""Recording a run: its row and its curve in one transaction, and the protocol it ran under.

:func:`record_run` is how every run reaches the store: the driver records a trial's runs through
it (:func:`tuner.store.claims.record_and_close`, which closes the trial in the same
transaction), and a run trained outside any study is recorded with no trial.

Every function takes a *target*: a :class:`~tuner.store.database.Store` or an ``Engine`` (the
write is its own transaction, committed on return), or a ``Session``/``Connection`` (the write
joins that transaction; commit it yourself). Writes use Core statements, not ORM unit-of-work:
a run is one INSERT and its curve one executemany INSERT, so recording costs about a millisecond.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from tuner.store.config_key import config_hash, protocol_hash, protocol_key
from tuner.store.database import StoreError
from tuner.store.models import (
    RUN_STATUSES,
    CurveRow,
    Protocol,
    Run,
    Trial,
    params_hash,
    utcnow,
)
from tuner.store.target import Target, writing
from tuner.store.values import finite_or_none, plain_json

if TYPE_CHECKING:
    from tuner.training.result import RunResult


def run_row(
    result: RunResult,
    trial_id: int | None = None,
    *,
    plugin_version: str | None = None,
    space_hash: str | None = None,
    protocol: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``tuner_runs`` column values for a RunResult (without ``study_id``).

    ``protocol`` is what the run was trained under (:func:`~tuner.store.config_key.
    protocol_key`; a study's driver gives it); without it, every result-changing option of the
    run counts as fixed and its budget is in steps. Its key is the ``protocol`` column.

    ``plugin_version`` and ``space_hash`` default to ``result.versions["plugin"]`` and
    ``result.versions["space_hash"]``; ``torch_version`` is ``result.versions["torch"]``.
    The trajectory becomes a list of ``[x, y]`` pairs and, like ``options``, has its non-finite
    numbers stored as null (:mod:`tuner.store.values`); empty ``options`` are stored as None
    ("not recorded"). ``config_hash`` is the configuration key of ``result.params`` and
    ``result.options`` (:mod:`tuner.store.config_key`), ``params_hash`` that of the params
    alone. The evaluation counts are ``result.function_evals``, ``gradient_evals`` and
    ``hessian_evals``; the model's facts ``result.task_params`` (None when empty), ``dtype`` and
    ``examples_seen``; ``lr_meaning`` what the run's lr is (``result.lr_meaning``, from its
    optimizer plugin; ``step size`` for a result that does not say).
    """
    if result.status not in RUN_STATUSES:
        raise StoreError(
            f"unknown run status {result.status!r} (one of {', '.join(RUN_STATUSES)})"
        )
    versions = {str(k): str(v) for k, v in (result.versions or {}).items()}
    params = plain_json(dict(result.params))
    options = plain_json(dict(result.options)) if result.options else None
    lr = params.get("lr")
    return {
        "trial_id": trial_id,
        "task": result.task,
        "optimizer": result.optimizer,
        "plugin_version": plugin_version or versions.get("plugin"),
        "space_hash": space_hash or versions.get("space_hash"),
        "params": params,
        "params_hash": params_hash(params),
        "config_hash": config_hash(params, options),
        "lr": float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None,
        "seed": int(result.seed),
        "status": result.status,
        "final_metric": finite_or_none(result.final_metric),
        "best_metric": finite_or_none(result.best_metric),
        "steps": int(result.steps),
        "steps_to_target": result.steps_to_target,
        "seconds_to_target": finite_or_none(result.seconds_to_target),
        "wall_seconds": float(result.wall_seconds),
        "peak_memory_bytes": result.peak_memory_bytes,
        "optimizer_state_bytes": int(result.optimizer_state_bytes),
        "param_count": int(result.param_count),
        "param_bytes": _param_bytes(result),
        "device": str(result.device),
        "torch_version": versions.get("torch"),
        "versions": versions,
        "error": result.error,
        "created_at": utcnow(),
        "trajectory": plain_json([[x, y] for x, y in result.trajectory])
        if result.trajectory is not None
        else None,
        "options": options,
        "stopped_early": bool(result.stopped_early),
        "function_evals": _count(result, "function_evals"),
        "gradient_evals": _count(result, "gradient_evals"),
        "hessian_evals": _count(result, "hessian_evals"),
        "task_params": plain_json(dict(getattr(result, "task_params", None) or {})) or None,
        "dtype": getattr(result, "dtype", None),
        "examples_seen": _count(result, "examples_seen"),
        "protocol": protocol_hash(protocol or run_protocol(options)),
        "lr_meaning": getattr(result, "lr_meaning", None) or "step size",
    }


def run_protocol(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The protocol of a run outside a study: its own budget in steps, all options fixed."""
    return protocol_key((options or {}).get("budget"), "steps", options or {})


def remember_protocol(target: Target, protocol: Mapping[str, Any]) -> str:
    """Store what a protocol key stands for, once (concurrent writers welcome); its key."""
    key = protocol_hash(protocol)
    values = {"key": key, "budget": protocol.get("budget"), "unit": protocol["unit"],
              "training": dict(protocol.get("training") or {})}
    with writing(target) as writer:
        bind = writer if isinstance(writer, Connection) else writer.get_bind()
        if bind.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        writer.execute(upsert(Protocol.__table__).values(values).on_conflict_do_nothing())
    return key


def _count(result: RunResult, name: str) -> int | None:
    """An evaluation count of the run (None for a result that carries none)."""
    value = getattr(result, name, None)
    return None if value is None else int(value)


def _param_bytes(result: RunResult) -> int | None:
    """The bytes of the trained parameters: measured by training (``result.param_bytes``), or
    four per parameter (float32, what every run trained in before it was measured)."""
    measured = getattr(result, "param_bytes", None)
    if measured:
        return int(measured)
    return int(result.param_count) * 4 if result.param_count else None


def record_run(
    target: Target,
    trial_id: int | None,
    result: RunResult,
    *,
    plugin_version: str | None = None,
    space_hash: str | None = None,
    protocol: Mapping[str, Any] | None = None,
) -> int:
    """Store one run and its curve in one transaction; returns the run's id.

    ``protocol``: what the run was trained under (see :func:`run_row`), stored once in
    ``tuner_protocols``.

    The run row takes ``study_id`` from its trial (None when ``trial_id`` is None: a run
    recorded outside any study). The curve goes in as one executemany INSERT. If any part
    fails, nothing of the run is stored (with an Engine/Store target; with a Session or
    Connection the caller's transaction decides).
    """
    protocol = protocol or run_protocol(result.options)
    values = run_row(
        result, trial_id, plugin_version=plugin_version, space_hash=space_hash,
        protocol=protocol,
    )
    values["study_id"] = (
        select(Trial.study_id).where(Trial.id == trial_id).scalar_subquery()
        if trial_id is not None
        else None
    )
    curve = [
        {
            "step": point.step,
            "train_loss": finite_or_none(point.train_loss),
            "metric": finite_or_none(point.metric),
            "lr": finite_or_none(point.lr),
            "seconds": point.seconds,
        }
        for point in result.curve
    ]
    try:
        with writing(target) as writer:
            remember_protocol(writer, protocol)
            inserted = writer.execute(insert(Run.__table__).values(values))
            run_id = int(inserted.inserted_primary_key[0])
            if curve:
                for row in curve:
                    row["run_id"] = run_id
                writer.execute(insert(CurveRow.__table__), curve)
    except IntegrityError as error:
        reason = str(error.orig).strip().splitlines()[0]
        raise StoreError(
            f"recording the {result.optimizer} run (seed {result.seed}) failed: {reason}"
        ) from error
    return run_id
