"""Optimizers across tasks (``tuner compare``): ranks, wins, and how good the defaults are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.advice.ranking import rank_task
from tuner.advice.source import NoRunsError, open_for_reading, rankable_tasks
from tuner.advice.stats import AggregateRank, Tolerance, aggregate_ranks, rank_values

if TYPE_CHECKING:
    from tuner.store import Store


@dataclass
class Comparison:
    """Optimizers across tasks (``tuner compare``): ranks, mean rank, wins, and defaults."""

    tasks: list[str]
    db: str
    rankings: list[AggregateRank]
    per_task: dict[str, dict[str, Any]]
    defaults_within_tolerance: int
    defaults_tasks: int
    per_optimizer_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks, "db": self.db,
            "optimizers": [asdict(row) for row in self.rankings],
            "per_task": self.per_task,
            "defaults": {
                "within_tolerance": self.defaults_within_tolerance,
                "tasks": self.defaults_tasks,
                "per_optimizer": self.per_optimizer_defaults,
            },
        }


def stored_tasks(db: str | Store | None = None) -> list[str]:
    """The tasks that have runs in the store."""
    from tuner.store.queries import tasks_with_runs

    store, opened = open_for_reading(db)
    try:
        return tasks_with_runs(store)
    finally:
        if opened:
            store.dispose()


def compare(
    tasks: Sequence[str] | None = None,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
) -> Comparison:
    """Optimizers x tasks: rank per task, mean rank and wins, and how good the defaults are.

    ``tasks`` defaults to every task with runs and a task record.

    An optimizer's default on a task is the configuration its runs had in trials of origin
    ``recommended`` (the optimizer's recommended configuration, every study's first trial); the
    store says which, no plugin is asked. When studies under different training options each
    ran one, the one with the most seeds is taken. Per task, the best default (over optimizers)
    is compared with the tuned best (over optimizers and configurations) within the tolerance,
    and ``defaults_vs_tuning`` puts the best of the K defaults beside each optimizer tuned with
    K configurations (:mod:`tuner.advice.defaults`).
    """
    from tuner.advice.defaults import defaults_against_tuning
    from tuner.store.queries import recommended_configs

    store, opened = open_for_reading(db)
    try:
        names = list(tasks) if tasks else rankable_tasks(store)
        if not names:
            raise NoRunsError(f"no runs in {store.display_url}; run a study first")
        per_task_ranks: dict[str, dict[str, float]] = {}
        per_task: dict[str, dict[str, Any]] = {}
        per_optimizer_defaults: dict[str, dict[str, Any]] = {}
        within_count = defaults_tasks = 0
        for task in names:
            ranking = rank_task(task, db=store, tolerance=tolerance)
            tol = ranking.tolerance
            per_task_ranks[task] = rank_values(
                {s.optimizer: s.mean for s in ranking.optimizers}, ranking.direction
            )
            defaults = {}
            for optimizer, found in recommended_configs(store, task).items():
                default = found[0]
                usable = default.seeds > 0 and not default.diverged and default.mean is not None
                if usable:
                    defaults[optimizer] = default.mean
                tuned = ranking.standing(optimizer).mean
                per_optimizer_defaults.setdefault(optimizer, {})[task] = {
                    "default_mean": default.mean if not default.diverged else None,
                    "default_diverged": bool(default.diverged),
                    "default_seeds": default.seeds,
                    "tuned_mean": tuned,
                    "within_tolerance": (
                        usable and tuned is not None
                        and tol.within(default.mean, tuned, ranking.direction)
                    ),
                }
            winner = ranking.winner
            entry: dict[str, Any] = {
                "metric": ranking.metric, "direction": ranking.direction,
                "tolerance": str(tol),
                "ranks": per_task_ranks[task],
                "tuned_best": (
                    {"optimizer": winner.optimizer, "mean": winner.mean, "lr": winner.lr,
                     "training": winner.training}
                    if winner else None
                ),
                "best_default": None, "default_within_tolerance": None,
            }
            if defaults and winner is not None:
                sign = -1.0 if ranking.direction == "maximize" else 1.0
                name = min(defaults, key=lambda o: sign * defaults[o])
                within = tol.within(defaults[name], winner.mean, ranking.direction)
                entry["best_default"] = {"optimizer": name, "mean": defaults[name]}
                entry["default_within_tolerance"] = within
                defaults_tasks += 1
                within_count += int(within)
            entry["defaults_vs_tuning"] = defaults_against_tuning(store, ranking)
            per_task[task] = entry
        display = store.display_url
    finally:
        if opened:
            store.dispose()
    return Comparison(
        tasks=names, db=display, rankings=aggregate_ranks(per_task_ranks), per_task=per_task,
        defaults_within_tolerance=within_count, defaults_tasks=defaults_tasks,
        per_optimizer_defaults=per_optimizer_defaults,
    )


def profile_costs(
    tasks: Sequence[str] | None = None, db: str | Store | None = None
) -> dict[str, dict[str, float | None]]:
    """Per task and optimizer, the tuned steps-to-target (for performance profiles); ``tasks``
    defaults to every task with runs and a record.

    The cost is the smallest mean steps-to-target over the configurations whose every complete
    seed reached the task's target (none diverged); None when no configuration did.
    """
    store, opened = open_for_reading(db)
    try:
        names = list(tasks) if tasks else rankable_tasks(store)
        costs = {}
        for task in names:
            ranking = rank_task(task, db=store)
            costs[task] = {s.optimizer: s.fastest_steps_to_target for s in ranking.optimizers}
        return costs
    finally:
        if opened:
            store.dispose()
