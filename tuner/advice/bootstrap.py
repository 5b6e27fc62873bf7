"""How sure the ranking is: P(best), ties, lr-ratio intervals and the winner's-curse correction,
from a nested resample of each optimizer's tuning.

Two kinds of luck decide which optimizer a study names: the seeds each configuration was
trained with, and which configurations the sampler happened to try. The resample counts both,
so that an optimizer's P(best) estimates the share of repeated studies (new sampler seed, new
training seeds, the same trials per optimizer) that would name it.

The statistic (pinned, so that two implementations give the same numbers): B =
:data:`BOOTSTRAP_RESAMPLES` resamples from ``numpy.random.default_rng(BOOTSTRAP_SEED)``; the
optimizers in name order, each drawing its seed noise, one ``(B, T)`` array of standard
normals, then its population weights, one ``(B, T)`` array of standard exponentials and one
``(B,)`` array of gammas (below); then, for each number of trials asked for in increasing
order, each optimizer in name order draws one ``(B,)`` array of uniforms that picks which of
its configurations the resample drew. A resample is a *repeated study*: what another study of
the same optimizers would find, given what this one measured. For one optimizer:

1. **Its tuning.** The N configurations its tuning made under the ranking's protocol (those with
   a result, the diverged and the pruned; failed ones carry no outcome and are left out) stand
   for the population its sampler draws from, known only through them: each resample weighs
   them afresh (the Bayesian bootstrap, Rubin 1981: Dirichlet(1, ..., 1) weights, as
   exponentials over their sum; the N - T configurations past the top share one gamma of shape
   N - T), and the repeated study draws its k trials from them by those weights. k is the
   number of trials compared at: by default the fewest any ranked optimizer has, so that an
   optimizer given more trials is not favoured. Only the best drawn configuration matters, so
   the draws are not made one by one: with its top T (:data:`RESAMPLED`) configurations by mean
   (a result, no divergence) sorted by their redrawn values, the first j positions, of weights
   summing to W_j, are all missed with probability ``(1 - W_j)^k``; the first position drawn
   is sampled from that by one uniform per resample. Past the top T, the resample drew none of
   them, and its best counts as the best of the rest (the next configuration's mean, an upper
   bound, or the worst outcome when the rest were all pruned or diverged).
2. **Its seeds.** A drawn configuration's value in the repeated study is ``mean + sqrt(2) * s /
   sqrt(n) * z`` (:data:`PREDICTIVE`): its true mean is known only to within ``s / sqrt(n)``,
   and the repeated study measures it with an error of its own of that size. ``s`` is its own
   standard deviation over its n >= 2 seeds, or for a one-seed configuration the optimizer's
   pooled within-configuration deviation (over its top configurations with two or more seeds;
   the task's pooled one when it has none). A pruned or diverged draw is the worst (minus
   infinity when maximising).
3. **Its best** in the resample is its best drawn value, with that configuration's lr.

Then ``P(best)`` of an optimizer is the share of resamples whose overall best is its own: the
predictive probability that a repeated study names it (for two single configurations d apart,
each of standard error se, ``Phi(d / (2 se))``, not the ``Phi(d / (sqrt(2) se))`` of the
truth alone; a resample every optimizer of which drew only pruned or diverged configurations
names nobody);
``beats[(a, b)]`` the share in which a's best beats b's (a tie with the winner: the winner
beats it in fewer than :data:`CONFIDENT` of them); the lr ratio of two optimizers' best
configurations has the 5%..95% quantiles of the re-picked lrs' ratio as its interval.

**Which luck is missing, and what would settle it.** The same resample with seed noise alone
(every configuration drawn once, as measured) and with the draws alone (no seed noise) gives
each optimizer's P(best) under one kind of luck (``p_best_seeds_only``,
``p_best_draws_only``). What would settle an unsettled ranking is read off the same resample
with more of each, assuming further runs find what the measured ones did: more trials per
optimizer in contention, k' on the grid ``k * (1.5, 2, 3, 4, 6, 8)`` (the draws of the
resample); more seeds of each configuration, m in (1, 2, 4, ..., 64) (standard errors
``s / sqrt(n + m)``); or, when neither alone reaches :data:`CONFIDENT`, the first pair along
both grids together that does (:func:`remedies`, B = :data:`REMEDY_RESAMPLES`).
:func:`seeds_to_settle` keeps the closed form for two configurations: the winner is named
with probability ``Phi(gap / sqrt((s_1^2 + s_2^2) / n))``, which reaches 0.9 when
``n >= z^2 (s_1^2 + s_2^2) / gap^2`` with ``z = 1.2816``.

**The winner's curse.** An optimizer's best configuration was picked by the same seeds that
measured it, so its mean is biased upwards. With seed noise alone, its selection bias is the
mean over resamples of (the best drawn value minus the mean of the configuration that drew it);
the reported ``corrected`` value is the measured mean less that bias (in the task's direction).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20
CONFIDENT = 0.9
CONFIDENT_Z = 1.2815515655446004  # the standard normal's 0.9 quantile
TOP = 64
"""How many of an optimizer's best configurations a ranking reads (its expected best at k
trials is computed from them when the rest cannot matter: :mod:`tuner.advice.budgets`)."""
RESAMPLED = 32
"""How many of them the resample redraws one by one; the others stand as one rest."""
RATIO_QUANTILES = (0.05, 0.95)
PREDICTIVE = math.sqrt(2.0)
"""A repeated study's seed noise relative to the measured standard error: the truth is known
only to within it, and the new study adds its own (two independent errors of that size)."""
MORE_TRIALS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
"""The multiples of the compared trials at which "how many more trials" is looked for."""
MORE_SEEDS = (1, 2, 4, 8, 16, 32, 64)
"""The numbers of more seeds per configuration at which "how many more seeds" is looked for."""
REMEDY_RESAMPLES = 400
"""Resamples behind each figure of what would settle a ranking (a rough amount)."""


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


@dataclass(frozen=True)
class Tuning:
    """One optimizer's tuning as the resample sees it: its best configurations, best first (at
    most :data:`RESAMPLED`, each spread known), how many configurations it drew in all
    (``draws``, >= len(configs)), and the mean of the best configuration after them (None: the
    rest are pruned or diverged)."""

    configs: Sequence[Contender]
    draws: int
    rest: float | None = None


@dataclass
class Resampled:
    """What the resample found at ``trials`` trials per optimizer (see the module docstring)."""

    p_best: dict[str, float]
    ratio_intervals: dict[tuple[str, str], tuple[float, float]]
    resamples: int
    beats: dict[tuple[str, str], float]
    """``beats[(a, b)]``: the share of resamples in which a's best result beats b's."""
    trials: int = 0
    p_best_seeds_only: dict[str, float] = field(default_factory=dict)
    p_best_draws_only: dict[str, float] = field(default_factory=dict)
    selection_bias: dict[str, float] = field(default_factory=dict)
    """Per optimizer, how much its best configuration's mean is flattered by having been picked
    (metric units, in the task's direction: subtract when maximising, add when minimising)."""


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


class _Draws:
    """The resample's random numbers for one optimizer, drawn once in the pinned order: its
    configurations' seed noise, the population weights of each resample, and each resample's
    configurations sorted by their redrawn values, best first."""

    def __init__(self, tuning: Tuning, sign: float, rng: Any, resamples: int,
                 predictive: bool = True) -> None:
        import numpy as np

        self.tuning = tuning
        self.top = len(tuning.configs)
        self.draws = max(tuning.draws, self.top, 1)
        self.means = sign * np.array([c.mean for c in tuning.configs], dtype=float)
        self.errors = np.array([c.standard_error for c in tuning.configs], dtype=float)
        self.lrs = np.array([c.lr if c.lr is not None else np.nan for c in tuning.configs])
        self.noise = rng.standard_normal((resamples, self.top))
        weights = rng.standard_exponential((resamples, self.top))
        others = self.draws - self.top
        rest = rng.gamma(others, size=resamples) if others > 0 else np.zeros(resamples)
        self.weights = weights / (weights.sum(axis=1) + rest)[:, None]
        if not predictive:  # equal weights: each configuration 1/N, as measured
            self.weights = np.full((resamples, self.top), 1.0 / self.draws)
        self.rest = -np.inf if tuning.rest is None else sign * tuning.rest
        scale = PREDICTIVE if predictive else 1.0
        repeated = self.means + scale * self.errors * self.noise
        self.order = np.argsort(-repeated, axis=1)
        self.sorted = np.take_along_axis(repeated, self.order, axis=1)
        self.plain_order = np.argsort(-self.means, kind="stable")
        # W_j, the weight of the first j positions, in each order (the same for every k)
        self.covered = np.cumsum(np.take_along_axis(self.weights, self.order, axis=1), axis=1)
        self.plain_covered = np.cumsum(self.weights[:, self.plain_order], axis=1)

    def first_drawn(self, uniforms: Any, trials: int, seed_noise: bool) -> Any:
        """Per resample, the position (in its best-first order: by redrawn values, or by
        means without ``seed_noise``) of the best configuration that ``trials`` draws from the
        resample's population include: the first j positions, of weights summing to W_j, are
        all missed with probability ``(1 - W_j)^k``; position ``top`` stands for the rest.
        One uniform ``u`` per resample: the position is the number of j with
        ``1 - (1 - W_j)^k < u``, that is ``W_j < 1 - (1 - u)^(1/k)`` (W_j grows with j)."""
        covered = self.covered if seed_noise else self.plain_covered
        threshold = 1.0 - (1.0 - uniforms) ** (1.0 / trials)
        return (covered < threshold[:, None]).sum(axis=1)

    def best(self, first: Any | None, seed_noise: bool) -> tuple[Any, Any]:
        """Each resample's best value and its lr; ``first`` (positions from
        :meth:`first_drawn`) None: every configuration drawn once, the best of them."""
        import numpy as np

        resamples = self.noise.shape[0]
        if first is None:
            first = np.zeros(resamples, dtype=int)
        if self.top == 0:
            return np.full(resamples, self.rest), np.full(resamples, np.nan)
        inside = first < self.top
        at = np.minimum(first, self.top - 1)
        if seed_noise:
            rows = np.arange(resamples)
            values = self.sorted[rows, at]
            picked = self.order[rows, at]
        else:
            picked = self.plain_order[at]
            values = self.means[picked]
        best = np.where(inside, values, self.rest)
        lrs = np.where(inside, self.lrs[picked], np.nan)
        return best, lrs

    def selection_bias(self) -> float:
        """Mean over resamples of the best value as measured (the seeds' noise once) less the
        picked configuration's mean."""
        import numpy as np

        if not self.top:
            return 0.0
        measured = self.means + self.errors * self.noise
        picked = measured.argmax(axis=1)
        rows = np.arange(measured.shape[0])
        return float(np.mean(measured[rows, picked] - self.means[picked]))


def _shares(best: Any) -> Any:
    """Each column's share of the rows whose maximum (finite) it holds."""
    import numpy as np

    finite = np.isfinite(best).any(axis=1)
    winners = best.argmax(axis=1)
    return np.bincount(winners[finite], minlength=best.shape[1]) / best.shape[0]


def resample(
    tunings: Mapping[str, Tuning],
    direction: str,
    trials: int | Sequence[int] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    configurations: bool = True,
    full: bool | Collection[int] = True,
    predictive: bool = True,
) -> Resampled | dict[int, Resampled]:
    """The nested resample of the module docstring, at ``trials`` trials per optimizer (default:
    the fewest draws any optimizer made); for a sequence of trial counts, one
    :class:`Resampled` per count (the same seed noise at each: common random numbers).
    ``configurations=False`` leaves the draws out (every configuration once, as measured):
    the seeds-only resample, for comparison; ``full=False`` computes P(best) alone, and a
    collection of trial counts computes the rest (ties, lr intervals, the luck alone, the
    winner's curse) at those only. ``predictive=False`` is the resample the advice made before
    it predicted repeated studies: each value redrawn with its standard error once, the
    configurations equally weighted (with ``configurations=False``: the seeds-only resample of
    earlier versions, for comparison)."""
    import numpy as np

    names = sorted(name for name, tuning in tunings.items() if tuning.draws > 0)
    sign = 1.0 if direction == "maximize" else -1.0
    default = min((tunings[n].draws for n in names), default=0)
    many = isinstance(trials, Sequence)
    asked = sorted({int(k) for k in trials}) if many else [int(trials or default)]
    if not names:
        empty = {k: Resampled({}, {}, resamples, {}, trials=k) for k in asked}
        return empty if many else empty[asked[0]]
    rng = np.random.default_rng(seed)
    draws = [_Draws(tunings[name], sign, rng, resamples, predictive) for name in names]
    uniforms = {k: [rng.random(resamples) for _ in draws] for k in asked}

    found = {}
    for k in asked:
        pairs = [d.best(d.first_drawn(u, k, True) if configurations else None, True)
                 for d, u in zip(draws, uniforms[k], strict=True)]
        best = np.column_stack([value for value, _ in pairs])
        lrs = np.column_stack([lr for _, lr in pairs])
        detailed = full is True or (full is not False and k in full)
        found[k] = _summary(names, best, lrs, resamples, k, detailed)
        if detailed:
            drawn_only = _shares(np.column_stack(
                [d.best(d.first_drawn(u, k, False), False)[0]
                 for d, u in zip(draws, uniforms[k], strict=True)]))
            found[k].p_best_draws_only = dict(zip(names, map(float, drawn_only), strict=True))
    if full is not False:
        seeds_only = _shares(np.column_stack([d.best(None, True)[0] for d in draws]))
        bias = {name: sign * d.selection_bias() for name, d in zip(names, draws, strict=True)}
        for k in asked:
            found[k].p_best_seeds_only = dict(zip(names, map(float, seeds_only), strict=True))
            found[k].selection_bias = bias
    return found if many else found[asked[0]]


def _summary(names: list[str], best: Any, lrs: Any, resamples: int, trials: int,
             full: bool) -> Resampled:
    import numpy as np

    shares = _shares(best)
    p_best = {name: float(shares[i]) for i, name in enumerate(names)}
    if not full:
        return Resampled(p_best, {}, resamples, {}, trials=trials)
    beats_share = (best[:, :, None] > best[:, None, :]).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = lrs[:, :, None] / lrs[:, None, :]
    ratios[~np.isfinite(ratios)] = np.nan
    known = np.isfinite(ratios).sum(axis=0)
    with warnings.catch_warnings():  # a pair without any known ratio: nan, left out below
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(ratios, RATIO_QUANTILES, axis=0)
    intervals: dict[tuple[str, str], tuple[float, float]] = {}
    beats: dict[tuple[str, str], float] = {}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i == j:
                continue
            beats[(a, b)] = float(beats_share[i, j])
            if known[i, j] >= 0.9 * resamples:  # the rest's lr is unknown: too many, none
                intervals[(a, b)] = (float(low[i, j]), float(high[i, j]))
    return Resampled(p_best, intervals, resamples, beats, trials=trials)


def with_more_seeds(tuning: Tuning, seeds: int) -> Tuning:
    """The tuning as it would be with ``seeds`` more seeds of each of its configurations (the
    same means and spreads, smaller standard errors)."""
    configs = [Contender(c.lr, c.mean, c.std, c.seeds + seeds) for c in tuning.configs]
    return Tuning(configs, tuning.draws, tuning.rest)


@dataclass(frozen=True)
class Remedy:
    """What would settle a ranking: ``trials`` per optimizer in contention (the total, not the
    addition; None: as now) and ``seeds`` more of each configuration (0: none), and the
    winner's P(best) they would give."""

    trials: int | None
    seeds: int
    p_best: float


def remedies(
    tunings: Mapping[str, Tuning], direction: str, winner: str, trials: int,
    resamples: int = REMEDY_RESAMPLES,
) -> list[Remedy]:
    """The ways to settle the ranking on the grids (:data:`MORE_TRIALS` times ``trials``;
    :data:`MORE_SEEDS` more seeds), assuming what is measured is what more runs would find:
    the fewest more trials alone, the fewest more seeds alone, and, when neither alone
    reaches :data:`CONFIDENT`, the first pair along the two grids together that does. Empty:
    nothing on the grids settles it (the contenders may be equally good). ``resamples``
    (:data:`REMEDY_RESAMPLES`, the same seed) is fewer than the ranking's: a remedy is a rough
    amount. More seeds are searched by halving the grid (P(best) grows with them)."""
    grid = sorted({max(trials + 1, math.ceil(trials * factor)) for factor in MORE_TRIALS})

    def p_at(tuned: Mapping[str, Tuning], ks: Sequence[int]) -> dict[int, float]:
        at = resample(tuned, direction, ks, resamples=resamples, full=False)
        return {k: at[k].p_best.get(winner, 0.0) for k in ks}

    def seeded(seeds: int) -> dict[str, Tuning]:
        return {name: with_more_seeds(t, seeds) for name, t in tunings.items()}

    def first(values: Sequence[int], settles: Any) -> tuple[int, float] | None:
        """The first of increasing ``values`` that settles it (by halving), and its P."""
        low, high, found = 0, len(values) - 1, None
        while low <= high:
            middle = (low + high) // 2
            p = settles(values[middle])
            if p >= CONFIDENT:
                found, high = (values[middle], p), middle - 1
            else:
                low = middle + 1
        return found

    ways: list[Remedy] = []
    more = p_at(tunings, grid)
    k_alone = next((k for k in grid if more[k] >= CONFIDENT), None)
    if k_alone is not None:
        ways.append(Remedy(k_alone, 0, more[k_alone]))
    seeds_alone = first(MORE_SEEDS, lambda m: p_at(seeded(m), [trials])[trials])
    if seeds_alone is not None:
        ways.append(Remedy(None, seeds_alone[0], seeds_alone[1]))
    if ways:
        return ways
    pairs = list(zip(grid, MORE_SEEDS, strict=False))
    together = first(range(len(pairs)), lambda i: p_at(seeded(pairs[i][1]),
                                                       [pairs[i][0]])[pairs[i][0]])
    if together is None:
        return []
    k, m = pairs[together[0]]
    return [Remedy(k, m, together[1])]


def seeds_to_settle(gap: float, std_a: float, std_b: float, seeds: int) -> int | None:
    """How many more seeds of each of two best configurations would name the better one with
    probability 0.9: ``ceil(z^2 (s_a^2 + s_b^2) / gap^2) - seeds``; None for a zero gap (no
    number of seeds separates two equal means)."""
    if gap <= 0:
        return None
    needed = math.ceil(CONFIDENT_Z**2 * (std_a**2 + std_b**2) / gap**2)
    return max(needed - seeds, 1)
