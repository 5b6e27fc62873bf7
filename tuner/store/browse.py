"""Paged reads for the service: a study's trials and runs, and each configuration as a point
(against its lr, or against each of its hyperparameters).

Every function opens one short read transaction (a pooled connection, returned at once), so a
page served beside running workers never holds a lock they wait for: SQLite readers in WAL mode
see the last committed state, PostgreSQL readers a snapshot. ``offset``/``limit`` pages come
with the total, newest first unless asked otherwise, so a live page shows the trials that just
finished.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, select

from tuner.errors import UnknownNameError
from tuner.store.models import ConfigStats, Run, Study, Trial
from tuner.store.values import finite_or_none

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from tuner.store.database import Store

MAX_PAGE = 500
"""The largest page a caller may ask for."""


@dataclass
class Page:
    """One page of rows: ``items`` from ``offset`` on, out of ``total``."""

    items: list[dict[str, Any]]
    total: int
    offset: int
    limit: int
    filters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items, "total": self.total, "offset": self.offset,
            "limit": self.limit, "filters": self.filters,
        }


def _study_id(connection: Connection, name: str) -> int:
    found = connection.execute(select(Study.id).where(Study.name == name)).scalar()
    if found is None:
        raise UnknownNameError(f"no study named {name!r}")
    return int(found)


def _bounded(offset: int, limit: int) -> tuple[int, int]:
    if offset < 0 or limit < 1 or limit > MAX_PAGE:
        raise ValueError(f"offset must be >= 0 and limit within 1..{MAX_PAGE}")
    return offset, limit


def _page(
    store: Store, study: str, table: Any, columns: list[Any], filters: dict[str, Any],
    offset: int, limit: int, item: Callable[[Any], dict[str, Any]],
    conditions: Sequence[Any] = (), order: Sequence[Any] = (),
) -> Page:
    """One page of ``table``'s rows of ``study``: ``columns`` of the rows whose columns equal
    the ``filters`` given (None: any) and that meet the further ``conditions``, each made an
    item by ``item``; in ``order``, then newest first."""
    offset, limit = _bounded(offset, limit)
    with store.engine.connect() as connection:
        where = [table.study_id == _study_id(connection, study), *conditions]
        where += [getattr(table, name) == value for name, value in filters.items()
                  if value is not None]
        total = connection.execute(
            select(func.count()).select_from(table).where(*where)
        ).scalar_one()
        rows = connection.execute(
            select(*columns).where(*where).order_by(*order, table.id.desc())
            .offset(offset).limit(limit)
        ).all()
    return Page([item(row) for row in rows], int(total), offset, limit, filters)


TRIAL_SORTS = ("newest", "oldest", "value", "-value")
"""How a page of trials may be ordered: by id (newest or oldest first) or by value (lowest or,
with ``-``, highest first; trials without a value last either way)."""


def trials_page(
    store: Store, study: str, *, offset: int = 0, limit: int = 50,
    optimizer: str | None = None, status: str | None = None, sort: str = "newest",
    min_value: float | None = None, max_value: float | None = None,
) -> Page:
    """The trials of ``study``, each with its seeds' count, one page of them: of ``optimizer``
    and with ``status`` when given, with a value from ``min_value`` to ``max_value`` when
    either is given (a trial without a value is then left out), in ``sort`` order
    (:data:`TRIAL_SORTS`)."""
    if sort not in TRIAL_SORTS:
        raise ValueError(f"sort must be one of {', '.join(TRIAL_SORTS)}, got {sort!r}")
    seeds = (
        select(func.count()).select_from(Run).where(Run.trial_id == Trial.id)
        .correlate(Trial).scalar_subquery()
    )
    columns = [
        Trial.id, Trial.optimizer, Trial.slot, Trial.optuna_trial_number, Trial.status,
        Trial.value, Trial.params, Trial.started_at, Trial.finished_at, Trial.worker_host,
        Trial.worker_pid, seeds.label("seeds"),
    ]
    conditions = []
    if min_value is not None:
        conditions.append(Trial.value >= min_value)
    if max_value is not None:
        conditions.append(Trial.value <= max_value)
    order = {
        "newest": [], "oldest": [Trial.id.asc()],
        "value": [Trial.value.is_(None), Trial.value.asc()],
        "-value": [Trial.value.is_(None), Trial.value.desc()],
    }[sort]
    page = _page(store, study, Trial, columns, {"optimizer": optimizer, "status": status},
                 offset, limit, _trial_item, conditions, order)
    page.filters |= {"min_value": min_value, "max_value": max_value, "sort": sort}
    return page


def _trial_item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "optimizer": row.optimizer, "slot": row.slot,
        "number": row.optuna_trial_number, "status": row.status,
        "value": finite_or_none(row.value), "params": row.params or {},
        "started_at": _time(row.started_at), "finished_at": _time(row.finished_at),
        "worker": f"{row.worker_host}:{row.worker_pid}" if row.worker_host else None,
        "seeds": int(row.seeds or 0),
    }


def runs_page(
    store: Store, study: str, *, offset: int = 0, limit: int = 50,
    optimizer: str | None = None, status: str | None = None,
) -> Page:
    """The runs (one per seed of a trial) of ``study``, newest first, one page of them."""
    columns = [
        Run.id, Run.trial_id, Run.optimizer, Run.seed, Run.status, Run.final_metric,
        Run.best_metric, Run.steps, Run.steps_to_target, Run.wall_seconds, Run.lr, Run.params,
        Run.device, Run.error, Run.created_at,
    ]
    return _page(store, study, Run, columns, {"optimizer": optimizer, "status": status},
                 offset, limit, _run_item)


def _run_item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "trial_id": row.trial_id, "optimizer": row.optimizer,
        "seed": row.seed, "status": row.status, "final_metric": finite_or_none(row.final_metric),
        "best_metric": finite_or_none(row.best_metric), "steps": row.steps,
        "steps_to_target": row.steps_to_target, "wall_seconds": finite_or_none(row.wall_seconds),
        "lr": finite_or_none(row.lr), "params": row.params or {}, "device": row.device,
        "error": (row.error or "").strip().splitlines()[-1] if row.error else None,
        "created_at": _time(row.created_at),
    }


def lr_sensitivity(
    store: Store, task: str, direction: str, *, per_optimizer: int = 300,
    protocol: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Each optimizer's configurations on ``task`` as lr-sensitivity points, with parameters;
    with ``protocol``, only those trained under it (what a ranking compares).

    One point per configuration that has an lr and a final result or diverged: its lr, mean
    and sample standard deviation over complete seeds (from ``tuner_config_stats``), seeds,
    whether it diverged, and the parameters of one of its runs (the configuration a chart's
    hover shows). At most ``per_optimizer`` points each: the best results first, then the
    diverged ones.
    """
    stats = ConfigStats.__table__.c
    scope = stats.task == task
    if protocol is not None:
        scope = and_(scope, stats.protocol == protocol)
    found: dict[str, list[dict[str, Any]]] = {}
    with store.engine.connect() as connection:
        optimizers = connection.execute(
            select(stats.optimizer).where(scope).distinct()
        ).scalars().all()
        for optimizer in sorted(optimizers):
            found[optimizer] = _points(connection, and_(scope, stats.lr.is_not(None)),
                                       optimizer, direction, per_optimizer)
    return found


def configurations(
    store: Store, task: str, optimizer: str, direction: str, *, protocol: str | None = None,
    limit: int = 300,
) -> list[dict[str, Any]]:
    """The configurations of ``optimizer`` on ``task`` (under ``protocol`` when given) that
    have a final result or diverged, as :func:`lr_sensitivity` gives them whether or not they
    have an lr: the points of an optimizer's slice plots and parallel coordinates. At most
    ``limit``: the best first, then the diverged ones."""
    stats = ConfigStats.__table__.c
    scope = stats.task == task
    if protocol is not None:
        scope = and_(scope, stats.protocol == protocol)
    with store.engine.connect() as connection:
        return _points(connection, scope, optimizer, direction, limit)


def _points(
    connection: Connection, scope: Any, optimizer: str, direction: str, limit: int
) -> list[dict[str, Any]]:
    """The configurations of ``optimizer`` within ``scope`` (a condition on
    ``tuner_config_stats``) with a result or a divergence, best first, each with the
    parameters of one of its runs."""
    stats = ConfigStats.__table__.c
    runs = Run.__table__.c
    params = (
        select(runs.params)
        .where(
            runs.task == stats.task, runs.optimizer == stats.optimizer,
            runs.protocol == stats.protocol, runs.config_hash == stats.config_hash,
        )
        .limit(1)
        .correlate(ConfigStats.__table__)
        .scalar_subquery()
    )
    order = stats.metric_mean.desc() if direction == "maximize" else stats.metric_mean.asc()
    has_point = (stats.metric_count > 0) | (stats.diverged > 0)
    rows = connection.execute(
        select(
            stats.lr, stats.metric_mean, stats.metric_sum, stats.metric_sumsq,
            stats.metric_count, stats.diverged, stats.config_hash, params.label("params"),
        )
        .where(scope, stats.optimizer == optimizer, has_point)
        .order_by(case((stats.diverged > 0, 1), else_=0), order, stats.config_hash)
        .limit(limit)
    ).all()
    return [_lr_point(row) for row in rows]


def _lr_point(row: Any) -> dict[str, Any]:
    n = int(row.metric_count or 0)
    std = None  # unknown with one seed
    if n > 1 and row.metric_mean is not None:
        variance = (row.metric_sumsq - n * row.metric_mean**2) / (n - 1)
        std = math.sqrt(max(variance, 0.0))
    diverged = bool(row.diverged)
    return {
        "lr": finite_or_none(row.lr),
        "mean": None if diverged else finite_or_none(row.metric_mean),
        "std": None if diverged else finite_or_none(std), "seeds": n, "diverged": diverged,
        "config_hash": row.config_hash, "params": row.params or {},
    }


def _time(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
