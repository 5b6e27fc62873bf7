"""What the report's figures need from the store, as the figures take it: lr points, the curves
and the 2-D paths of each optimizer's best configuration.

Pure reads through :mod:`tuner.store.queries` (the store owns every statement); nothing here is
trained or drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuner.report.learning_curves import SeedCurve
from tuner.report.lr_sensitivity import LrPoint
from tuner.report.trajectories import Point, Trajectory

if TYPE_CHECKING:
    from tuner.advice import TaskRanking
    from tuner.store import Store
    from tuner.store.queries import Scope


def lr_points(store: Store, scope: Scope) -> dict[str, list[LrPoint]]:
    """Every configuration of every optimizer within ``scope`` (a ranking's task and protocol):
    lr, mean, std over seeds, divergence.

    Read from ``tuner_config_stats`` (one row per configuration); configurations with only
    pruned or failed runs have nothing to plot and are left out.
    """
    from tuner.store.queries import lr_results

    found: dict[str, list[LrPoint]] = {}
    for result in lr_results(store, scope):
        if result.mean is None and not result.diverged:
            continue
        found.setdefault(result.optimizer, []).append(
            LrPoint(lr=result.lr, mean=result.mean, std=result.std, seeds=result.seeds,
                    diverged=bool(result.diverged))
        )
    return found


def best_config_curves(store: Store, ranking: TaskRanking) -> dict[str, list[SeedCurve]]:
    """The curves of the complete seeds of each optimizer's best configuration."""
    from tuner.store.queries import best_config_curves as stored_curves

    return {
        optimizer: [SeedCurve(curve["steps"], curve["values"]) for curve in curves]
        for optimizer, curves in stored_curves(store, ranking).items()
    }


def stored_trajectories(
    store: Store, ranking: TaskRanking, seeds: int = 1
) -> tuple[dict[str, list[Trajectory]], list[str]]:
    """The stored 2-D paths of each optimizer's best configuration, and who has none stored.

    Takes the complete runs of the configuration in seed order (the first ``seeds`` of them)
    and reads their ``trajectory`` column; nothing is trained. Returns the paths by optimizer
    and, in ranking order, the optimizers whose chosen runs carry no path (runs recorded before
    the store kept paths). A path is cut at its first non-finite point (stored as null).
    """
    from tuner.store.queries import config_trajectories

    paths: dict[str, list[Trajectory]] = {}
    missing: list[str] = []
    for standing in ranking.optimizers:
        if not standing.config_hash or standing.mean is None:
            continue
        rows = config_trajectories(
            store, ranking.scope, standing.optimizer, standing.config_hash, seeds
        )
        for seed, stored in rows:
            points = _finite_prefix(stored or [])
            if points:
                paths.setdefault(standing.optimizer, []).append(Trajectory(points, seed))
        if rows and standing.optimizer not in paths:
            missing.append(standing.optimizer)
    return paths, missing


def _finite_prefix(stored: Sequence[Any]) -> list[Point]:
    """Stored ``[x, y]`` pairs as points, up to the first one with a missing coordinate."""
    points: list[Point] = []
    for pair in stored:
        if len(pair) != 2 or any(
            not isinstance(v, (int, float)) or not math.isfinite(v) for v in pair
        ):
            break
        points.append((float(pair[0]), float(pair[1])))
    return points
