"""Optimizers ranked on a task (``tuner best``): each one's best configuration and its evidence.

The ranking is a read of the store (:mod:`tuner.store.queries`) under the rules of
:mod:`tuner.advice.stats`; the task's metric, direction and target come from its record in the
store. Every study of the task counts, not only the last one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.advice.source import NoRunsError, no_runs_message, open_for_reading, task_record
from tuner.advice.stats import (
    Tolerance,
    default_tolerance,
    parse_memory_budget,
    sample_std,
    standard_error,
    tied_within_noise,
)
from tuner.errors import UnknownNameError

if TYPE_CHECKING:
    from tuner.store import Store
    from tuner.store.queries import ConfigRun, OptimizerSummary


@dataclass
class OptimizerStanding:
    """One optimizer on one task: its best configuration and what surrounds it.

    ``mean``/``std`` are over the complete seeds of the best configuration; ``params`` are its
    hyperparameters and ``training`` the training options that change the result (budget,
    schedule, ...; None for runs recorded before the store kept options). ``trials`` counts the
    distinct configurations tried (across every study of the task) and ``runs`` all their seeds,
    with ``pruned``/``diverged``/``failed`` among them. ``good_lr`` is the good-lr interval;
    ``state_multiple`` the measured optimizer state of the best configuration as a multiple of
    the parameters' bytes. ``gap`` is how much worse than the winner (metric units, >= 0) and
    ``gap_relative`` that over ``|winner|``. ``tied_with_winner`` is None when the noise is
    unknown (one seed). ``config_hash`` is the best configuration's key in the store.
    """

    optimizer: str
    rank: int
    mean: float | None
    std: float | None
    seeds: int
    params: dict[str, Any]
    lr: float | None
    trials: int
    runs: int
    pruned: int
    diverged: int
    failed: int
    good_lr: tuple[float, float] | None
    steps_to_target: float | None
    seconds_to_target: float | None
    reached_target: int
    fastest_steps_to_target: float | None
    state_multiple: float | None
    training: dict[str, Any] | None = None
    gap: float | None = None
    gap_relative: float | None = None
    tied_with_winner: bool | None = None
    config_hash: str | None = None

    @property
    def standard_error(self) -> float | None:
        return standard_error(self.std, self.seeds)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["good_lr"] = list(self.good_lr) if self.good_lr else None
        data["standard_error"] = self.standard_error
        return data


@dataclass
class TaskRanking:
    """Every optimizer measured on a task, best first (what ``tuner best`` prints).

    With a ``memory_budget`` only configurations whose measured optimizer state fits it take
    part (an optimizer with none is not listed).
    """

    task: str
    metric: str
    direction: str
    target: float | None
    tolerance: Tolerance
    db: str
    studies: int
    optimizers: list[OptimizerStanding]
    kind: str | None = None
    memory_budget: float | None = field(default=None)

    @property
    def winner(self) -> OptimizerStanding | None:
        first = self.optimizers[0] if self.optimizers else None
        return first if first is not None and first.mean is not None else None

    def standing(self, optimizer: str) -> OptimizerStanding:
        for standing in self.optimizers:
            if standing.optimizer == optimizer:
                return standing
        raise UnknownNameError(f"no runs of optimizer {optimizer!r} on task {self.task!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "kind": self.kind, "metric": self.metric,
            "direction": self.direction, "target": self.target,
            "tolerance": str(self.tolerance), "memory_budget": self.memory_budget,
            "db": self.db, "studies": self.studies,
            "optimizers": [standing.to_dict() for standing in self.optimizers],
        }


def rank_task(
    task: str,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
    memory_budget: str | float | None = None,
) -> TaskRanking:
    """Optimizers ranked on ``task`` from every run in the store (``tuner best``).

    ``memory_budget`` (``"1n"``, ...) keeps only configurations whose measured optimizer state
    is at most that multiple of the parameters' bytes. Raises :class:`NoRunsError` when the
    store holds no run of the task (or no store is there).
    """
    from tuner.store import training_options
    from tuner.store.queries import config_runs, optimizer_summaries, study_count, tasks_with_runs

    chosen = None if tolerance is None else Tolerance.parse(tolerance)
    budget = parse_memory_budget(memory_budget)
    store, opened = open_for_reading(db)
    try:
        record = task_record(store, task)
        tol = chosen if chosen is not None else default_tolerance(record.metric)
        summaries = optimizer_summaries(store, task, record.direction, tol.margin, budget)
        if not summaries and (budget is None or task not in tasks_with_runs(store)):
            raise NoRunsError(no_runs_message(store, task))
        runs = config_runs(
            store, task, [(s.optimizer, s.config_hash) for s in summaries if s.config_hash]
        )
        studies = study_count(store, task)
        display = store.display_url
    finally:
        if opened:
            store.dispose()

    standings = [
        _standing(summary, runs.get((summary.optimizer, summary.config_hash or ""), []),
                  training_options)
        for summary in summaries
    ]
    order_and_compare(standings, record.direction)
    return TaskRanking(
        task=task, metric=record.metric, direction=record.direction, target=record.target,
        tolerance=tol, db=display, studies=studies, optimizers=standings, kind=record.kind,
        memory_budget=budget,
    )


def _standing(
    summary: OptimizerSummary, measured: list[ConfigRun], training_options: Any
) -> OptimizerStanding:
    complete = [r for r in measured if r.status == "complete" and r.final_metric is not None]
    finals = [r.final_metric for r in complete]
    reached = [r for r in complete if r.steps_to_target is not None]
    seconds = [r.seconds_to_target for r in reached if r.seconds_to_target is not None]
    return OptimizerStanding(
        optimizer=summary.optimizer,
        rank=0,
        mean=_mean(finals),
        std=sample_std(finals),
        seeds=len(finals),
        params=dict(measured[0].params) if measured else {},
        lr=summary.lr,
        trials=summary.trials,
        runs=summary.runs,
        pruned=summary.pruned,
        diverged=summary.diverged,
        failed=summary.failed,
        good_lr=(
            (summary.good_low, summary.good_high) if summary.good_low is not None else None
        ),
        steps_to_target=_mean([float(r.steps_to_target) for r in reached]),
        seconds_to_target=_mean(seconds),
        reached_target=len(reached),
        fastest_steps_to_target=summary.fastest_steps,
        state_multiple=summary.state_multiple,
        training=training_options(measured[0].options) if measured else None,
        config_hash=summary.config_hash,
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def order_and_compare(standings: list[OptimizerStanding], direction: str) -> None:
    """Sort best first, number the ranks, and measure each one against the winner."""
    sign = -1.0 if direction == "maximize" else 1.0
    standings.sort(
        key=lambda s: (s.mean is None, sign * s.mean if s.mean is not None else 0.0, s.optimizer)
    )
    winner = standings[0] if standings and standings[0].mean is not None else None
    for position, standing in enumerate(standings, start=1):
        standing.rank = position
        if winner is None or standing.mean is None:
            continue
        gap = (winner.mean - standing.mean) * (1 if direction == "maximize" else -1)
        standing.gap = max(gap, 0.0)
        standing.gap_relative = standing.gap / abs(winner.mean) if winner.mean else None
        if standing is winner:
            standing.tied_with_winner = True
        else:
            standing.tied_with_winner = tied_within_noise(
                winner.mean, winner.standard_error, standing.mean, standing.standard_error
            )


def best(
    task: str,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
) -> TaskRanking:
    """Optimizers ranked on ``task``, each with its best configuration; see :func:`rank_task`."""
    return rank_task(task, db=db, tolerance=tolerance)
