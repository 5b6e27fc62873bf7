"""The statistics behind the advice, as pure functions: tolerances, noise, ties, good-lr
intervals, ranks across tasks, performance profiles and narrowed lr ranges.

Nothing here reads the store; :mod:`tuner.advice.ranking` applies these rules to what the store
returns, and the tests call them directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tuner.errors import TunerError

DEFAULT_RELATIVE_TOLERANCE = 0.02
DEFAULT_BPC_TOLERANCE = 0.05
TIE_STANDARD_ERRORS = 2.0
WARM_START_MARGIN = 3.0
MEMORY_BUDGETS = ("1n", "2n", "3n")


class AdviceError(TunerError, ValueError):
    """Bad arguments to an advice function (a tolerance or memory budget it cannot read)."""


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

    This is the reference form of the rule the store's query applies
    (:func:`tuner.store.queries.optimizer_summaries`); ``mean`` None with ``diverged`` False is
    a configuration without a result, and is skipped.
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
    """``"2n"`` -> 2.0 (optimizer state at most twice the parameter bytes); None for no budget."""
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
            "(optimizer state as a multiple of the parameters' bytes)"
        ) from None
    if value < 0:
        raise AdviceError(f"memory budget must not be negative, got {text!r}")
    return value
