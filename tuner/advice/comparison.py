"""Optimizers across tasks (``tuner compare``): ranks, wins, and how good the defaults are.

Over every task in the store (or the ones named), per optimizer:

- its rank on each task by tuned result (1 = best; exact ties share the mean of their places,
  an optimizer without a result is last), its *mean rank* over the tasks it ran on, its wins
  and the number of those tasks (:func:`tuner.advice.stats.aggregate_ranks`);
- the Dolan-Moré *performance profile* of its speed: the share of the tasks on which its
  tuned steps to the task's target is within a factor tau of the fastest optimizer's there
  (:func:`tuner.advice.stats.performance_profile`; speed in steps, a task no configuration of
  an optimizer reached the target on counts against it), at :data:`PROFILE_TAUS`;
- the Crowded Valley view across tasks (Schmidt et al., 2021; :mod:`tuner.advice.defaults`):
  on each task, the best of the K optimizers at their defaults against this optimizer tuned
  with the same K configurations (the expected best of K of its stored configurations); how
  often the tuned one beats the best default, and by how much on average, relative to the best
  default's result (a loss near zero makes relative gains large: the per-task figures are
  kept beside the mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.advice.ranking import rank_task
from tuner.advice.source import NoRunsError, open_for_reading, rankable_tasks
from tuner.advice.stats import (
    AggregateRank,
    Tolerance,
    aggregate_ranks,
    is_better,
    performance_profile,
    rank_values,
)

if TYPE_CHECKING:
    from tuner.store import Store

PROFILE_TAUS = (1.0, 2.0, 4.0)
"""Where ``tuner compare`` reads each optimizer's performance profile (the report draws it
whole)."""


@dataclass
class TunedAgainstDefaults:
    """One optimizer tuned with K configurations against the best of K defaults, over tasks.

    ``tasks`` counts the tasks with both figures, ``beats`` those where the tuned optimizer's
    expected best of K is better than the best default; ``gains`` holds per task how much
    better (metric units, positive when better, in the task's direction) and ``relative`` that
    over ``|best default|``; ``mean_relative_gain`` is the mean of the relative gains (None when
    no best default is nonzero).
    """

    optimizer: str
    tasks: int
    beats: int
    mean_relative_gain: float | None
    gains: dict[str, float] = field(default_factory=dict)
    relative: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    costs: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Per task and optimizer, the tuned steps to target (what the profile is drawn from)."""
    profile: dict[str, list[float]] = field(default_factory=dict)
    """Per optimizer, its performance profile at :data:`PROFILE_TAUS`."""
    tuned_against_defaults: list[TunedAgainstDefaults] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        optimizers = []
        for row in self.rankings:
            entry = asdict(row)
            entry["profile"] = [
                {"tau": tau, "share": share}
                for tau, share in zip(PROFILE_TAUS, self.profile.get(row.optimizer, []),
                                      strict=False)
            ]
            optimizers.append(entry)
        return {
            "tasks": self.tasks, "db": self.db,
            "optimizers": optimizers,
            "per_task": self.per_task,
            "defaults": {
                "within_tolerance": self.defaults_within_tolerance,
                "tasks": self.defaults_tasks,
                "per_optimizer": self.per_optimizer_defaults,
                "tuned_against_best_default": [
                    row.to_dict() for row in self.tuned_against_defaults
                ],
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
    budget: int | None = None,
) -> Comparison:
    """Optimizers x tasks: rank per task, mean rank and wins, and how good the defaults are.

    ``tasks`` defaults to every task with runs and a task record. On each task the ranking is
    of one protocol (:func:`tuner.advice.rank_task`: the most measured, or the one at
    ``budget``), and its entry says which and what else was measured. Also the performance
    profile of the tuned steps to target and the Crowded Valley view across the tasks (the
    module docstring).

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
        for task in list(names):
            try:
                ranking = rank_task(task, db=store, tolerance=tolerance, budget=budget)
            except NoRunsError:
                if budget is None:
                    raise
                names.remove(task)  # not measured at this budget: left out
                continue
            tol = ranking.tolerance
            per_task_ranks[task] = rank_values(
                {s.optimizer: s.expected if s.expected is not None else s.mean
                 for s in ranking.optimizers}, ranking.direction
            )
            defaults = {}
            for optimizer, found in recommended_configs(store, ranking.scope).items():
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
                "tolerance": str(tol), "protocol": ranking.protocol_text(),
                "also_measured": ranking.others_text(),
                "trials_compared": ranking.trials_compared,
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
            entry["steps_to_target"] = {
                s.optimizer: s.fastest_steps_to_target for s in ranking.optimizers
            }
            per_task[task] = entry
        if not names:
            raise NoRunsError(f"no task in {store.display_url} was measured at budget {budget}")
        display = store.display_url
    finally:
        if opened:
            store.dispose()
    costs = {task: entry["steps_to_target"] for task, entry in per_task.items()}
    return Comparison(
        tasks=names, db=display, rankings=aggregate_ranks(per_task_ranks), per_task=per_task,
        defaults_within_tolerance=within_count, defaults_tasks=defaults_tasks,
        per_optimizer_defaults=per_optimizer_defaults, costs=costs,
        profile=performance_profile(costs, PROFILE_TAUS),
        tuned_against_defaults=tuned_against_defaults(per_task),
    )


def tuned_against_defaults(per_task: dict[str, dict[str, Any]]) -> list[TunedAgainstDefaults]:
    """Per optimizer, over the tasks: how often it, tuned with K configurations, beats the best
    of the K defaults, and by how much (from each task's ``defaults_vs_tuning`` and
    ``direction``). Sorted by more wins, then by the larger mean relative gain."""
    rows: dict[str, TunedAgainstDefaults] = {}
    for task, entry in per_task.items():
        found = entry.get("defaults_vs_tuning") or {}
        best_default = found.get("best_default")
        if not best_default:
            continue
        default = best_default["mean"]
        direction = entry["direction"]
        sign = 1.0 if direction == "maximize" else -1.0
        for optimizer, tuned in sorted((found.get("tuned_with_k") or {}).items()):
            if tuned is None:
                continue
            row = rows.setdefault(optimizer, TunedAgainstDefaults(optimizer, 0, 0, None))
            row.tasks += 1
            row.beats += int(is_better(tuned, default, direction))
            row.gains[task] = sign * (tuned - default)
            if default != 0:
                row.relative[task] = row.gains[task] / abs(default)
    for row in rows.values():
        if row.relative:
            row.mean_relative_gain = sum(row.relative.values()) / len(row.relative)
    return sorted(rows.values(), key=lambda row: (
        -row.beats, -(row.mean_relative_gain if row.mean_relative_gain is not None
                      else -math.inf), row.optimizer))


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
