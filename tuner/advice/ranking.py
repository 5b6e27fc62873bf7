"""Optimizers ranked on a task (``tuner best``): each one's best configuration and its evidence.

The ranking is a read of the store (:mod:`tuner.store.queries`) under the rules of
:mod:`tuner.advice.stats`; the task's metric, direction and target come from its record in the
store. Every study of the task counts, not only the last one, but only configurations trained
under one *protocol* (budget, unit, fixed training options: :func:`tuner.store.config_key.
protocol_key`) are compared: by default the protocol with the most observations, ties to the
larger budget; ``budget=`` picks another, and the ranking names the others.

Optimizers are compared at an equal number of trials k: the fewest any of them has under the
protocol (or ``trials_budget``), by their expected best result after k trials
(:mod:`tuner.advice.budgets`), which is their best configuration's mean when every optimizer
had k trials; P(best), ties and lr-ratio intervals come from the nested resample at k
(:mod:`tuner.advice.bootstrap`), which counts both the seeds and the luck of which
configurations the sampler drew.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.advice.lr_meaning import STEP_SIZE, combined, left_out_reason
from tuner.advice.ratios import LrRatio
from tuner.advice.source import (
    NoRunsError,
    no_match_message,
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
)
from tuner.errors import UnknownNameError

if TYPE_CHECKING:
    from tuner.store import Store
    from tuner.store.queries import (
        ConfigResult,
        ConfigRun,
        OptimizerSummary,
        ProtocolCount,
        Scope,
    )

BUDGET_GRID = (1, 2, 3, 5, 8, 13, 20, 30, 50, 100, 200, 500, 1000)
"""Trial counts at which the ranking looks for a leader that changes with the budget."""


@dataclass
class OptimizerStanding:
    """One optimizer on one task: its best configuration and what surrounds it.

    ``mean``/``std`` are over the seeds of the best configuration (one observation per seed,
    however often it was replayed; ``std`` None with one seed: the spread is unknown);
    ``corrected`` is ``mean`` less its winner's-curse bias (it was picked by the same seeds
    that measured it). ``replays`` counts runs that repeated one of its seeds and
    ``replay_std`` their disagreement (measurement noise, None without replays). ``params`` are
    its hyperparameters and ``training`` the training options that change the result.
    ``trials`` counts the distinct configurations tried under the ranking's protocol,
    ``outcomes`` those with an outcome (a result, a divergence, a pruning), and ``runs`` all
    their runs, with ``pruned``/``diverged``/``failed`` among them. ``expected`` is its
    expected best result after the ranking's ``trials_compared`` trials (what it is ranked
    by). ``good_lr`` is the good-lr interval; ``state_multiple`` the measured optimizer state of
    the best configuration as a multiple of the parameters' bytes. ``gap`` is how much worse
    than the winner's expected best (metric units, >= 0) and ``gap_relative`` that over
    ``|winner|``. ``p_best`` is the share of repeated studies that would name it and
    ``tied_with_winner`` whether the winner beats it in fewer than 90% of them; both None when
    the noise is unknown (one seed everywhere). ``lr_ratio`` is its best lr over the winner's.
    ``config_hash`` is the best configuration's key in the store. ``lr_meaning`` is what its lr
    is (recorded with its runs: :mod:`tuner.advice.lr_meaning`), and ``lr_left_out`` why its lr
    takes no part in lr ratios (a multiplier), None when it does.
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
    outcomes: int = 0
    expected: float | None = None
    corrected: float | None = None
    replays: int = 0
    replay_std: float | None = None
    lr_meaning: str = STEP_SIZE
    lr_left_out: str | None = None

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
    (``contender``), the optimizers still in ``contention`` and what would settle it, read off
    the resample (:func:`tuner.advice.bootstrap.remedies`): ``more_trials`` more trials of each
    optimizer in contention, or ``more_seeds`` more seeds of each of their best configurations
    (each None when that alone would not), or, when neither alone would, ``together``:
    ``(more trials, more seeds)`` (None when nothing on the grids would: they may be equally
    good). Those are searched for on demand (:func:`what_would_settle`: ``searched``), and
    ``missing`` names what they need: ``"trials"`` (more trials of the optimizers in
    contention) and/or ``"seeds"`` (more seeds of their best configurations); with one seed
    everywhere the noise is unknown, every optimizer is in contention and seeds are missing.
    ``p_seeds_only`` and ``p_draws_only`` are the winner's P(best) under each kind of luck
    alone; ``reason`` in words."""

    settled: bool
    winner_p_best: float | None
    contender: str | None
    more_seeds: int | None
    reason: str
    resamples: int
    more_trials: int | None = None
    contention: list[str] = field(default_factory=list)
    together: tuple[int, int] | None = None
    p_seeds_only: float | None = None
    p_draws_only: float | None = None
    searched: bool = False
    missing: list[str] = field(default_factory=list)


@dataclass
class BudgetLeader:
    """The leader at one number of trials per optimizer, and its P(best) there."""

    trials: int
    optimizer: str
    p_best: float


@dataclass
class TaskRanking:
    """Every optimizer measured on a task under one protocol, best first (``tuner best``).

    With a ``memory_budget`` only configurations whose measured optimizer state fits it take
    part (an optimizer with none is not listed). ``protocol`` is what every ranked
    configuration was trained under and ``other_protocols`` what else the task was measured
    under (``--budget`` selects one); ``study`` names the study whose runs alone were ranked
    (None: every study of the task). ``trials_compared`` is the number of trials per optimizer
    the ranking compares at. ``lr_ratios`` holds every pair of ranked optimizers whose lrs are
    step sizes (the lower-ranked over the higher-ranked; :attr:`lr_notes` says which were left
    out and which name a convention); ``certainty`` says whether the winner is named
    with P(best) >= 0.9 and, if not, what would settle it; ``budget_leaders`` holds, when the
    confident leader changes with the number of trials, the first and last such leader.
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
    protocol: ProtocolCount | None = None
    other_protocols: list[ProtocolCount] = field(default_factory=list)
    study: str | None = None
    trials_compared: int = 0
    budget_leaders: list[BudgetLeader] = field(default_factory=list)
    scope: Scope | None = field(default=None, repr=False)
    evidence: dict[str, Any] = field(default_factory=dict, repr=False)
    """Each ranked optimizer's tuning as the resample saw it (what :func:`what_would_settle`
    searches with)."""
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

    @property
    def lr_notes(self) -> list[str]:
        """What the lr comparisons leave out and why, and the lr conventions they name: one
        sentence each (:mod:`tuner.advice.lr_meaning`)."""
        notes = [f"{s.lr_left_out}: left out of the lr ratios" for s in self.optimizers
                 if s.lr_left_out]
        notes += [f"{s.optimizer}'s lr follows a convention of its own ({s.lr_meaning}): "
                  "its lr ratios name it" for s in self.optimizers
                  if not s.lr_left_out and s.lr_meaning != STEP_SIZE]
        return notes

    def protocol_text(self) -> str | None:
        """``300 steps`` (what every ranked configuration was trained under)."""
        return self.protocol.describe() if self.protocol else None

    def others_text(self) -> str | None:
        """``also measured: 200 steps (--budget 200)``, or None."""
        if not self.other_protocols:
            return None
        shown = []
        for other in self.other_protocols:
            flag = f" (--budget {other.budget})" if other.budget is not None else ""
            shown.append(f"{other.describe()}{flag}")
        return "also measured under: " + "; ".join(shown)

    def to_dict(self) -> dict[str, Any]:
        def protocol(p: ProtocolCount | None) -> dict[str, Any] | None:
            return None if p is None else {**asdict(p), "text": p.describe()}

        return {
            "task": self.task, "kind": self.kind, "metric": self.metric,
            "direction": self.direction, "target": self.target,
            "tolerance": str(self.tolerance), "memory_budget": self.memory_budget,
            "where": self.where,
            "db": self.db, "studies": self.studies, "study": self.study,
            "protocol": protocol(self.protocol),
            "other_protocols": [protocol(p) for p in self.other_protocols],
            "trials_compared": self.trials_compared,
            "optimizers": [standing.to_dict() for standing in self.optimizers],
            "lr_ratios": [ratio.to_dict() for ratio in self.lr_ratios],
            "lr_notes": self.lr_notes,
            "certainty": asdict(self.certainty) if self.certainty else None,
            "budget_leaders": [asdict(leader) for leader in self.budget_leaders],
            "task_problem": self.task_problem,
        }


def rank_task(
    task: str,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
    memory_budget: str | float | None = None,
    where: dict[str, Any] | None = None,
    budget: int | None = None,
    study: str | None = None,
    trials_budget: int | None = None,
) -> TaskRanking:
    """Optimizers ranked on ``task`` under one protocol (``tuner best``).

    ``memory_budget`` (``"1n"``, ...) keeps only configurations whose measured optimizer state
    is at most that multiple of the parameters' bytes; ``where`` only those trained with these
    training options: a value (``{"batch_size": 16}``) or an inclusive range of numbers
    (``{"batch_size": (16, 64)}``, or ``{"range": [16, 64]}``); ``budget`` the protocols of
    that budget; ``study`` only the runs of that study; ``trials_budget`` compares at that many
    trials per optimizer instead of the fewest measured. ``task`` may also be a task reference
    (``file.py:Name``) that a study of the store was created from. Raises
    :class:`NoRunsError` when the store holds no run of the task (or no store is there), or
    none matching what was asked (naming the filter and what the runs have).
    """
    from tuner.store import training_options
    from tuner.study.training import check_where

    chosen_tolerance = None if tolerance is None else Tolerance.parse(tolerance)
    state_budget = parse_memory_budget(memory_budget)
    where = check_where(where) if where else None
    store, opened = open_for_reading(db)
    try:
        task = task_by_reference(store, task)
        record = task_record(store, task)
        tol = chosen_tolerance if chosen_tolerance is not None else default_tolerance(
            record.metric)
        read = _read(store, task, record.direction, tol, state_budget, where, budget, study)
        display = store.display_url
        standings = [
            _standing(summary, read.runs.get((summary.optimizer, summary.config_hash or ""),
                                             []), training_options)
            for summary in read.summaries
        ]
        trials = trials_budget or min(
            (s.outcomes for s in standings if s.mean is not None), default=0)
        _expect(store, read, standings, trials, record.direction, state_budget, where)
        _lr_meanings(store, task, standings)
        problem = _task_problem(store, task, record.metric, read.summaries)
    finally:
        if opened:
            store.dispose()

    ratios, certainty, leaders, evidence = weigh_evidence(
        standings, read.contenders, record.direction, trials, read.summaries,
        by_expected=trials_budget is not None)
    mark_pareto(standings, record.direction)
    return TaskRanking(
        task=task, metric=record.metric, direction=record.direction, target=record.target,
        tolerance=tol, db=display, studies=read.studies, optimizers=standings,
        kind=record.kind, memory_budget=state_budget, lr_ratios=ratios, certainty=certainty,
        where=dict(where) if where else None, protocol=read.protocol,
        other_protocols=read.others, study=study, trials_compared=trials,
        budget_leaders=leaders, scope=read.scope, task_problem=problem, evidence=evidence,
    )


@dataclass
class _Read:
    """What a ranking reads from the store, in one go."""

    scope: Scope
    protocol: ProtocolCount
    others: list[ProtocolCount]
    summaries: list[OptimizerSummary]
    runs: dict[tuple[str, str], list[ConfigRun]]
    contenders: dict[str, list[ConfigResult]]
    studies: int


def _read(
    store: Store, task: str, direction: str, tolerance: Tolerance,
    state_budget: float | None, where: dict[str, Any] | None, budget: int | None,
    study: str | None,
) -> _Read:
    from tuner.advice.bootstrap import TOP
    from tuner.store.queries import (
        Scope,
        config_runs,
        contender_configs,
        optimizer_summaries,
        protocols,
        study_count,
        study_id_of,
    )

    study_id = None
    if study is not None:
        study_id = study_id_of(store, study)
        if study_id is None:
            raise NoRunsError(f"no study named {study!r} in {store.display_url}")
    available = protocols(store, task, where, study_id)
    if not available:
        raise NoRunsError(_nothing_matches(store, task, where, study))
    matching = [p for p in available if budget is None or p.budget == budget]
    if not matching:
        budgets = sorted({p.budget for p in available if p.budget is not None})
        raise NoRunsError(
            f"no runs of task {task!r} at budget {budget} in {store.display_url}; it was "
            f"measured at: {', '.join(map(str, budgets)) or 'the task budget only'}")
    chosen = matching[0]
    scope = Scope(task, chosen.key, study_id)
    summaries = optimizer_summaries(store, scope, direction, tolerance.margin, state_budget,
                                    where)
    if not summaries:
        raise NoRunsError(_nothing_matches(store, task, where, study))
    runs = config_runs(store, scope,
                       [(s.optimizer, s.config_hash) for s in summaries if s.config_hash])
    contenders = contender_configs(
        store, scope, direction, [s.optimizer for s in summaries if s.mean is not None],
        TOP + 1, state_budget, where,
    )
    return _Read(scope, chosen, [p for p in available if p is not chosen], summaries, runs,
                 contenders, 1 if study is not None else study_count(store, task))


def _nothing_matches(store: Store, task: str, where: dict[str, Any] | None,
                     study: str | None) -> str:
    """Why a ranking found nothing: the study has no runs yet, the task has none, or none
    trained as ``where`` says (naming the filter and what the runs have)."""
    from tuner.store.queries import runs_match, tasks_with_runs

    if study is not None:
        return f"study {study!r} has no runs of task {task!r} in {store.display_url} yet"
    measured = tasks_with_runs(store)
    if task in measured and where and not runs_match(store, task, where):
        return no_match_message(store, task, where)
    return no_runs_message(store, task, measured)


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
    """One optimizer's standing from its summary and the runs of its best configuration: each
    seed one observation (the mean of its replays)."""
    complete = [r for r in measured if r.status == "complete" and r.final_metric is not None]
    by_seed: dict[int, list[ConfigRun]] = {}
    for run in complete:
        by_seed.setdefault(run.seed, []).append(run)
    values = [_mean([r.final_metric for r in runs]) for runs in by_seed.values()]
    replays = sum(len(runs) - 1 for runs in by_seed.values())
    squares = sum((r.final_metric - _mean([x.final_metric for x in runs])) ** 2
                  for runs in by_seed.values() for r in runs)
    reached = [_mean([float(r.steps_to_target) for r in runs if r.steps_to_target is not None])
               for runs in by_seed.values()
               if any(r.steps_to_target is not None for r in runs)]
    seconds = [r.seconds_to_target for r in complete if r.seconds_to_target is not None]
    std = sample_std(values) if len(values) >= 2 else None
    return OptimizerStanding(
        optimizer=summary.optimizer,
        rank=0,
        mean=_mean(values),
        std=std,
        seeds=len(values),
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
        steps_to_target=_mean(reached),
        seconds_to_target=_mean(seconds),
        reached_target=len(reached),
        fastest_steps_to_target=summary.fastest_steps,
        state_multiple=summary.state_multiple,
        training=training_options(measured[0].options) if measured else None,
        config_hash=summary.config_hash,
        outcomes=summary.outcomes,
        replays=replays,
        replay_std=(squares / replays) ** 0.5 if replays else None,
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _lr_meanings(store: Store, task: str, standings: list[OptimizerStanding]) -> None:
    """Each standing's lr meaning, as its runs recorded it, and whether its lr is left out."""
    from tuner.store.queries import lr_meanings

    recorded = lr_meanings(store, task, [s.optimizer for s in standings])
    for standing in standings:
        meanings = recorded.get(standing.optimizer, [])
        standing.lr_meaning = combined(meanings)
        standing.lr_left_out = left_out_reason(standing.optimizer, meanings)


def _expect(
    store: Store, read: _Read, standings: list[OptimizerStanding], trials: int,
    direction: str, state_budget: float | None, where: dict[str, Any] | None,
) -> None:
    """Each standing's expected best after ``trials`` trials: from its best configurations
    when the rest cannot matter, else from every outcome it has (one more read)."""
    from tuner.advice.bootstrap import TOP
    from tuner.advice.budgets import expected_best_from_top, expected_best_of
    from tuner.store.queries import config_outcomes

    needs_all = []
    for standing in standings:
        if standing.mean is None or trials < 1:
            continue
        top = [c.mean for c in read.contenders.get(standing.optimizer, [])
               if c.mean is not None]
        every_result = len(top) <= TOP
        standing.expected = expected_best_from_top(top[:TOP], standing.outcomes, trials,
                                                   every_result)
        if standing.expected is None:
            needs_all.append(standing)
    if needs_all:
        outcomes = config_outcomes(store, read.scope, [s.optimizer for s in needs_all],
                                   state_budget, where)
        for standing in needs_all:
            standing.expected = expected_best_of(outcomes.get(standing.optimizer, []),
                                                 trials, direction)


def order_and_compare(
    standings: list[OptimizerStanding], direction: str, by_expected: bool = False
) -> None:
    """Sort best first, number the ranks, and measure each one against the winner.

    The order: by P(best), the share of repeated studies at the compared trials that would
    name the optimizer (so the winner is the one most often named), then by its best mean;
    where P(best) is unknown (one seed everywhere), by the best mean. ``by_expected`` (a trials
    budget was asked for) orders by the expected best after that many trials instead. The gap
    is in what orders them below P(best): the best mean, or the expected best.
    """
    sign = -1.0 if direction == "maximize" else 1.0

    def value(s: OptimizerStanding) -> float | None:
        return s.expected if by_expected and s.expected is not None else s.mean

    def key(s: OptimizerStanding) -> tuple:
        chance = 0.0 if by_expected or s.p_best is None else -s.p_best
        return (s.mean is None, chance, sign * (value(s) or 0.0), sign * (s.mean or 0.0),
                s.optimizer)

    standings.sort(key=key)
    winner = standings[0] if standings and standings[0].mean is not None else None
    for position, standing in enumerate(standings, start=1):
        standing.rank = position
        if winner is None or standing.mean is None:
            continue
        gap = (value(winner) - value(standing)) * (1 if direction == "maximize" else -1)
        standing.gap = max(gap, 0.0)
        standing.gap_relative = standing.gap / abs(value(winner)) if value(winner) else None
        standing.tied_with_winner = True if standing is winner else None


def mark_pareto(standings: list[OptimizerStanding], direction: str) -> None:
    """Mark the optimizers in the Pareto set over quality, steps to target and measured
    memory (:mod:`tuner.advice.pareto`); those without a result are not part of it."""
    from tuner.advice.pareto import pareto_set, trade_off

    points = [
        trade_off(s.optimizer, s.expected if s.expected is not None else s.mean,
                  s.steps_to_target, s.state_multiple, direction)
        for s in standings if s.mean is not None
    ]
    members = set(pareto_set(points))
    for standing in standings:
        standing.pareto = standing.optimizer in members if standing.mean is not None else None


def tunings(
    contenders: dict[str, list[ConfigResult]], summaries: list[OptimizerSummary],
) -> tuple[dict[str, Any], dict[str, float]]:
    """Each optimizer's tuning for the resample (:class:`~tuner.advice.bootstrap.Tuning`), and
    the per-seed spread used for its one-seed configurations; an optimizer whose spread is
    unknown (one seed everywhere) gets no tuning."""
    from tuner.advice.bootstrap import (
        RESAMPLED,
        Contender,
        Tuning,
        pooled_squares,
        pooled_std,
        spread,
    )

    draws = {s.optimizer: s.outcomes for s in summaries}
    pooled = {name: pooled_squares(configs[:RESAMPLED])
              for name, configs in contenders.items()}
    task_pooled = pooled_std(sum(sq for sq, _ in pooled.values()),
                             sum(dof for _, dof in pooled.values()))
    found: dict[str, Any] = {}
    spreads: dict[str, float] = {}
    for name, configs in contenders.items():
        common = pooled_std(*pooled[name]) or task_pooled
        if common is None or not configs:
            continue
        spreads[name] = common
        top = []
        for config in configs[:RESAMPLED]:
            std = spread(config.std, config.seeds, common)
            top.append(Contender(config.lr, config.mean, std, config.seeds))
        rest = configs[RESAMPLED].mean if len(configs) > RESAMPLED else None
        found[name] = Tuning(top, max(draws.get(name, len(top)), len(top)), rest)
    return found, spreads


def weigh_evidence(
    standings: list[OptimizerStanding],
    contenders: dict[str, list[ConfigResult]],
    direction: str,
    trials: int,
    summaries: list[OptimizerSummary],
    by_expected: bool = False,
) -> tuple[list[LrRatio], Certainty | None, list[BudgetLeader], dict[str, Any]]:
    """Resample (:mod:`tuner.advice.bootstrap`), order the standings
    (:func:`order_and_compare`), then P(best), ties, lr ratios, the winner's-curse correction,
    how sure the winner is and whether the leader changes with the number of trials; and the
    tunings it resampled."""
    from tuner.advice.bootstrap import CONFIDENT, resample

    measured = [s for s in standings if s.mean is not None]
    found, _ = tunings(contenders, summaries)
    known = bool(measured) and all(s.optimizer in found for s in measured)
    grid = sorted({k for k in BUDGET_GRID if k < trials} | {trials})
    at = resample({s.optimizer: found[s.optimizer] for s in measured}, direction, grid,
                  full={trials}) if known and trials > 0 else None
    result = at[trials] if at is not None else None
    sign = 1.0 if direction == "maximize" else -1.0
    if result is not None:
        for standing in measured:
            standing.p_best = result.p_best.get(standing.optimizer)
            standing.corrected = standing.mean - sign * result.selection_bias.get(
                standing.optimizer, 0.0)
    order_and_compare(standings, direction, by_expected)
    ranked = [s for s in standings if s.mean is not None]
    if not ranked:
        return [], None, [], {}
    winner = ranked[0]
    ratios = []
    for position, standing in enumerate(ranked):
        if result is not None and standing is not winner:
            beaten = result.beats.get((winner.optimizer, standing.optimizer), 0.0)
            standing.tied_with_winner = beaten < CONFIDENT
        for better in ranked[:position]:
            if (standing.lr is None or better.lr is None or standing.lr_left_out
                    or better.lr_left_out):
                continue
            interval = (result.ratio_intervals.get((standing.optimizer, better.optimizer))
                        if result is not None else None)
            ratio = LrRatio(standing.optimizer, better.optimizer, standing.lr / better.lr,
                            *(interval or (None, None)), optimizer_meaning=standing.lr_meaning,
                            reference_meaning=better.lr_meaning)
            ratios.append(ratio)
            if better is winner:
                standing.lr_ratio = ratio
    leaders = budget_leaders(at) if at is not None else []
    certainty = _certainty(ranked, result)
    return ratios, certainty, leaders, {s.optimizer: found[s.optimizer] for s in ranked
                                        if s.optimizer in found}


def budget_leaders(at: dict[int, Any]) -> list[BudgetLeader]:
    """The confident leaders (P(best) >= 0.9) in the resamples ``at`` each trial count (of
    :data:`BUDGET_GRID`, up to the compared trials): the first and the last when they differ,
    else none."""
    from tuner.advice.bootstrap import CONFIDENT

    confident = []
    for k in sorted(at):
        if not at[k].p_best:
            continue
        name, p = max(at[k].p_best.items(), key=lambda item: (item[1], item[0]))
        if p >= CONFIDENT:
            confident.append(BudgetLeader(k, name, p))
    if len({leader.optimizer for leader in confident}) < 2:
        return []
    first = confident[0]
    last = next(leader for leader in reversed(confident) if leader.optimizer != first.optimizer)
    return [first, last]


def _certainty(ranked: list[OptimizerStanding], result: Any) -> Certainty:
    from tuner.advice.bootstrap import CONFIDENT

    winner = ranked[0]
    resamples = result.resamples if result is not None else 0
    if len(ranked) == 1:
        return Certainty(True, 1.0, None, None, "only one optimizer measured", resamples)
    if result is None:
        return Certainty(False, None, ranked[1].optimizer, None,
                         "one seed per configuration: the noise is unknown", resamples,
                         contention=[s.optimizer for s in ranked], missing=["seeds"])
    p_winner = result.p_best.get(winner.optimizer, 0.0)
    contender = max(ranked[1:], key=lambda s: (s.p_best or 0.0, -s.rank))
    p_seeds = result.p_best_seeds_only.get(winner.optimizer)
    p_draws = result.p_best_draws_only.get(winner.optimizer)
    if p_winner >= CONFIDENT:
        return Certainty(True, p_winner, contender.optimizer, None,
                         f"P(best) {p_winner:.2f} >= {CONFIDENT:g}", resamples,
                         p_seeds_only=p_seeds, p_draws_only=p_draws)
    contention = [s.optimizer for s in ranked
                  if s is winner or (s.p_best or 0.0) >= 0.05 or s.tied_with_winner]
    return Certainty(False, p_winner, contender.optimizer, None,
                     f"P(best) {p_winner:.2f} < {CONFIDENT:g}", resamples,
                     contention=contention, p_seeds_only=p_seeds, p_draws_only=p_draws)


def what_would_settle(ranking: TaskRanking) -> Certainty | None:
    """The ranking's certainty with what would settle it filled in, when it is not settled
    (more trials of the optimizers in contention, more seeds of their configurations, or both:
    :func:`tuner.advice.bootstrap.remedies`); searched once, on demand, since it resamples the
    ranking several times over."""
    from tuner.advice.bootstrap import remedies

    certainty = ranking.certainty
    if (certainty is None or certainty.settled or certainty.searched
            or certainty.winner_p_best is None or ranking.winner is None):
        return certainty
    trials = ranking.trials_compared
    tunings = {name: ranking.evidence[name] for name in certainty.contention
               if name in ranking.evidence}
    ways = remedies(tunings, ranking.direction, ranking.winner.optimizer, trials)
    certainty.more_trials = next(
        (r.trials - trials for r in ways if r.trials and not r.seeds), None)
    certainty.more_seeds = next((r.seeds for r in ways if r.seeds and r.trials is None), None)
    certainty.together = next(
        ((r.trials - trials, r.seeds) for r in ways if r.trials and r.seeds), None)
    certainty.missing = [
        kind for kind, needed in (("trials", certainty.more_trials),
                                  ("seeds", certainty.more_seeds))
        if needed is not None or certainty.together is not None]
    certainty.searched = True
    return certainty


def best(
    task: str,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
    where: dict[str, Any] | None = None,
) -> TaskRanking:
    """Optimizers ranked on ``task``, each with its best configuration, among the runs trained
    as ``where`` says (``{"batch_size": (16, 64)}``); see :func:`rank_task`."""
    return rank_task(task, db=db, tolerance=tolerance, where=where)
