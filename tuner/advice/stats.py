"""Advice from the store: optimizers ranked per task, good-lr intervals, ties, warm starts.

Everything here is a read over ``tuner_runs`` (every study of a task counts, not only the last
one). The words used below mean exactly this:

configuration
    One set of hyperparameters (the run's ``params``; runs share one when their ``params_hash``
    is equal). Its seeds are all the runs with that hash, across studies.

result of a configuration
    The mean (and sample standard deviation) of ``final_metric`` over its *complete* runs. Pruned
    and failed runs are left out of the mean but counted. A configuration with any *diverged*
    run has failed: it is never "best" and never "good" (an lr that blows up one seed in three is
    not a safe recommendation).

best configuration of an optimizer
    Among its configurations with at least one complete run and no divergence, the one with the
    best mean in the task's direction (ties: more seeds first).

tolerance
    How far from the best a result may be and still count as equally good. ``2%`` is relative
    (within 2% of ``|best|``), a bare number like ``0.05`` is absolute (in the metric's units).
    Default: 2% relative; for bits-per-character metrics (``*bpc``) 0.05 bpc absolute, since bpc
    differences are read in absolute terms; override with ``--tolerance``.

good-lr interval
    How forgiving an optimizer is. Its configurations are ordered by learning rate; a
    configuration is *good* when it has a result, no divergence, and its mean is within the
    tolerance of the optimizer's best. The interval is the widest stretch of good configurations
    around the best one's lr that no bad configuration interrupts (configurations with only
    pruned or failed runs carry no final result and are skipped). Other hyperparameters vary
    along the way, so the interval is what tuning found forgiving, not a controlled sweep.

tied within noise
    Two best configurations are tied when their means differ by at most twice the standard error
    of the difference: ``|m_a - m_b| <= 2 * sqrt(se_a**2 + se_b**2)`` with ``se = std/sqrt(n)``
    (a two-sided test at about the 5% level). With fewer than two seeds on either side the noise
    is unknown and no tie is declared.

The aggregation runs in SQL (one statement with common table expressions, served by the runs
table's covering index), so ``tuner best`` stays fast over a million runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError, UnknownNameError

if TYPE_CHECKING:
    from tuner.space import SearchSpace
    from tuner.store import Store

DEFAULT_RELATIVE_TOLERANCE = 0.02
DEFAULT_BPC_TOLERANCE = 0.05
TIE_STANDARD_ERRORS = 2.0
WARM_START_MARGIN = 3.0
MEMORY_BUDGETS = ("1n", "2n", "3n")


class NoRunsError(TunerError):
    """The store has nothing to advise from for this task."""


class AdviceError(TunerError, ValueError):
    """Bad arguments to an advice function (a tolerance or memory budget it cannot read)."""


# -- statistics (pure functions) ---------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How close to the best counts as equally good: relative (``2%``) or absolute (``0.05``)."""

    value: float
    relative: bool = True

    @classmethod
    def parse(cls, text: str | float | Tolerance) -> Tolerance:
        """``"2%"`` -> 2% relative; ``"0.05"`` (or a float) -> 0.05 absolute."""
        if isinstance(text, Tolerance):
            return text
        if isinstance(text, (int, float)):
            number, relative = float(text), False
        else:
            raw = text.strip()
            relative = raw.endswith("%")
            try:
                number = float(raw.rstrip("%"))
            except ValueError:
                raise AdviceError(
                    f"cannot read tolerance {text!r}: use a percentage like 2% (relative) "
                    "or a number like 0.05 (absolute, in the metric's units)"
                ) from None
            if relative:
                number /= 100
        if not math.isfinite(number) or number < 0:
            raise AdviceError(f"tolerance must be a non-negative number, got {text!r}")
        return cls(number, relative)

    def margin(self, best: float) -> float:
        """The allowed distance from ``best``."""
        return self.value * abs(best) if self.relative else self.value

    def within(self, value: float, best: float, direction: str) -> bool:
        """Whether ``value`` is no worse than ``best`` by more than the margin."""
        slack = self.margin(best) + 1e-12 * max(1.0, abs(best))
        if direction == "maximize":
            return value >= best - slack
        return value <= best + slack

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def default_tolerance(metric: str) -> Tolerance:
    """2% relative, or 0.05 absolute for a bits-per-character metric."""
    if metric.lower().endswith("bpc"):
        return Tolerance(DEFAULT_BPC_TOLERANCE, relative=False)
    return Tolerance(DEFAULT_RELATIVE_TOLERANCE, relative=True)


def sample_std(values: Sequence[float]) -> float | None:
    """The sample standard deviation (n - 1); 0.0 for one value, None for none."""
    if not values:
        return None
    if len(values) == 1:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def standard_error(std: float | None, n: int) -> float | None:
    """``std / sqrt(n)``; None when fewer than two seeds leave the noise unknown."""
    if std is None or n < 2:
        return None
    return std / math.sqrt(n)


def tied_within_noise(
    mean_a: float, se_a: float | None, mean_b: float, se_b: float | None
) -> bool | None:
    """Whether two means are within ``2 * sqrt(se_a**2 + se_b**2)``; None if noise is unknown."""
    if se_a is None or se_b is None:
        return None
    return abs(mean_a - mean_b) <= TIE_STANDARD_ERRORS * math.sqrt(se_a**2 + se_b**2)


def is_better(value: float, than: float, direction: str) -> bool:
    """Whether ``value`` beats ``than`` in the task's direction."""
    return value > than if direction == "maximize" else value < than


def good_lr_interval(
    points: Iterable[tuple[float, float | None, bool]],
    best_lr: float,
    best_mean: float,
    tolerance: Tolerance,
    direction: str,
) -> tuple[float, float]:
    """The good-lr interval from ``(lr, mean, diverged)`` points (see the module docstring).

    This is the reference form of the rule the SQL query applies; ``mean`` None with
    ``diverged`` False is a configuration without a result, and is skipped.
    """
    good: list[float] = []
    below_break, above_break = -math.inf, math.inf
    for lr, mean, diverged in points:
        if mean is None and not diverged:
            continue
        ok = not diverged and mean is not None and tolerance.within(mean, best_mean, direction)
        if ok:
            good.append(lr)
        elif lr < best_lr:
            below_break = max(below_break, lr)
        elif lr > best_lr:
            above_break = min(above_break, lr)
    inside = [lr for lr in good if below_break < lr < above_break] or [best_lr]
    return min(inside), max(inside)


def rank_values(values: Mapping[str, float | None], direction: str) -> dict[str, float]:
    """Ranks (1 = best) of the named values; exact ties share their average rank, None is last."""
    present = sorted(
        ((name, v) for name, v in values.items() if v is not None),
        key=lambda item: -item[1] if direction == "maximize" else item[1],
    )
    ranks: dict[str, float] = {}
    position = 0
    while position < len(present):
        end = position
        while end + 1 < len(present) and present[end + 1][1] == present[position][1]:
            end += 1
        for name, _ in present[position : end + 1]:
            ranks[name] = (position + end) / 2 + 1
        position = end + 1
    missing = [name for name, v in values.items() if v is None]
    for name in missing:
        ranks[name] = len(present) + (len(missing) + 1) / 2
    return ranks


@dataclass
class AggregateRank:
    """One optimizer's standing across tasks."""

    optimizer: str
    ranks: dict[str, float]
    mean_rank: float
    wins: int
    tasks: int


def aggregate_ranks(per_task: Mapping[str, Mapping[str, float]]) -> list[AggregateRank]:
    """Mean rank and wins over the tasks each optimizer ran on.

    A win is a first place on a task, shared first places included. Sorted by mean rank, then
    by more wins, then by more tasks.
    """
    names = sorted({name for ranks in per_task.values() for name in ranks})
    first = {task: min(ranks.values()) for task, ranks in per_task.items() if ranks}
    rows = []
    for name in names:
        ranks = {task: r[name] for task, r in per_task.items() if name in r}
        rows.append(
            AggregateRank(
                optimizer=name,
                ranks=ranks,
                mean_rank=sum(ranks.values()) / len(ranks),
                wins=sum(1 for task, rank in ranks.items() if rank == first[task]),
                tasks=len(ranks),
            )
        )
    return sorted(rows, key=lambda row: (row.mean_rank, -row.wins, -row.tasks, row.optimizer))


def performance_profile(
    costs: Mapping[str, Mapping[str, float | None]], taus: Sequence[float]
) -> dict[str, list[float]]:
    """Dolan & Moré (2002) performance profiles of optimizers over tasks.

    ``costs[task][optimizer]`` is a cost to minimise (e.g. steps to reach the target); None or
    infinity means the optimizer never solved the task. For each optimizer, returns
    ``rho(tau)``: the fraction of tasks where its cost is within a factor ``tau`` of the best
    optimizer's on that task. Tasks no optimizer solved count as unsolved for everyone.
    """
    names = sorted({name for per in costs.values() for name in per})
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for per in costs.values():
        finite = [c for c in per.values() if c is not None and math.isfinite(c) and c > 0]
        best = min(finite) if finite else None
        for name in names:
            cost = per.get(name)
            ok = best is not None and cost is not None and math.isfinite(cost) and cost > 0
            ratios[name].append(cost / best if ok else math.inf)
    count = max(len(costs), 1)
    return {
        name: [sum(1 for r in ratios[name] if r <= tau) / count for tau in taus]
        for name in names
    }


def narrow_log_range(
    low: float, high: float, good_low: float, good_high: float, margin: float = WARM_START_MARGIN
) -> tuple[float, float]:
    """``[good_low / margin, good_high * margin]`` clipped to ``[low, high]`` (a log margin)."""
    new_low = max(low, min(good_low, good_high) / margin)
    new_high = min(high, max(good_low, good_high) * margin)
    if not new_low < new_high:  # the good interval lies outside the range: keep the range
        return low, high
    return new_low, new_high


def parse_memory_budget(text: str | float | None) -> float | None:
    """``"2n"`` -> 2.0 (optimizer state at most twice the parameter count); None for no budget."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    raw = text.strip().lower()
    try:
        value = float(raw[:-1] if raw.endswith("n") else raw)
    except ValueError:
        raise AdviceError(
            f"cannot read memory budget {text!r}: use 0n, 1n, 2n or 3n "
            "(optimizer state as a multiple of the parameter count)"
        ) from None
    if value < 0:
        raise AdviceError(f"memory budget must not be negative, got {text!r}")
    return value


# -- results ----------------------------------------------------------------------------------


@dataclass
class OptimizerStanding:
    """One optimizer on one task: its best configuration and what surrounds it.

    ``mean``/``std`` are over the complete seeds of the best configuration; ``trials`` counts the
    distinct configurations tried (across every study of the task) and ``runs`` all their
    seeds, with ``pruned``/``diverged``/``failed`` among them. ``good_lr`` is the good-lr
    interval; ``state_multiple`` the optimizer state as a multiple of the parameter count
    (measured: ``optimizer_state_bytes / (param_count * 4)``; else the plugin's declaration).
    ``gap`` is how much worse than the winner (metric units, >= 0) and ``gap_relative`` that
    over ``|winner|``. ``tied_with_winner`` is None when the noise is unknown (one seed).
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
    declared_state_multiple: float | None
    gap: float | None = None
    gap_relative: float | None = None
    tied_with_winner: bool | None = None
    params_hash: str | None = None

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
    """Every optimizer measured on a task, best first (what ``tuner best`` prints)."""

    task: str
    metric: str
    direction: str
    target: float | None
    tolerance: Tolerance
    db: str
    studies: int
    optimizers: list[OptimizerStanding]

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
            "task": self.task, "metric": self.metric, "direction": self.direction,
            "target": self.target, "tolerance": str(self.tolerance), "db": self.db,
            "studies": self.studies,
            "optimizers": [standing.to_dict() for standing in self.optimizers],
        }


@dataclass
class Advice:
    """The recommendation for a task in one or two sentences, and the evidence behind it."""

    task: str
    text: str
    optimizer: str | None
    params: dict[str, Any]
    lr: float | None
    good_lr: tuple[float, float] | None
    mean: float | None
    std: float | None
    seeds: int
    trials: int
    tied_with: list[str]
    memory_budget: float | None
    left_out: list[str]
    ranking: TaskRanking

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "advice": self.text, "optimizer": self.optimizer,
            "params": self.params, "lr": self.lr,
            "good_lr": list(self.good_lr) if self.good_lr else None,
            "mean": self.mean, "std": self.std, "seeds": self.seeds, "trials": self.trials,
            "tied_with": self.tied_with, "memory_budget": self.memory_budget,
            "left_out_by_memory_budget": self.left_out, "ranking": self.ranking.to_dict(),
        }


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


# -- reading the store -------------------------------------------------------------------------


def _open(db: str | Store | None) -> tuple[Store, bool]:
    """The store to read and whether we opened it (and so must close it)."""
    from tuner.store import Store, open_store, schema_state

    if isinstance(db, Store):
        return db, False
    state = schema_state(db)
    if state.state in ("missing", "empty"):
        from tuner.store import display_url, resolve_url

        raise NoRunsError(
            f"no tuner store at {display_url(resolve_url(db))}; run a study first"
        )
    return open_store(db, create=False), True


def _task_plugin(task: str) -> Any:
    from tuner.plugins import get_registry

    return get_registry().task(task)


def _declared_state_multiple(optimizer: str) -> float | None:
    from tuner.plugins import get_registry

    try:
        return float(get_registry().optimizer(optimizer).state_multiple)
    except TunerError:
        return None


@dataclass
class _OptimizerRow:
    """What the ranking queries find for one optimizer (before the runs of its best config)."""

    optimizer: str
    trials: int
    runs: int
    pruned: int
    diverged: int
    failed: int
    fastest_steps: float | None
    params_hash: str | None = None
    lr: float | None = None
    mean: float | None = None
    good_low: float | None = None
    good_high: float | None = None


def _rank_rows(
    connection: Any, task: str, direction: str, tolerance: Tolerance
) -> list[_OptimizerRow]:
    """Each optimizer's totals, best configuration and good-lr interval, read in SQL.

    Reads ``tuner_config_stats`` (one row per configuration, kept exact by triggers on the
    runs): one scan of the task's configurations for the totals, then per optimizer four index
    probes that touch only the rows they need:

    1. the best configuration: the first eligible row in ``metric_mean`` order;
    2. the break below: the nearest configuration under the best lr that is bad (diverged, or
       measured and outside the tolerance), walking the lr index down;
    3. the break above, walking it up;
    4. the lowest and highest good lr strictly between the breaks.
    """
    from sqlalchemy import and_, case, func, or_, select

    from tuner.store.models import ConfigStats

    stats = ConfigStats.__table__.c
    eligible = and_(stats.metric_mean.is_not(None), stats.diverged == 0)
    all_reached = and_(eligible, stats.reached == stats.complete)
    fastest = case((all_reached, stats.steps_sum / stats.reached))
    maximize = direction == "maximize"
    totals = connection.execute(
        select(
            stats.optimizer,
            func.count().label("trials"),
            func.sum(stats.runs).label("runs"),
            func.sum(stats.pruned).label("pruned"),
            func.sum(stats.diverged).label("diverged"),
            func.sum(stats.failed).label("failed"),
            func.min(fastest).label("fastest_steps"),
        )
        .where(stats.task == task)
        .group_by(stats.optimizer)
    ).all()
    rows = []
    for total in totals:
        row = _OptimizerRow(
            optimizer=total.optimizer, trials=int(total.trials), runs=int(total.runs),
            pruned=int(total.pruned), diverged=int(total.diverged), failed=int(total.failed),
            fastest_steps=float(total.fastest_steps) if total.fastest_steps is not None else None,
        )
        rows.append(row)
        scope = and_(stats.task == task, stats.optimizer == total.optimizer)
        best = connection.execute(
            select(stats.params_hash, stats.lr, stats.metric_mean)
            .where(scope, eligible)
            .order_by(
                stats.metric_mean.desc() if maximize else stats.metric_mean.asc(),
                stats.metric_count.desc(),
                stats.params_hash,
            )
            .limit(1)
        ).first()
        if best is None:
            continue
        row.params_hash, row.lr, row.mean = best.params_hash, best.lr, best.metric_mean
        if best.lr is None:
            continue
        limit = best.metric_mean - tolerance.margin(best.metric_mean) if maximize else (
            best.metric_mean + tolerance.margin(best.metric_mean)
        )
        slack = 1e-12 * max(1.0, abs(best.metric_mean))
        limit += -slack if maximize else slack
        within = stats.metric_mean >= limit if maximize else stats.metric_mean <= limit
        good = and_(eligible, within)
        bad = or_(stats.diverged > 0, and_(stats.metric_mean.is_not(None), ~within))
        below = connection.execute(
            select(stats.lr).where(scope, stats.lr < best.lr, bad)
            .order_by(stats.lr.desc()).limit(1)
        ).scalar()
        above = connection.execute(
            select(stats.lr).where(scope, stats.lr > best.lr, bad)
            .order_by(stats.lr.asc()).limit(1)
        ).scalar()
        between = [scope, good, stats.lr.is_not(None)]
        if below is not None:
            between.append(stats.lr > below)
        if above is not None:
            between.append(stats.lr < above)
        low, high = connection.execute(
            select(func.min(stats.lr), func.max(stats.lr)).where(*between)
        ).one()
        row.good_low = low if low is not None else best.lr
        row.good_high = high if high is not None else best.lr
    return rows


def _best_config_runs(
    connection: Any, task: str, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[Any]]:
    """The runs of the given (optimizer, params_hash) configurations of a task."""
    from sqlalchemy import and_, or_, select

    from tuner.store import Run

    if not pairs:
        return {}
    runs = Run.__table__.c
    found: dict[tuple[str, str], list[Any]] = {pair: [] for pair in pairs}
    statement = select(
        runs.optimizer, runs.params_hash, runs.params, runs.status, runs.final_metric,
        runs.steps_to_target, runs.seconds_to_target, runs.optimizer_state_bytes,
        runs.param_count,
    ).where(
        runs.task == task,
        or_(*(and_(runs.optimizer == o, runs.params_hash == h) for o, h in sorted(set(pairs)))),
    )
    for row in connection.execute(statement):
        found.setdefault((row.optimizer, row.params_hash), []).append(row)
    return found


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def rank_task(
    task: str,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
) -> TaskRanking:
    """Optimizers ranked on ``task`` from every run in the store (``tuner best``).

    Raises :class:`NoRunsError` when the store holds no run of the task, and
    :class:`~tuner.errors.UnknownNameError` for a task no plugin registers.
    """
    from sqlalchemy import func, select

    from tuner.store import Study

    plugin = _task_plugin(task)
    tol = default_tolerance(plugin.metric) if tolerance is None else Tolerance.parse(tolerance)
    store, opened = _open(db)
    try:
        with store.engine.connect() as connection:
            rows = _rank_rows(connection, task, plugin.direction, tol)
            if not rows:
                raise NoRunsError(
                    f"no runs for task {task!r} in {store.display_url}; run a study first"
                )
            pairs = [(row.optimizer, row.params_hash) for row in rows if row.params_hash]
            config_runs = _best_config_runs(connection, task, pairs)
            studies = connection.execute(
                select(func.count()).select_from(Study).where(Study.task == task)
            ).scalar_one()
        display = store.display_url
    finally:
        if opened:
            store.dispose()

    standings = []
    for row in rows:
        measured = config_runs.get((row.optimizer, row.params_hash), [])
        complete = [r for r in measured if r.status == "complete" and r.final_metric is not None]
        finals = [r.final_metric for r in complete]
        reached = [r for r in complete if r.steps_to_target is not None]
        seconds = [r.seconds_to_target for r in reached if r.seconds_to_target is not None]
        multiples = [
            r.optimizer_state_bytes / (r.param_count * 4) for r in measured if r.param_count
        ]
        declared = _declared_state_multiple(row.optimizer)
        measured_multiple = _mean(multiples)
        standings.append(
            OptimizerStanding(
                optimizer=row.optimizer,
                rank=0,
                mean=_mean(finals) if finals else None,
                std=sample_std(finals),
                seeds=len(finals),
                params=dict(measured[0].params) if measured else {},
                lr=row.lr,
                trials=int(row.trials),
                runs=int(row.runs),
                pruned=int(row.pruned),
                diverged=int(row.diverged),
                failed=int(row.failed),
                good_lr=(row.good_low, row.good_high) if row.good_low is not None else None,
                steps_to_target=_mean([float(r.steps_to_target) for r in reached]),
                seconds_to_target=_mean(seconds),
                reached_target=len(reached),
                fastest_steps_to_target=(
                    float(row.fastest_steps) if row.fastest_steps is not None else None
                ),
                state_multiple=measured_multiple if measured_multiple is not None else declared,
                declared_state_multiple=declared,
                params_hash=row.params_hash,
            )
        )
    _order_and_compare(standings, plugin.direction)
    return TaskRanking(
        task=task, metric=plugin.metric, direction=plugin.direction,
        target=getattr(plugin, "target", None), tolerance=tol, db=display,
        studies=int(studies), optimizers=standings,
    )


def _order_and_compare(standings: list[OptimizerStanding], direction: str) -> None:
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


# -- the recommendation -----------------------------------------------------------------------


def format_metric(value: float | None, metric: str) -> str:
    """A metric value as people read it: accuracies in percent, others to 4 significant digits."""
    if value is None:
        return "-"
    if "acc" in metric.lower():
        return f"{value * 100:.1f}%"
    return f"{value:.4g}"


def format_spread(value: float | None, metric: str) -> str:
    """A standard deviation in the same units as :func:`format_metric` (without the % sign)."""
    if value is None:
        return "-"
    if "acc" in metric.lower():
        return f"{value * 100:.1f}"
    return f"{value:.2g}"


def format_lr(value: float | None) -> str:
    """A learning rate in the short form people write (``1e-3``, ``3.2e-4``)."""
    if value is None:
        return "-"
    mantissa, exponent = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _effective_state_multiple(standing: OptimizerStanding) -> float | None:
    if standing.declared_state_multiple is not None:
        return standing.declared_state_multiple
    return standing.state_multiple


def advise(
    task: str,
    db: str | Store | None = None,
    memory_budget: str | float | None = None,
    tolerance: str | float | Tolerance | None = None,
) -> Advice:
    """The recommendation for ``task`` (``tuner advise``), optionally within a memory budget.

    ``memory_budget`` (``"1n"``, ``"2n"``, ...) leaves out optimizers whose state is larger than
    that multiple of the parameter count (the plugin's declaration; the measurement if the
    plugin is not installed).
    """
    ranking = rank_task(task, db=db, tolerance=tolerance)
    budget = parse_memory_budget(memory_budget)
    allowed, left_out = [], []
    for standing in ranking.optimizers:
        multiple = _effective_state_multiple(standing)
        if budget is not None and multiple is not None and multiple > budget + 1e-9:
            left_out.append(standing.optimizer)
        else:
            allowed.append(standing)
    candidates = [s for s in allowed if s.mean is not None]
    metric = ranking.metric
    if not candidates:
        why = (
            f"within a memory budget of {budget:g}n" if budget is not None and left_out
            else "that completed without diverging"
        )
        text = f"On {task}, no measured optimizer {why}; run a study first."
        return Advice(
            task=task, text=text, optimizer=None, params={}, lr=None, good_lr=None, mean=None,
            std=None, seeds=0, trials=0, tied_with=[], memory_budget=budget,
            left_out=left_out, ranking=ranking,
        )
    top = candidates[0]
    tied = [
        s.optimizer for s in candidates[1:]
        if tied_within_noise(top.mean, top.standard_error, s.mean, s.standard_error)
    ]
    text = f"On {task}, use {top.optimizer}"
    if top.lr is not None:
        text += f" with lr {format_lr(top.lr)}"
        if top.good_lr and top.good_lr[0] < top.good_lr[1]:
            text += f" (good range {format_lr(top.good_lr[0])}..{format_lr(top.good_lr[1])})"
    seeds = f"{top.seeds} seed" + ("s" if top.seeds != 1 else "")
    text += (
        f": {format_metric(top.mean, metric)} ± {format_spread(top.std, metric)} {metric} "
        f"over {seeds}, {top.trials} trials"
    )
    if tied:
        verb = "is" if len(tied) == 1 else "are"
        text += f"; {_join(tied)} {verb} tied within noise."
    elif len(candidates) > 1:
        second = candidates[1]
        if top.seeds < 2 or second.seeds < 2:
            text += f"; next is {second.optimizer} (too few seeds to judge the noise)."
        else:
            relative = (
                f" ({second.gap_relative * 100:.1f}%)" if second.gap_relative is not None else ""
            )
            text += (
                f"; it beats the next, {second.optimizer}, by "
                f"{format_spread(second.gap, metric)}{relative}."
            )
    else:
        text += "."
    if budget is not None and left_out:
        text += f" Left out by the {budget:g}n memory budget: {_join(left_out)}."
    return Advice(
        task=task, text=text, optimizer=top.optimizer, params=top.params, lr=top.lr,
        good_lr=top.good_lr, mean=top.mean, std=top.std, seeds=top.seeds, trials=top.trials,
        tied_with=tied, memory_budget=budget, left_out=left_out, ranking=ranking,
    )


def _join(names: Sequence[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


# -- across tasks ------------------------------------------------------------------------------


def stored_tasks(db: str | Store | None = None) -> list[str]:
    """The tasks that have runs in the store."""
    from sqlalchemy import select

    from tuner.store import Run

    store, opened = _open(db)
    try:
        with store.engine.connect() as connection:
            return sorted(connection.execute(select(Run.task).distinct()).scalars())
    finally:
        if opened:
            store.dispose()


def _config_results(
    store: Store, task: str, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[float | None, int, int]]:
    """(mean of complete runs, complete count, diverged count) per (optimizer, params_hash)."""
    with store.engine.connect() as connection:
        found = _best_config_runs(connection, task, pairs)
    results = {}
    for key, rows in found.items():
        finals = [
            r.final_metric for r in rows if r.status == "complete" and r.final_metric is not None
        ]
        diverged = sum(1 for r in rows if r.status == "diverged")
        results[key] = (_mean(finals), len(finals), diverged)
    return results


def default_params_hash(optimizer: str) -> str | None:
    """The ``params_hash`` of an optimizer's recommended (untuned default) configuration."""
    from tuner.plugins import get_registry
    from tuner.store import params_hash

    try:
        plugin = get_registry().optimizer(optimizer)
    except TunerError:
        return None
    return params_hash(plugin.space.recommended())


def compare(
    tasks: Sequence[str] | None = None,
    db: str | Store | None = None,
    tolerance: str | float | Tolerance | None = None,
) -> Comparison:
    """Optimizers x tasks: rank per task, mean rank and wins, and how good the defaults are.

    A default is an optimizer's recommended configuration (``plugin.space.recommended()``, the
    first trial every study enqueues). Per task, the best default (over optimizers) is compared
    with the tuned best (over optimizers and configurations) within the tolerance.
    """
    store, opened = _open(db)
    try:
        names = list(tasks) if tasks else stored_tasks(store)
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
            pairs = [
                (s.optimizer, h) for s in ranking.optimizers
                if (h := default_params_hash(s.optimizer)) is not None
            ]
            results = _config_results(store, task, pairs)
            defaults = {}
            for (optimizer, _), (mean, n, diverged) in results.items():
                if n and not diverged and mean is not None:
                    defaults[optimizer] = mean
                tuned = ranking.standing(optimizer).mean
                per_optimizer_defaults.setdefault(optimizer, {})[task] = {
                    "default_mean": mean if not diverged else None,
                    "default_diverged": bool(diverged),
                    "tuned_mean": tuned,
                    "within_tolerance": (
                        mean is not None and not diverged and tuned is not None
                        and tol.within(mean, tuned, ranking.direction)
                    ),
                }
            winner = ranking.winner
            entry: dict[str, Any] = {
                "metric": ranking.metric, "direction": ranking.direction,
                "tolerance": str(tol),
                "ranks": per_task_ranks[task],
                "tuned_best": (
                    {"optimizer": winner.optimizer, "mean": winner.mean, "lr": winner.lr}
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
    """Per task and optimizer, the tuned steps-to-target (for performance profiles).

    The cost is the smallest mean steps-to-target over the configurations whose every complete
    seed reached the task's target (none diverged); None when no configuration did.
    """
    store, opened = _open(db)
    try:
        names = list(tasks) if tasks else stored_tasks(store)
        costs = {}
        for task in names:
            ranking = rank_task(task, db=store)
            costs[task] = {s.optimizer: s.fastest_steps_to_target for s in ranking.optimizers}
        return costs
    finally:
        if opened:
            store.dispose()


# -- warm starts -------------------------------------------------------------------------------


@dataclass
class WarmStart:
    """What a new study can start from: known good configurations and a narrower lr range."""

    configs: list[dict[str, Any]]
    space: SearchSpace
    lr_range: tuple[float, float] | None
    source: str

    def __iter__(self):  # (configs, space) unpacking
        return iter((self.configs, self.space))


def warm_start(
    task: str,
    optimizer: str,
    space: SearchSpace,
    db: str | Store | None = None,
    top: int = 3,
    margin: float = WARM_START_MARGIN,
    tolerance: str | float | Tolerance | None = None,
) -> WarmStart:
    """Warm-start a new study of ``optimizer`` on ``task`` from what the store already knows.

    Returns the ``top`` best known configurations (distinct, best first, each a complete
    configuration valid in ``space``) to enqueue, and ``space`` with its ``lr`` range narrowed to
    the good-lr interval seen so far, widened by ``margin`` on each side on a log scale and
    clipped to the original range. With no usable runs, returns no configurations and ``space``
    unchanged. Unpacks as ``configs, space = warm_start(...)``.
    """
    from sqlalchemy import and_, select

    from tuner.store import Run
    from tuner.store.models import ConfigStats

    plugin = _task_plugin(task)
    empty = WarmStart(configs=[], space=space, lr_range=None, source="no runs")
    try:
        store, opened = _open(db)
    except NoRunsError:
        return empty
    try:
        try:
            ranking = rank_task(task, db=store, tolerance=tolerance)
        except NoRunsError:
            return empty
        try:
            standing = ranking.standing(optimizer)
        except UnknownNameError:
            return empty
        if standing.mean is None:
            return empty
        stats = ConfigStats.__table__.c
        runs = Run.__table__.c
        scope = and_(stats.task == task, stats.optimizer == optimizer)
        order = stats.metric_mean.desc() if plugin.direction == "maximize" else (
            stats.metric_mean.asc()
        )
        with store.engine.connect() as connection:
            hashes = connection.execute(
                select(stats.params_hash)
                .where(scope, stats.metric_mean.is_not(None), stats.diverged == 0)
                .order_by(order, stats.metric_count.desc(), stats.params_hash)
                .limit(top * 4)
            ).scalars().all()
            found = [
                connection.execute(
                    select(runs.params).where(
                        runs.task == task, runs.optimizer == optimizer, runs.params_hash == h
                    ).limit(1)
                ).scalar()
                for h in hashes
            ]
    finally:
        if opened:
            store.dispose()

    configs: list[dict[str, Any]] = []
    for params in found:
        try:
            config = space.complete(params or {})
        except TunerError:  # from an older or wider space: not valid in this one
            continue
        if config not in configs:
            configs.append(config)
        if len(configs) >= top:
            break
    narrowed = space
    lr_range = None
    if standing.good_lr and "lr" in space:
        lr_param = space["lr"]
        low, high = narrow_log_range(lr_param.low, lr_param.high, *standing.good_lr, margin=margin)
        narrowed = space.with_range("lr", low, high, owner=optimizer)
        lr_range = (low, high)
        configs = [c for c in configs if low <= c.get("lr", low) <= high]
    return WarmStart(
        configs=configs, space=narrowed, lr_range=lr_range,
        source=f"{standing.trials} trials, {standing.runs} runs in {ranking.db}",
    )


def warm_start_spec(
    spec: Any, db: str | Store | None = None, top: int = 3, margin: float = WARM_START_MARGIN
) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """A study spec warm-started from the store (``tuner study create --warm-start``).

    Returns the spec with each optimizer's lr range narrowed (:func:`warm_start`) and, per
    optimizer, the configurations to enqueue after its recommended one.
    """
    from dataclasses import replace

    ranges = {name: dict(values) for name, values in (spec.ranges or {}).items()}
    configs: dict[str, list[dict[str, Any]]] = {}
    for optimizer in spec.optimizers:
        found = warm_start(spec.task, optimizer, spec.space(optimizer), db=db, top=top,
                           margin=margin)
        if found.lr_range is not None:
            ranges.setdefault(optimizer, {})["lr"] = [found.lr_range[0], found.lr_range[1]]
        configs[optimizer] = found.configs
    return replace(spec, ranges=ranges), configs
