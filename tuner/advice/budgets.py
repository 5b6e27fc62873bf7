"""The best optimizer at your tuning budget: each optimizer's expected best result after k
trials, for k from 1 to the trials it was measured with (Dodge et al. 2019, "Show your work").

For an optimizer whose tuning made N configurations with outcomes ``x`` (a pruned or diverged
one counts as its worst measured result), the expected best of k configurations drawn at
random from them, with replacement (k independent draws from their empirical distribution, as
Dodge et al. define it), is

    E[best of k] = sum_i ((i / N)^k - ((i - 1) / N)^k) * x_(i)      (x sorted worst first)

It is exact for random and quasi-random search, whose configurations are independent draws
from the search space, as far as the N measured ones stand for that space; under TPE, whose
later draws depend on the earlier ones, it is the random-search equivalent: what k
configurations like those measured would give. It is the same model the nested resample of
:mod:`tuner.advice.bootstrap` draws repeated studies from, without the seed noise, so the
ranking's order and its P(best) speak of one thing. Its interval: the 5%..95% quantiles over
:data:`CURVE_RESAMPLES` resamples of the N configurations with replacement, each redrawn with
its seed noise (``numpy.random.default_rng(CURVE_SEED)``, optimizers in name order).

When only an optimizer's best T configurations are read (a ranking reads at most
:data:`tuner.advice.bootstrap.TOP`), the same sum is taken from the top: the best of k is the
r-th best (0-based) with probability ``((N - r) / N)^k - ((N - r - 1) / N)^k``; what lies
beyond the top has probability ``((N - T) / N)^k``, and :func:`expected_best_from_top`
answers only when that is below :data:`TAIL_NEGLIGIBLE` or the rest are all pruned or
diverged (otherwise the caller reads every outcome).

The curves a report and the task page draw (:func:`tuner.advice.curves.curves_of`) are those of a
ranking's
configurations: every one under its protocol (and its memory budget and ``where`` filter) with
an outcome, each with its seed standard error ``std / sqrt(seeds)``; a one-seed configuration
takes its optimizer's pooled within-configuration std (over its configurations with two or
more seeds, none pruned or diverged), else the task's pooled one (:func:`seed_errors`). With
one seed everywhere the seed noise is unknown: the errors are 0 and the interval counts only
which configurations were drawn (``seed_noise`` False).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.store.queries import ConfigOutcome

CURVE_RESAMPLES = 200
CURVE_SEED = 21
CURVE_QUANTILES = (0.05, 0.95)
TAIL_NEGLIGIBLE = 1e-6


def _weights(n: int, ks: Sequence[int]) -> Any:
    """``W[i, j] = ((i + 1) / n)^k_j - (i / n)^k_j`` for i < n: the chance that the i-th worst
    of n is the best of k_j draws with replacement."""
    import numpy as np

    i = np.arange(n + 1)[:, None] / n
    k = np.asarray(ks, dtype=float)[None, :]
    below = i**k
    return below[1:] - below[:-1]


def _scored(outcomes: Sequence[float | None], direction: str) -> list[float] | None:
    """The outcomes as scores to maximise, a pruned or diverged one (None) at the worst
    measured result; None when nothing has a result."""
    sign = 1.0 if direction == "maximize" else -1.0
    results = [sign * x for x in outcomes if x is not None]
    if not results:
        return None
    worst = min(results)
    return [sign * x if x is not None else worst for x in outcomes]


def expected_best_of(outcomes: Sequence[float | None], k: int, direction: str) -> float | None:
    """The expected best of ``k`` draws with replacement from ``outcomes`` (None: pruned or
    diverged, counted as the worst result)."""
    found = expected_best_curve(outcomes, direction, [max(k, 1)])
    return found[0] if found else None


def expected_best_curve(
    outcomes: Sequence[float | None], direction: str, ks: Sequence[int] | None = None
) -> list[float] | None:
    """The expected best of k at each of ``ks`` (default 1..N), in the metric's units."""
    import numpy as np

    scores = _scored(outcomes, direction)
    if scores is None:
        return None
    n = len(scores)
    ks = [max(int(k), 1) for k in (ks or range(1, n + 1))]
    ordered = np.sort(np.asarray(scores))
    sign = 1.0 if direction == "maximize" else -1.0
    return [float(v) * sign for v in ordered @ _weights(n, ks)]


def expected_best_from_top(
    top: Sequence[float], draws: int, k: int, every_result: bool
) -> float | None:
    """The expected best of ``k`` draws with replacement from ``draws`` configurations, from
    the means of the best of them (``top``, best first); None when nothing has a result, or
    when the configurations beyond the top could matter (see the module docstring).
    ``every_result``: the top holds every configuration with a result, so what lies beyond it
    was pruned or diverged and counts as the worst result, the top's last (the answer is then
    exact)."""
    if not top or draws < 1:
        return None
    k = max(k, 1)
    t = min(len(top), draws)
    beyond = ((draws - t) / draws) ** k
    if beyond > TAIL_NEGLIGIBLE and not every_result:
        return None
    value = sum((((draws - r) / draws) ** k - ((draws - r - 1) / draws) ** k) * mean
                for r, mean in enumerate(top[:t]))
    return value + beyond * top[t - 1]


@dataclass
class BudgetCurve:
    """One optimizer's expected best after k trials, k = 1..``trials``, with an interval
    (``low``..``high``, the 5%..95% quantiles); ``seed_noise`` False when the interval could not
    count the seeds (one seed everywhere: only which configurations were drawn)."""

    optimizer: str
    trials: int
    expected: list[float]
    low: list[float]
    high: list[float]
    seed_noise: bool = True

    def at(self, k: int) -> float:
        return self.expected[min(max(k, 1), self.trials) - 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_curves(
    outcomes: Mapping[str, Sequence[float | None]],
    errors: Mapping[str, Sequence[float]],
    direction: str,
) -> dict[str, BudgetCurve]:
    """Each optimizer's :class:`BudgetCurve` from its configurations' outcomes (None: pruned or
    diverged) and their seed standard errors (``errors[name][i]`` for ``outcomes[name][i]``;
    0 for a pruned or diverged one)."""
    import numpy as np

    rng = np.random.default_rng(CURVE_SEED)
    sign = 1.0 if direction == "maximize" else -1.0
    curves = {}
    for name in sorted(outcomes):
        scores = _scored(outcomes[name], direction)
        if scores is None:
            continue
        n = len(scores)
        values = np.asarray(scores)
        noise = np.asarray(errors[name], dtype=float)
        weights = _weights(n, range(1, n + 1))
        picks = rng.integers(0, n, size=(CURVE_RESAMPLES, n))
        redrawn = values[picks] + noise[picks] * rng.standard_normal((CURVE_RESAMPLES, n))
        resampled = np.sort(redrawn, axis=1) @ weights
        low, high = np.quantile(resampled, CURVE_QUANTILES, axis=0)
        expected = np.sort(values) @ weights
        if sign < 0:
            expected, low, high = -expected, -high, -low
        curves[name] = BudgetCurve(name, n, [float(v) for v in expected],
                                   [float(v) for v in low], [float(v) for v in high])
    return curves


def seed_errors(
    configs: Mapping[str, Sequence[ConfigOutcome]],
) -> tuple[dict[str, list[float]], bool]:
    """Each configuration's seed standard error, ``std / sqrt(seeds)``, per optimizer, in the
    order given, and whether the seed noise is known at all.

    A one-seed configuration takes its optimizer's pooled within-configuration std (over its
    configurations with an outcome and two or more seeds), else the task's (over every
    optimizer's); a pruned or diverged one (outcome None) has 0, as has every configuration
    when no configuration of the task has two seeds (the noise is unknown)."""
    from tuner.advice.bootstrap import pooled_squares, pooled_std, spread

    measured = {name: [c for c in found if c.outcome is not None]
                for name, found in configs.items()}
    pooled = {name: pooled_squares(found) for name, found in measured.items()}
    task_pooled = pooled_std(sum(squares for squares, _ in pooled.values()),
                             sum(dof for _, dof in pooled.values()))
    errors: dict[str, list[float]] = {}
    for name, found in configs.items():
        common = pooled_std(*pooled[name]) or task_pooled
        errors[name] = []
        for config in found:
            std = spread(config.std, config.seeds, common) if config.outcome is not None else None
            errors[name].append(std / math.sqrt(max(config.seeds, 1)) if std else 0.0)
    return errors, task_pooled is not None
