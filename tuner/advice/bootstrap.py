"""How sure the ranking is: P(best) per optimizer and lr-ratio intervals from a resample.

The statistic (issue 12, pinned so that two implementations give the same numbers): resample
every configuration's result B = 1000 times with a fixed generator (``numpy.random.
default_rng(BOOTSTRAP_SEED)``), re-pick each optimizer's best configuration in every resample,
and count. The resample is *parametric*, from what ``tuner_config_stats`` stores: a
configuration's mean over its n seeds is drawn from ``Normal(mean, s / sqrt(n))``, where ``s`` is
its own sample standard deviation, or, with one seed (the spread unknown), the optimizer's
*pooled* within-configuration standard deviation (over its contending configurations, below,
with two or more seeds; over every optimizer's when it has none: the spread near the best
results, and no scan of the task's other configurations). Draws are made optimizer by
optimizer in name order, each as one ``(B, configurations)`` array, configurations best first.

- ``P(best)`` of an optimizer: the share of resamples whose best result (over the optimizers'
  re-picked best configurations) is its own.
- the lr ratio of two optimizers: ``lr_a / lr_b`` of their best configurations; its interval is
  the 5%..95% quantiles of that ratio over the resamples (the re-picked best lrs).
- which configurations are resampled: an optimizer's :data:`CONTENDERS` best by mean whose mean
  is within :data:`CONTENDER_STANDARD_ERRORS` standard errors of the difference from its best
  (a configuration further behind wins a resample with probability below 1e-9).

"Too few runs" when the winner's P(best) is under :data:`CONFIDENT`. How many more seeds would
settle it (rough, two optimizers, equal seeds n on both best configurations, the gap and the
spreads as measured): the winner is named with probability ``Phi(gap / sqrt((s_1^2 + s_2^2) /
n))``, which reaches 0.9 when ``n >= z^2 (s_1^2 + s_2^2) / gap^2`` with ``z = 1.2816`` (the
standard normal's 90% quantile); the seeds to add are that n less the fewer seeds measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 12
CONFIDENT = 0.9
CONFIDENT_Z = 1.2815515655446004  # the standard normal's 0.9 quantile
CONTENDERS = 32
CONTENDER_STANDARD_ERRORS = 6.0
RATIO_QUANTILES = (0.05, 0.95)


@dataclass(frozen=True)
class Contender:
    """One configuration in the resample: its lr, mean, per-seed spread and seeds."""

    lr: float | None
    mean: float
    std: float
    seeds: int

    @property
    def standard_error(self) -> float:
        return self.std / math.sqrt(max(self.seeds, 1))


@dataclass
class Resampled:
    """What the resample found: P(best) per optimizer and lr-ratio intervals per pair."""

    p_best: dict[str, float]
    ratio_intervals: dict[tuple[str, str], tuple[float, float]]
    resamples: int
    beats: dict[tuple[str, str], float]
    """``beats[(a, b)]``: the share of resamples in which a's best result beats b's."""


def pooled_squares(configs: Sequence[Any]) -> tuple[float, int]:
    """``(sum of squared deviations, degrees of freedom)`` of the seeds around their
    configuration's mean, over ``configs`` (``std``, ``seeds``) with two or more seeds."""
    squares = sum(c.std**2 * (c.seeds - 1) for c in configs if c.seeds >= 2 and c.std is not None)
    dof = sum(c.seeds - 1 for c in configs if c.seeds >= 2 and c.std is not None)
    return squares, dof


def pooled_std(squares: float, dof: int) -> float | None:
    """``sqrt(sum of squared deviations / degrees of freedom)``; None without any dof."""
    return math.sqrt(max(squares, 0.0) / dof) if dof > 0 else None


def spread(std: float | None, seeds: int, pooled: float | None) -> float | None:
    """A configuration's per-seed standard deviation: its own with two or more seeds, else the
    pooled one (None when that is unknown too)."""
    if seeds >= 2 and std is not None:
        return std
    return pooled


def keep_contenders(contenders: Sequence[Contender], direction: str) -> list[Contender]:
    """The configurations that can win a resample: within :data:`CONTENDER_STANDARD_ERRORS`
    standard errors of the difference from the best (``contenders`` best first)."""
    if not contenders:
        return []
    best = contenders[0]
    sign = 1.0 if direction == "maximize" else -1.0
    kept = []
    for candidate in contenders:
        behind = sign * (best.mean - candidate.mean)
        noise = math.hypot(best.standard_error, candidate.standard_error)
        if candidate is best or behind <= CONTENDER_STANDARD_ERRORS * noise:
            kept.append(candidate)
    return kept


def resample(
    contenders: Mapping[str, Sequence[Contender]],
    direction: str,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Resampled:
    """P(best) of each optimizer and the lr-ratio interval of each ordered pair (see the module
    docstring); ``contenders[optimizer]`` best first, every spread known."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = sorted(name for name, found in contenders.items() if found)
    best_values = np.empty((resamples, len(names)))
    best_lrs = np.empty((resamples, len(names)))
    rows = np.arange(resamples)
    for column, name in enumerate(names):
        found = contenders[name]
        means = np.array([c.mean for c in found])
        errors = np.array([c.standard_error for c in found])
        lrs = np.array([c.lr if c.lr is not None else np.nan for c in found])
        draws = rng.normal(means, errors, size=(resamples, len(found)))
        picked = draws.argmax(axis=1) if direction == "maximize" else draws.argmin(axis=1)
        best_values[:, column] = draws[rows, picked]
        best_lrs[:, column] = lrs[picked]
    if not names:
        return Resampled({}, {}, resamples, {})
    winners = best_values.argmax(axis=1) if direction == "maximize" else best_values.argmin(
        axis=1)
    counts = np.bincount(winners, minlength=len(names))
    p_best = {name: float(counts[i]) / resamples for i, name in enumerate(names)}
    # every ordered pair at once: (B, n, n) arrays of "i beats j" and "lr_i / lr_j"
    if direction == "maximize":
        better = best_values[:, :, None] > best_values[:, None, :]
    else:
        better = best_values[:, :, None] < best_values[:, None, :]
    shares = better.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = best_lrs[:, :, None] / best_lrs[:, None, :]
    finite = np.isfinite(ratios).all(axis=0)
    low, high = np.quantile(ratios, RATIO_QUANTILES, axis=0)
    intervals: dict[tuple[str, str], tuple[float, float]] = {}
    beats: dict[tuple[str, str], float] = {}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i == j:
                continue
            beats[(a, b)] = float(shares[i, j])
            if finite[i, j]:
                intervals[(a, b)] = (float(low[i, j]), float(high[i, j]))
    return Resampled(p_best, intervals, resamples, beats)


def seeds_to_settle(gap: float, std_a: float, std_b: float, seeds: int) -> int | None:
    """How many more seeds of each of two best configurations would name the better one with
    probability 0.9: ``ceil(z^2 (s_a^2 + s_b^2) / gap^2) - seeds``; None for a zero gap (no
    number of seeds separates two equal means)."""
    if gap <= 0:
        return None
    needed = math.ceil(CONFIDENT_Z**2 * (std_a**2 + std_b**2) / gap**2)
    return max(needed - seeds, 1)
