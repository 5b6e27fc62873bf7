"""Reads behind two views of a study: its best-so-far history, and one trial with its runs.

Both are one short read transaction each, as :mod:`tuner.store.browse`'s pages are, so a page
served beside running workers holds no lock they wait for.

* :func:`best_so_far`: per optimizer, its finished trials in the order they finished, each
  with the best value among its complete trials so far (optuna-dashboard's history plot). A
  pruned or diverged trial adds a point (the count goes on) without changing the best: its
  value is not a final result.
* :func:`trial_detail`: one trial of the study: its row, its runs (one per seed) with their
  whole error text, and each run's curve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from tuner.errors import UnknownNameError
from tuner.store.models import CurveRow, Run, Study, Trial
from tuner.store.values import finite_or_none

if TYPE_CHECKING:
    from tuner.store.database import Store

FINISHED = ("complete", "pruned", "diverged")


def _study_id(connection: Any, name: str) -> int:
    found = connection.execute(select(Study.id).where(Study.name == name)).scalar()
    if found is None:
        raise UnknownNameError(f"no study named {name!r}")
    return int(found)


def best_so_far(store: Store, study: str, direction: str) -> dict[str, dict[str, list[Any]]]:
    """``{optimizer: {"trials": [1, 2, ...], "best": [...], "values": [...]}}``: the n-th
    finished trial of each optimizer, the best complete value up to it (None before the first
    complete one) and its own value (None unless complete); ``direction`` says which is best."""
    with store.engine.connect() as connection:
        study_id = _study_id(connection, study)
        rows = connection.execute(
            select(Trial.optimizer, Trial.status, Trial.value)
            .where(Trial.study_id == study_id, Trial.status.in_(FINISHED))
            .order_by(Trial.finished_at, Trial.id)
        ).all()
    better = max if direction == "maximize" else min
    history: dict[str, dict[str, list[Any]]] = {}
    for optimizer, status, raw in rows:
        found = history.setdefault(optimizer, {"trials": [], "best": [], "values": []})
        value = finite_or_none(raw) if status == "complete" else None
        best = found["best"][-1] if found["best"] else None
        if value is not None:
            best = value if best is None else better(best, value)
        found["trials"].append(len(found["trials"]) + 1)
        found["best"].append(best)
        found["values"].append(value)
    return history


def trial_detail(store: Store, study: str, trial_id: int) -> dict[str, Any]:
    """Trial ``trial_id`` of ``study``: its row, its runs and their curves
    (UnknownNameError when the study has no such trial)."""
    with store.engine.connect() as connection:
        study_id = _study_id(connection, study)
        trial = connection.execute(
            select(Trial).where(Trial.id == trial_id, Trial.study_id == study_id)
        ).first()
        if trial is None:
            raise UnknownNameError(f"study {study!r} has no trial with id {trial_id}")
        runs = connection.execute(
            select(Run.id, Run.seed, Run.status, Run.final_metric, Run.best_metric, Run.steps,
                   Run.wall_seconds, Run.device, Run.error)
            .where(Run.trial_id == trial_id).order_by(Run.seed, Run.id)
        ).all()
        points = connection.execute(
            select(CurveRow.run_id, CurveRow.step, CurveRow.metric)
            .where(CurveRow.run_id.in_([run.id for run in runs]))
            .order_by(CurveRow.run_id, CurveRow.step)
        ).all() if runs else []
    curves: dict[int, dict[str, list[Any]]] = {}
    for run_id, step, metric in points:
        curve = curves.setdefault(run_id, {"steps": [], "values": []})
        curve["steps"].append(step)
        curve["values"].append(finite_or_none(metric))
    return {
        "id": trial.id, "optimizer": trial.optimizer, "number": trial.optuna_trial_number,
        "slot": trial.slot, "status": trial.status, "value": finite_or_none(trial.value),
        "params": trial.params or {}, "origin": trial.origin,
        "started_at": _time(trial.started_at), "finished_at": _time(trial.finished_at),
        "worker": f"{trial.worker_host}:{trial.worker_pid}" if trial.worker_host else None,
        "runs": [
            {"seed": run.seed, "status": run.status,
             "final_metric": finite_or_none(run.final_metric),
             "best_metric": finite_or_none(run.best_metric), "steps": run.steps,
             "wall_seconds": finite_or_none(run.wall_seconds), "device": run.device,
             "error": run.error, "curve": curves.get(run.id, {"steps": [], "values": []})}
            for run in runs
        ],
    }


def _time(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
