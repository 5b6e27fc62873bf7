"""Every read that advice and reports make: rankings, configurations, defaults, curves, paths.

A *configuration* is one ``config_hash`` (hyperparameters plus the training options that change
the result, :mod:`tuner.store.config_key`) of one optimizer on one task; its figures come from
``tuner_config_stats``, kept exact by triggers on the runs, so a ranking reads about one row per
configuration and a few index probes, however many runs the store holds. Only the runs of the
configurations asked for are read (their seeds, curves, paths).

Functions take a *target* (:mod:`tuner.store.target`): a Store or Engine, read on a connection of
its own, or the caller's Session or Connection, and a :class:`Scope`: the task, the protocol
whose configurations are compared (configurations trained under two protocols are never ranked
together), and optionally one study whose runs alone count. Nothing here writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, or_, select, true

from tuner.store.models import ConfigStats, CurveRow, Protocol, Run, Study, Trial
from tuner.store.target import Target, reading

STATE_SLACK = 1e-9
"""How far over a memory budget a measured state multiple may be and still count as within it."""


@dataclass(frozen=True)
class Scope:
    """Which configurations a read covers: those of ``task`` under ``protocol`` (None: every
    protocol, for reads that do not compare), from the whole store or from the runs of study
    ``study_id`` alone (then recomputed from its runs, :mod:`tuner.store.observations`)."""

    task: str
    protocol: str | None = None
    study_id: int | None = None

    def stats(self) -> Any:
        """The table (or, for one study, the subquery) of per-configuration figures."""
        if self.study_id is None:
            return ConfigStats.__table__
        from tuner.store.observations import study_config_stats

        return study_config_stats(self.study_id)

    def covers(self, stats: Any) -> Any:
        """The condition on ``stats`` rows: this task, and this protocol when one is set."""
        condition = stats.task == self.task
        if self.protocol is not None:
            condition = and_(condition, stats.protocol == self.protocol)
        return condition

    def covers_runs(self) -> Any:
        """The same condition on ``tuner_runs``."""
        runs = Run.__table__.c
        condition = runs.task == self.task
        if self.protocol is not None:
            condition = and_(condition, runs.protocol == self.protocol)
        if self.study_id is not None:
            condition = and_(condition, runs.study_id == self.study_id)
        return condition


@dataclass
class ProtocolCount:
    """One protocol a task was measured under: its key, what it stands for, and how much was
    measured (``observations``: complete (configuration, seed) pairs; ``configurations``)."""

    key: str
    budget: int | None
    unit: str
    training: dict[str, Any]
    observations: int
    configurations: int

    def describe(self) -> str:
        from tuner.store.config_key import describe_protocol

        return describe_protocol({"budget": self.budget, "unit": self.unit,
                                  "training": self.training})


def protocols(
    target: Target, task: str, where: Mapping[str, Any] | None = None,
    study_id: int | None = None,
) -> list[ProtocolCount]:
    """The protocols ``task`` was measured under (within the ``where`` filter and the study),
    most observations first, then the larger budget: the first is what a ranking compares by
    default. Without ``where``, read from the index on (task, protocol, metric_count) alone."""
    scope = Scope(task, None, study_id)
    stats = scope.stats().c
    known = Protocol.__table__.c
    with reading(target) as reader:
        rows = reader.execute(
            select(stats.protocol, func.sum(stats.metric_count), func.count())
            .where(scope.covers(stats), _matching(stats, scope, where))
            .group_by(stats.protocol)
        ).all()
        described = {
            row.key: row for row in reader.execute(
                select(known).where(known.key.in_([row[0] for row in rows]))
            )
        } if rows else {}
    found = []
    for key, observations, configurations in rows:
        meaning = described.get(key)
        found.append(ProtocolCount(
            key=key, budget=meaning.budget if meaning else None,
            unit=meaning.unit if meaning else "steps",
            training=dict(meaning.training or {}) if meaning else {},
            observations=int(observations or 0), configurations=int(configurations),
        ))
    found.sort(key=lambda p: (-p.observations, -(p.budget or 0), p.key))
    return found


@dataclass
class OptimizerSummary:
    """One optimizer on one task, under one protocol, as the statistics sum it up.

    Totals over its configurations (``trials`` is the number of configurations; ``outcomes``
    those with a result, a divergence or a pruning: the draws its tuning made, failed ones left
    out), then its best configuration (``config_hash``, ``lr``, ``mean``, measured
    ``state_multiple``) and the good-lr interval around it (``good_low``..``good_high``); those
    are None when no configuration has a result without divergence. ``worst`` is its worst
    result without divergence (what a pruned or diverged draw counts as). ``fastest_steps`` is
    the smallest mean steps-to-target among configurations whose every seed reached the target.
    """

    optimizer: str
    trials: int
    runs: int
    pruned: int
    diverged: int
    failed: int
    fastest_steps: float | None
    outcomes: int = 0
    worst: float | None = None
    config_hash: str | None = None
    lr: float | None = None
    mean: float | None = None
    state_multiple: float | None = None
    good_low: float | None = None
    good_high: float | None = None


def _within_budget(stats: Any, max_state_multiple: float | None) -> Any:
    """Configurations whose measured state fits the budget (unmeasured ones are kept)."""
    if max_state_multiple is None:
        return True
    return or_(stats.state_multiple.is_(None),
               stats.state_multiple <= max_state_multiple + STATE_SLACK)


def _option_clause(name: str, value: Any) -> Any:
    """Runs whose recorded training option ``name`` is ``value``, or lies in
    ``{"range": [low, high]}`` (both included)."""
    option = Run.options[name]
    if isinstance(value, Mapping):
        low, high = value["range"]
        numbers = option.as_integer() if all(isinstance(b, int) for b in (low, high)) \
            else option.as_float()
        return numbers.between(low, high)
    if isinstance(value, bool):
        return option.as_boolean() == value
    if isinstance(value, int):
        return option.as_integer() == value
    if isinstance(value, float):
        return option.as_float() == value
    return option.as_string() == str(value)


def _matching(stats: Any, scope: Scope, where: Mapping[str, Any] | None) -> Any:
    """Only the configurations of runs trained with the training options ``where``
    (``{"batch_size": 16}``, ``{"batch_size": {"range": [16, 64]}}``): a scan of the task's
    runs, paid only when filtering."""
    if not where:
        return true()
    clauses = [_option_clause(name, value) for name, value in where.items()]
    chosen = select(Run.config_hash).where(scope.covers_runs(), *clauses)
    return stats.config_hash.in_(chosen)


def runs_match(target: Target, task: str, where: Mapping[str, Any]) -> bool:
    """Whether any run of ``task`` was trained with the training options ``where``."""
    clauses = [_option_clause(name, value) for name, value in where.items()]
    with reading(target) as reader:
        return reader.execute(
            select(Run.id).where(Run.task == task, *clauses).limit(1)
        ).first() is not None


@dataclass
class RecordedOption:
    """What the runs of a task recorded for one training option: the lowest and highest
    number, or its distinct values (names, booleans); ``recorded`` False when no run has it."""

    name: str
    low: float | None = None
    high: float | None = None
    values: list[Any] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        return self.low is not None or bool(self.values)


DISTINCT_SHOWN = 10
"""Distinct values of a non-numeric option read for :func:`recorded_options` (enough to say
what the runs have without reading a store's worth of them)."""


def recorded_options(
    target: Target, task: str, where: Mapping[str, Any]
) -> list[RecordedOption]:
    """For each option of the filter ``where``, what the task's runs recorded: the span of
    the numbers (for a number or a range), else the distinct values. One aggregate each."""
    found = []
    with reading(target) as reader:
        for name, value in where.items():
            option = Run.options[name]
            if isinstance(value, Mapping) or (
                isinstance(value, (int, float)) and not isinstance(value, bool)
            ):
                low, high = reader.execute(
                    select(func.min(option.as_float()), func.max(option.as_float()))
                    .where(Run.task == task)
                ).one()
                found.append(RecordedOption(name, low=low, high=high))
                continue
            typed = option.as_boolean() if isinstance(value, bool) else option.as_string()
            values = reader.execute(
                select(typed).where(Run.task == task, typed.is_not(None)).distinct()
                .order_by(typed).limit(DISTINCT_SHOWN)
            ).scalars().all()
            found.append(RecordedOption(name, values=list(values)))
    return found


def optimizer_summaries(
    target: Target,
    scope: Scope,
    direction: str,
    margin: Callable[[float], float],
    max_state_multiple: float | None = None,
    where: Mapping[str, Any] | None = None,
) -> list[OptimizerSummary]:
    """Each optimizer's totals, best configuration and good-lr interval within ``scope``.

    ``margin(best)`` is how far from the best mean a configuration may be and still be good
    (the tolerance). With ``max_state_multiple`` only configurations whose measured optimizer
    state is at most that multiple of the parameter bytes take part; with ``where`` only those
    trained with these training options (``{"batch_size": 16}``).

    One scan of the task's configurations for the totals, then per optimizer four index probes
    that touch only the rows they need:

    1. the best configuration: the first eligible row in ``metric_mean`` order (eligible: a
       mean, no divergence; ties: more seeds, then the key);
    2. the break below: the nearest configuration under the best lr that is bad (diverged, or
       measured and outside the tolerance), walking the lr index down;
    3. the break above, walking it up;
    4. the lowest and highest good lr strictly between the breaks.
    """
    stats = scope.stats().c
    eligible = and_(stats.metric_mean.is_not(None), stats.diverged == 0)
    all_reached = and_(eligible, stats.reached == stats.metric_count)
    fastest = case((all_reached, stats.steps_sum / stats.reached))
    drawn = or_(stats.metric_mean.is_not(None), stats.diverged > 0, stats.pruned > 0)
    maximize = direction == "maximize"
    worst = func.min if maximize else func.max
    budget = and_(scope.covers(stats), _within_budget(stats, max_state_multiple),
                  _matching(stats, scope, where))
    with reading(target) as reader:
        totals = reader.execute(
            select(
                stats.optimizer,
                func.count().label("trials"),
                func.sum(stats.runs).label("runs"),
                func.sum(stats.pruned).label("pruned"),
                func.sum(stats.diverged).label("diverged"),
                func.sum(stats.failed).label("failed"),
                func.min(fastest).label("fastest_steps"),
                func.sum(case((drawn, 1), else_=0)).label("outcomes"),
                worst(case((eligible, stats.metric_mean))).label("worst"),
            )
            .where(budget)
            .group_by(stats.optimizer)
            .order_by(stats.optimizer)
        ).all()
        summaries = []
        for total in totals:
            summary = OptimizerSummary(
                optimizer=total.optimizer, trials=int(total.trials), runs=int(total.runs),
                pruned=int(total.pruned), diverged=int(total.diverged),
                failed=int(total.failed),
                fastest_steps=(float(total.fastest_steps)
                               if total.fastest_steps is not None else None),
                outcomes=int(total.outcomes or 0), worst=total.worst,
            )
            summaries.append(summary)
            scope_of = and_(stats.optimizer == total.optimizer, budget)
            best = reader.execute(
                select(stats.config_hash, stats.lr, stats.metric_mean, stats.state_multiple)
                .where(scope_of, eligible)
                .order_by(
                    stats.metric_mean.desc() if maximize else stats.metric_mean.asc(),
                    stats.metric_count.desc(),
                    stats.config_hash,
                )
                .limit(1)
            ).first()
            if best is None:
                continue
            summary.config_hash, summary.lr = best.config_hash, best.lr
            summary.mean, summary.state_multiple = best.metric_mean, best.state_multiple
            if best.lr is None:
                continue
            allowed = margin(best.metric_mean) + 1e-12 * max(1.0, abs(best.metric_mean))
            if maximize:
                within = stats.metric_mean >= best.metric_mean - allowed
            else:
                within = stats.metric_mean <= best.metric_mean + allowed
            good = and_(eligible, within)
            bad = or_(stats.diverged > 0, and_(stats.metric_mean.is_not(None), ~within))
            below = reader.execute(
                select(stats.lr).where(scope_of, stats.lr < best.lr, bad)
                .order_by(stats.lr.desc()).limit(1)
            ).scalar()
            above = reader.execute(
                select(stats.lr).where(scope_of, stats.lr > best.lr, bad)
                .order_by(stats.lr.asc()).limit(1)
            ).scalar()
            between = [scope_of, good, stats.lr.is_not(None)]
            if below is not None:
                between.append(stats.lr > below)
            if above is not None:
                between.append(stats.lr < above)
            low, high = reader.execute(
                select(func.min(stats.lr), func.max(stats.lr)).where(*between)
            ).one()
            summary.good_low = low if low is not None else best.lr
            summary.good_high = high if high is not None else best.lr
    return summaries


def lr_meanings(target: Target, task: str, optimizers: Iterable[str]) -> dict[str, list[str]]:
    """What each optimizer's lr was in its runs of ``task`` (``tuner_runs.lr_meaning``): one
    meaning, or the first and last of several (its plugin changed what its lr is) in
    alphabetical order; an optimizer without runs is left out.

    Two index probes per optimizer (the lowest and the highest meaning), however many runs."""
    runs = Run.__table__.c
    found: dict[str, list[str]] = {}
    with reading(target) as reader:
        for optimizer in optimizers:
            mine = (runs.task == task, runs.optimizer == optimizer)
            low = reader.execute(select(func.min(runs.lr_meaning)).where(*mine)).scalar()
            if low is None:
                continue
            high = reader.execute(select(func.max(runs.lr_meaning)).where(*mine)).scalar()
            found[optimizer] = [low] if high == low else [low, high]
    return found


@dataclass
class ConfigRun:
    """One run of a configuration, as the advice reads it.

    ``seconds_to_target`` is None for a run trained in a batch with others
    (``options["batch"]`` above 1): its clock was the whole batch's, so it says nothing about
    the optimizer's own speed and stays out of the time advice.
    """

    optimizer: str
    config_hash: str
    seed: int
    status: str
    final_metric: float | None
    steps_to_target: int | None
    seconds_to_target: float | None
    params: dict[str, Any]
    options: dict[str, Any] | None


def shared_clock(options: dict[str, Any] | None) -> bool:
    """Whether a run's time and memory were shared with a batch (``options["batch"]`` > 1)."""
    batch = (options or {}).get("batch")
    return isinstance(batch, int) and batch > 1


def config_runs(
    target: Target, scope: Scope, configurations: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[ConfigRun]]:
    """The runs of the given ``(optimizer, config_hash)`` configurations within ``scope``, each
    configuration's in the order they were recorded. One statement per optimizer, ``optimizer
    = ? AND config_hash IN (...)``: an equality on every column of the index on (task,
    optimizer, config_hash), which the planner takes with or without statistics (an OR of
    pairs let SQLite scan all of the task's runs through another index)."""
    wanted = sorted(set(configurations))
    found: dict[tuple[str, str], list[ConfigRun]] = {pair: [] for pair in wanted}
    by_optimizer: dict[str, list[str]] = {}
    for optimizer, config_hash in wanted:
        by_optimizer.setdefault(optimizer, []).append(config_hash)
    runs = Run.__table__.c
    with reading(target) as reader:
        for optimizer, hashes in by_optimizer.items():
            statement = select(
                runs.optimizer, runs.config_hash, runs.seed, runs.status, runs.final_metric,
                runs.steps_to_target, runs.seconds_to_target, runs.params, runs.options,
            ).where(
                scope.covers_runs(), runs.optimizer == optimizer, runs.config_hash.in_(hashes),
            ).order_by(runs.id)
            for row in reader.execute(statement):
                found[(row.optimizer, row.config_hash)].append(ConfigRun(
                    optimizer=row.optimizer, config_hash=row.config_hash, seed=int(row.seed),
                    status=row.status, final_metric=row.final_metric,
                    steps_to_target=row.steps_to_target,
                    seconds_to_target=(None if shared_clock(row.options)
                                       else row.seconds_to_target),
                    params=dict(row.params or {}),
                    options=dict(row.options) if row.options is not None else None,
                ))
    return found


def study_count(target: Target, task: str) -> int:
    """How many studies of ``task`` the store holds."""
    with reading(target) as reader:
        return int(reader.execute(
            select(func.count()).select_from(Study).where(Study.task == task)
        ).scalar_one())


def tasks_with_runs(target: Target) -> list[str]:
    """The tasks that have runs in the store, by name (one row per configuration is read)."""
    with reading(target) as reader:
        return sorted(reader.execute(select(ConfigStats.task).distinct()).scalars())


@dataclass
class ConfigResult:
    """One configuration's result over its seeds: the mean and sample std of its seeds' values
    (a seed's value: the mean of its complete runs); ``std`` None with fewer than two seeds
    (the spread is unknown). ``replays`` counts the runs that repeated a seed, and
    ``replay_std`` their pooled spread around their seed's value (measurement noise; None
    without replays)."""

    optimizer: str
    config_hash: str
    lr: float | None
    mean: float | None
    std: float | None
    seeds: int
    diverged: int
    runs: int
    pruned: int = 0
    replays: int = 0
    replay_std: float | None = None


def _result(row: Any) -> ConfigResult:
    n = int(row.metric_count)
    mean = row.metric_mean if n else None
    std = None
    if n > 1 and mean is not None:
        std = math.sqrt(max(row.metric_sumsq - n * mean * mean, 0.0) / (n - 1))
    replays = int(row.replays)
    return ConfigResult(
        optimizer=row.optimizer, config_hash=row.config_hash, lr=row.lr, mean=mean, std=std,
        seeds=n, diverged=int(row.diverged), runs=int(row.runs), pruned=int(row.pruned),
        replays=replays,
        replay_std=math.sqrt(max(row.replay_sumsq, 0.0) / replays) if replays else None,
    )


def contender_configs(
    target: Target,
    scope: Scope,
    direction: str,
    optimizers: Iterable[str],
    limit: int,
    max_state_multiple: float | None = None,
    where: Mapping[str, Any] | None = None,
) -> dict[str, list[ConfigResult]]:
    """Per optimizer, its ``limit`` best configurations (a mean, no divergence), best first:
    one index probe each on (task, optimizer, metric_mean). What the bootstrap resamples.
    ``where`` filters by training options as :func:`optimizer_summaries` does."""
    stats = scope.stats().c
    order = stats.metric_mean.desc() if direction == "maximize" else stats.metric_mean.asc()
    budget = and_(scope.covers(stats), _within_budget(stats, max_state_multiple),
                  _matching(stats, scope, where))
    found: dict[str, list[ConfigResult]] = {}
    with reading(target) as reader:
        for optimizer in optimizers:
            rows = reader.execute(
                select(stats)
                .where(stats.optimizer == optimizer, budget,
                       stats.metric_mean.is_not(None), stats.diverged == 0)
                .order_by(order, stats.metric_count.desc(), stats.config_hash)
                .limit(limit)
            ).all()
            found[optimizer] = [_result(row) for row in rows]
    return found


def config_means_with_params(
    target: Target, scope: Scope, optimizer: str, where: Mapping[str, Any] | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """``(mean, params)`` of every configuration of ``optimizer`` within ``scope`` with a
    result and no divergence (the params of its first run): what importance is estimated
    from. ``where`` filters by training options as :func:`optimizer_summaries` does."""
    table = scope.stats()
    stats = table.c
    runs = Run.__table__.c
    first = (
        select(runs.config_hash, func.min(runs.id).label("run_id"))
        .where(scope.covers_runs(), runs.optimizer == optimizer)
        .group_by(runs.config_hash)
        .subquery()
    )
    statement = (
        select(stats.metric_mean, runs.params)
        .select_from(table)
        .join(first, first.c.config_hash == stats.config_hash)
        .join(Run.__table__, runs.id == first.c.run_id)
        .where(scope.covers(stats), stats.optimizer == optimizer,
               stats.metric_mean.is_not(None), stats.diverged == 0,
               _matching(stats, scope, where))
        .order_by(stats.config_hash)
    )
    with reading(target) as reader:
        return [(float(mean), dict(params or {})) for mean, params in reader.execute(statement)]


@dataclass(frozen=True)
class ConfigOutcome:
    """One configuration's outcome as a draw of its optimizer's tuning: ``outcome`` the mean
    over its seeds, None when it diverged or was only pruned (the worst draw); ``std`` the
    sample std over its ``seeds`` (None with fewer than two)."""

    optimizer: str
    config_hash: str
    outcome: float | None
    std: float | None
    seeds: int


def config_outcome_spreads(
    target: Target, scope: Scope, optimizers: Iterable[str] | None = None,
    max_state_multiple: float | None = None, where: Mapping[str, Any] | None = None,
) -> dict[str, list[ConfigOutcome]]:
    """Per optimizer, every configuration within ``scope`` that has an outcome (a result, a
    divergence or a pruning; failed ones have none), with the spread of its seeds: the draws
    its tuning made. One scan of the task's configurations, in ``config_hash`` order.
    ``where`` filters by training options as :func:`optimizer_summaries` does."""
    stats = scope.stats().c
    chosen = [and_(scope.covers(stats), _within_budget(stats, max_state_multiple),
                   _matching(stats, scope, where))]
    if optimizers is not None:
        chosen.append(stats.optimizer.in_(list(optimizers)))
    with reading(target) as reader:
        rows = reader.execute(
            select(stats)
            .where(*chosen, or_(stats.metric_mean.is_not(None), stats.diverged > 0,
                                stats.pruned > 0))
            .order_by(stats.optimizer, stats.config_hash)
        ).all()
    found: dict[str, list[ConfigOutcome]] = {}
    for row in rows:
        result = _result(row)
        outcome = None if result.diverged else result.mean
        found.setdefault(result.optimizer, []).append(ConfigOutcome(
            result.optimizer, result.config_hash, outcome,
            result.std if outcome is not None else None, result.seeds))
    return found


def config_outcomes(
    target: Target, scope: Scope, optimizers: Iterable[str] | None = None,
    max_state_multiple: float | None = None, where: Mapping[str, Any] | None = None,
) -> dict[str, list[float | None]]:
    """Per optimizer, the mean of every configuration within ``scope`` that has a result, or
    None for one that diverged or was only pruned: the draws a tuning run of K configurations
    makes (a pruned or diverged draw is the worst)."""
    found = config_outcome_spreads(target, scope, optimizers, max_state_multiple, where)
    return {name: [config.outcome for config in configs] for name, configs in found.items()}


def recommended_configs(
    target: Target, scope: Scope, where: Mapping[str, Any] | None = None
) -> dict[str, list[ConfigResult]]:
    """Per optimizer, the configurations within ``scope`` that ran as its recommended
    configuration (among those trained as ``where`` says, when given).

    A configuration counts when any of its runs belongs to a trial of origin ``recommended``
    (the optimizer's recommended configuration, a study's first trial). Studies under different
    training options give one such configuration each. Most seeds first.

    Driven from the trials: the task's recommended trials (one per study and optimizer), then
    their runs through the (task, optimizer, ...) index, then those configurations' rows, so a
    store of many configurations is not probed row by row.
    """
    task = scope.task
    stats = scope.stats().c
    runs = Run.__table__.c
    trials = Trial.__table__.c
    studies = Study.__table__.c
    found: dict[str, list[ConfigResult]] = {}
    in_study = [] if scope.study_id is None else [studies.id == scope.study_id]
    with reading(target) as reader:
        recommended = reader.execute(
            select(trials.optimizer, trials.id)
            .join(Study.__table__, studies.id == trials.study_id)
            .where(studies.task == task, trials.origin == "recommended", *in_study)
        ).all()
        by_optimizer: dict[str, list[int]] = {}
        for optimizer, trial_id in recommended:
            by_optimizer.setdefault(optimizer, []).append(trial_id)
        keys: set[tuple[str, str]] = set()
        for optimizer, trial_ids in sorted(by_optimizer.items()):
            keys.update((row.optimizer, row.config_hash) for row in reader.execute(
                select(runs.optimizer, runs.config_hash).distinct()
                .where(scope.covers_runs(), runs.optimizer == optimizer,
                       runs.trial_id.in_(trial_ids))
            ))
        rows = []
        for optimizer, key in sorted(keys):
            rows.extend(reader.execute(
                select(stats).where(scope.covers(stats), stats.optimizer == optimizer,
                                    stats.config_hash == key, _matching(stats, scope, where))
            ).all())
    rows.sort(key=lambda row: (row.optimizer, -row.metric_count, row.config_hash))
    for row in rows:
        found.setdefault(row.optimizer, []).append(_result(row))
    return found


def best_config_params(
    target: Target, scope: Scope, optimizer: str, direction: str, limit: int
) -> list[dict[str, Any]]:
    """The hyperparameters of the ``limit`` best configurations (mean, no divergence), best
    first; configurations that differ only in training options give the same params twice."""
    task = scope.task
    stats = scope.stats().c
    runs = Run.__table__.c
    order = stats.metric_mean.desc() if direction == "maximize" else stats.metric_mean.asc()
    with reading(target) as reader:
        hashes = reader.execute(
            select(stats.config_hash)
            .where(scope.covers(stats), stats.optimizer == optimizer,
                   stats.metric_mean.is_not(None), stats.diverged == 0)
            .order_by(order, stats.metric_count.desc(), stats.config_hash)
            .limit(limit)
        ).scalars().all()
        found = []
        for key in hashes:
            params = reader.execute(
                select(runs.params).where(runs.task == task, runs.optimizer == optimizer,
                                          runs.config_hash == key).limit(1)
            ).scalar()
            found.append(dict(params or {}))
    return found


def lr_results(target: Target, scope: Scope) -> list[ConfigResult]:
    """Every configuration within ``scope`` that has an lr, with its result (for lr plots)."""
    stats = scope.stats().c
    with reading(target) as reader:
        rows = reader.execute(
            select(stats).where(scope.covers(stats), stats.lr.is_not(None))
            .order_by(stats.optimizer, stats.lr)
        ).all()
    return [_result(row) for row in rows]


def config_curves(
    target: Target, scope: Scope, optimizer: str, config_hash: str
) -> dict[int, list[tuple[int, float | None]]]:
    """The curves of a configuration's complete runs: ``{run id: [(step, metric), ...]}``."""
    with reading(target) as reader:
        run_ids = reader.execute(
            select(Run.id).where(
                scope.covers_runs(), Run.optimizer == optimizer,
                Run.config_hash == config_hash, Run.status == "complete",
            ).order_by(Run.seed, Run.id)
        ).scalars().all()
        rows = reader.execute(
            select(CurveRow.run_id, CurveRow.step, CurveRow.metric)
            .where(CurveRow.run_id.in_(run_ids))
            .order_by(CurveRow.run_id, CurveRow.step)
        ).all() if run_ids else []
    curves: dict[int, list[tuple[int, float | None]]] = {run_id: [] for run_id in run_ids}
    for run_id, step, metric in rows:
        curves[run_id].append((step, metric))
    return {run_id: points for run_id, points in curves.items() if points}


def best_config_curves(target: Target, ranking: Any) -> dict[str, list[dict[str, list[Any]]]]:
    """The curves of each ranked optimizer's best configuration, ``{optimizer: [{"steps":
    [...], "values": [...]}, ...]}`` (``ranking``: a :class:`tuner.advice.TaskRanking`)."""
    found: dict[str, list[dict[str, list[Any]]]] = {}
    for standing in ranking.optimizers:
        if not standing.config_hash or standing.mean is None:
            continue
        curves = config_curves(target, ranking.scope, standing.optimizer, standing.config_hash)
        if curves:
            found[standing.optimizer] = [
                {"steps": [step for step, _ in points], "values": [v for _, v in points]}
                for points in curves.values()
            ]
    return found


def config_trajectories(
    target: Target, scope: Scope, optimizer: str, config_hash: str, limit: int
) -> list[tuple[int, list[Any] | None]]:
    """``(seed, stored path)`` of a configuration's first ``limit`` complete runs by seed."""
    with reading(target) as reader:
        rows = reader.execute(
            select(Run.seed, Run.trajectory)
            .where(scope.covers_runs(), Run.optimizer == optimizer,
                   Run.config_hash == config_hash, Run.status == "complete")
            .order_by(Run.seed, Run.id)
            .limit(limit)
        ).all()
    return [(int(seed), stored) for seed, stored in rows]


def task_has_paths(target: Target, task: str) -> bool:
    """Whether any run of ``task`` stored a 2-D path (the task records trajectories)."""
    with reading(target) as reader:
        return reader.execute(
            select(Run.id).where(Run.task == task, Run.trajectory.is_not(None)).limit(1)
        ).first() is not None


def study_id_of(target: Target, name: str) -> int | None:
    """The id of the study named ``name``, or None."""
    with reading(target) as reader:
        return reader.execute(select(Study.id).where(Study.name == name)).scalar()
