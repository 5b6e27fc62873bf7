"""Optimizers ranked on a task (``tuner best``): each one's best configuration and its evidence.

The ranking is a read of the store (:mod:`tuner.store.queries`) under the rules of
:mod:`tuner.advice.stats`; the task's metric, direction and target come from its record in the
store. Every study of the task counts, not only the last one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.advice.ratios import LrRatio
from tuner.advice.source import (
    NoRunsError,
    no_runs_message,
    open_for_reading,
    task_by_reference,
    task_record,
)
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
    from tuner.store.queries import ConfigResult, ConfigRun, OptimizerSummary


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
    ``gap_relative`` that over ``|winner|``. ``p_best`` is the probability that this optimizer
    is the best on the task and ``tied_with_winner`` whether the winner beats it in fewer than
    90% of the resamples (:mod:`tuner.advice.bootstrap`); both None when the noise is unknown
    (one seed everywhere). ``lr_ratio`` is its best lr over the winner's, with an interval.
    ``config_hash`` is the best configuration's key in the store.
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
    p_best: float | None = None
    lr_ratio: LrRatio | None = None
    pareto: bool | None = None

    @property
    def standard_error(self) -> float | None:
        return standard_error(self.std, self.seeds)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["good_lr"] = list(self.good_lr) if self.good_lr else None
        data["standard_error"] = self.standard_error
        data["lr_ratio"] = self.lr_ratio.to_dict() if self.lr_ratio else None
        return data


@dataclass
class Certainty:
    """How sure the ranking is: ``settled`` when the winner's P(best) >= 0.9; else the runner-up
    (``contender``) and ``more_seeds`` of each best configuration that would settle it (None
    when the noise is unknown or the two means are equal); ``reason`` in words."""

    settled: bool
    winner_p_best: float | None
    contender: str | None
    more_seeds: int | None
    reason: str
    resamples: int


@dataclass
class TaskRanking:
    """Every optimizer measured on a task, best first (what ``tuner best`` prints).

    With a ``memory_budget`` only configurations whose measured optimizer state fits it take
    part (an optimizer with none is not listed). ``lr_ratios`` holds every pair of ranked
    optimizers with an lr (the lower-ranked over the higher-ranked); ``certainty`` says whether
    the winner is named with P(best) >= 0.9 and, if not, how many more seeds would settle it.
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
    lr_ratios: list[LrRatio] = field(default_factory=list)
    certainty: Certainty | None = None
    where: dict[str, Any] | None = None
    """The training options the ranking was restricted to (``{"batch_size": 16}``)."""
    task_problem: str | None = None
    """Set when no optimizer has a result because every run of the task diverged at its first
    evaluation: the task itself is broken (:mod:`tuner.store.broken_task`), in one line."""

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
            "where": self.where,
            "db": self.db, "studies": self.studies,
            "optimizers": [standing.to_dict() for standing in self.optimizers],
            "lr_ratios": [ratio.to_dict() for ratio in self.lr_ratios],
            "certainty": asdict(self.certainty) if self.certainty else None,
            "task_problem": self.task_problem,
        }


def rank_task(
    task: str,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
    memory_budget: str | float | None = None,
    where: dict[str, Any] | None = None,
) -> TaskRanking:
    """Optimizers ranked on ``task`` from every run in the store (``tuner best``).

    ``memory_budget`` (``"1n"``, ...) keeps only configurations whose measured optimizer state
    is at most that multiple of the parameters' bytes; ``where`` (``{"batch_size": 16}``) only
    those trained with these training options. ``task`` may also be a task reference
    (``file.py:Name``) that a study of the store was created from. Raises
    :class:`NoRunsError` when the store holds no run of the task (or no store is there).
    """
    from tuner.advice.bootstrap import CONTENDERS
    from tuner.store import training_options
    from tuner.store.queries import (
        config_runs,
        contender_configs,
        optimizer_summaries,
        study_count,
        tasks_with_runs,
    )

    chosen = None if tolerance is None else Tolerance.parse(tolerance)
    budget = parse_memory_budget(memory_budget)
    store, opened = open_for_reading(db)
    try:
        task = task_by_reference(store, task)
        record = task_record(store, task)
        tol = chosen if chosen is not None else default_tolerance(record.metric)
        summaries = optimizer_summaries(store, task, record.direction, tol.margin, budget,
                                        where)
        if not summaries and (budget is None or task not in tasks_with_runs(store)):
            raise NoRunsError(no_runs_message(store, task))
        runs = config_runs(
            store, task, [(s.optimizer, s.config_hash) for s in summaries if s.config_hash]
        )
        contenders = contender_configs(
            store, task, record.direction,
            [s.optimizer for s in summaries if s.mean is not None], CONTENDERS, budget, where,
        )
        studies = study_count(store, task)
        display = store.display_url
        problem = _task_problem(store, task, record.metric, summaries)
    finally:
        if opened:
            store.dispose()

    standings = [
        _standing(summary, runs.get((summary.optimizer, summary.config_hash or ""), []),
                  training_options)
        for summary in summaries
    ]
    order_and_compare(standings, record.direction)
    ratios, certainty = weigh_evidence(standings, contenders, record.direction)
    mark_pareto(standings, record.direction)
    return TaskRanking(
        task=task, metric=record.metric, direction=record.direction, target=record.target,
        tolerance=tol, db=display, studies=studies, optimizers=standings, kind=record.kind,
        memory_budget=budget, lr_ratios=ratios, certainty=certainty,
        where=dict(where) if where else None, task_problem=problem,
    )


def _task_problem(store: Store, task: str, metric: str, summaries: list[Any]) -> str | None:
    """The broken-task line when no optimizer has a result and the task's runs say why."""
    from tuner.store.broken_task import broken_task

    if any(s.mean is not None for s in summaries):
        return None
    found = broken_task(store, task, metric)
    return found.message() if found is not None else None


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


def mark_pareto(standings: list[OptimizerStanding], direction: str) -> None:
    """Mark the optimizers in the Pareto set over quality, steps to target and measured
    memory (:mod:`tuner.advice.pareto`); those without a result are not part of it."""
    from tuner.advice.pareto import pareto_set, trade_off

    points = [
        trade_off(s.optimizer, s.mean, s.steps_to_target, s.state_multiple, direction)
        for s in standings if s.mean is not None
    ]
    members = set(pareto_set(points))
    for standing in standings:
        standing.pareto = standing.optimizer in members if standing.mean is not None else None


def weigh_evidence(
    standings: list[OptimizerStanding],
    contenders: dict[str, list[ConfigResult]],
    direction: str,
) -> tuple[list[LrRatio], Certainty | None]:
    """P(best), ties, lr ratios and how sure the winner is, from the resample of
    :mod:`tuner.advice.bootstrap` (``standings`` already ordered, best first; ``contenders``
    each optimizer's best configurations, best first)."""
    from tuner.advice.bootstrap import (
        CONFIDENT,
        Contender,
        keep_contenders,
        pooled_squares,
        pooled_std,
        resample,
        seeds_to_settle,
        spread,
    )

    ranked = [s for s in standings if s.mean is not None]
    if not ranked:
        return [], None
    pooled = {optimizer: pooled_squares(configs) for optimizer, configs in contenders.items()}
    task_pooled = pooled_std(sum(sq for sq, _ in pooled.values()),
                             sum(dof for _, dof in pooled.values()))
    spreads: dict[str, float] = {}
    resampled_configs: dict[str, list[Contender]] = {}
    for optimizer, configs in contenders.items():
        own = pooled_std(*pooled[optimizer])
        common = own or task_pooled
        if common is not None:
            spreads[optimizer] = common
        found = []
        for config in configs:
            std = spread(config.std, config.seeds, common)
            if std is None or config.mean is None:
                found = []
                break
            found.append(Contender(config.lr, config.mean, std, config.seeds))
        resampled_configs[optimizer] = keep_contenders(found, direction)
    known = all(resampled_configs.get(s.optimizer) for s in ranked)
    result = resample(resampled_configs, direction) if known else None
    winner = ranked[0]
    ratios = []
    for position, standing in enumerate(ranked):
        if result is not None:
            standing.p_best = result.p_best.get(standing.optimizer)
            if standing is not winner:
                beaten = result.beats.get((winner.optimizer, standing.optimizer), 0.0)
                standing.tied_with_winner = beaten < CONFIDENT
        for better in ranked[:position]:
            if standing.lr is None or better.lr is None:
                continue
            interval = (result.ratio_intervals.get((standing.optimizer, better.optimizer))
                        if result is not None else None)
            ratio = LrRatio(standing.optimizer, better.optimizer, standing.lr / better.lr,
                            *(interval or (None, None)))
            ratios.append(ratio)
            if better is winner:
                standing.lr_ratio = ratio
    return ratios, _certainty(ranked, result, spreads, CONFIDENT, seeds_to_settle)


def _certainty(
    ranked: list[OptimizerStanding], result: Any, spreads: dict[str, float],
    confident: float, seeds_to_settle: Any,
) -> Certainty:
    winner = ranked[0]
    resamples = result.resamples if result is not None else 0
    if len(ranked) == 1:
        return Certainty(True, 1.0, None, None, "only one optimizer measured", resamples)
    if result is None:
        return Certainty(False, None, ranked[1].optimizer, None,
                         "one seed per configuration: the noise is unknown", resamples)
    p_winner = result.p_best.get(winner.optimizer, 0.0)
    contender = max(ranked[1:], key=lambda s: (s.p_best or 0.0, -s.rank))
    if p_winner >= confident:
        return Certainty(True, p_winner, contender.optimizer, None,
                         f"P(best) {p_winner:.2f} >= {confident:g}", resamples)
    std_w = winner.std if winner.seeds >= 2 else spreads.get(winner.optimizer)
    std_c = contender.std if contender.seeds >= 2 else spreads.get(contender.optimizer)
    more = None
    if std_w is not None and std_c is not None:
        more = seeds_to_settle(abs(winner.mean - contender.mean), std_w, std_c,
                               min(winner.seeds, contender.seeds))
    return Certainty(False, p_winner, contender.optimizer, more,
                     f"P(best) {p_winner:.2f} < {confident:g}", resamples)


def best(
    task: str,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
) -> TaskRanking:
    """Optimizers ranked on ``task``, each with its best configuration; see :func:`rank_task`."""
    return rank_task(task, db=db, tolerance=tolerance)
