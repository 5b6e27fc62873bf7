"""The best optimizer at your tuning budget: each optimizer's expected best result after k
trials, for k from 1 to the trials it was measured with (Dodge et al. 2019, "Show your work").

For an optimizer whose tuning made N configurations with outcomes ``x`` (a pruned or diverged
one counts as its worst measured result), the expected best of k of them drawn at random
without replacement is

    E[best of k] = sum_i C(i, k - 1) / C(N, k) * x_(i)      (x sorted worst first, i from 0)

It is exact for random and quasi-random search, whose configurations do not depend on each
other; under TPE, whose later draws depend on the earlier ones, it is the random-search
equivalent: what k configurations like those measured would give. Its interval: the 5%..95%
quantiles over :data:`CURVE_RESAMPLES` resamples of the N configurations with replacement,
each redrawn with its seed noise (``numpy.random.default_rng(CURVE_SEED)``, optimizers in name
order).

When only an optimizer's best T configurations are read (a ranking reads at most
:data:`tuner.advice.bootstrap.TOP`), the same sum is taken from the top: the best of k is the
r-th best (0-based) with probability ``C(N - 1 - r, k - 1) / C(N, k)``; what lies beyond the
top has probability ``C(N - T, k) / C(N, k)``, and :func:`expected_best_from_top` answers only
when that is below :data:`TAIL_NEGLIGIBLE` or the rest are all pruned or diverged (otherwise
the caller reads every outcome).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

CURVE_RESAMPLES = 200
CURVE_SEED = 21
CURVE_QUANTILES = (0.05, 0.95)
TAIL_NEGLIGIBLE = 1e-6


def _weights(n: int, ks: Sequence[int]) -> Any:
    """``W[i, j] = C(i, k_j - 1) / C(n, k_j)`` for i < n: the chance that the i-th worst of n is
    the best of k_j drawn without replacement (from log factorials, so no overflow)."""
    import numpy as np

    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])

    def log_comb(a: Any, b: Any) -> Any:
        return log_factorial[a] - log_factorial[b] - log_factorial[a - b]

    i = np.arange(n)[:, None]
    k = np.asarray(ks, dtype=int)[None, :]
    valid = i >= k - 1
    below = np.where(valid, k - 1, 0)
    logs = log_comb(i, below) - log_comb(n, k)
    return np.where(valid, np.exp(logs), 0.0)


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
    """The expected best of ``k`` of ``outcomes`` drawn without replacement (None: pruned or
    diverged, counted as the worst result); ``k`` above their number is their best."""
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
    ks = [min(max(int(k), 1), n) for k in (ks or range(1, n + 1))]
    ordered = np.sort(np.asarray(scores))
    sign = 1.0 if direction == "maximize" else -1.0
    return [float(v) * sign for v in ordered @ _weights(n, ks)]


def expected_best_from_top(
    top: Sequence[float], draws: int, k: int, every_result: bool
) -> float | None:
    """The expected best of ``k`` of ``draws`` configurations from the means of the best of
    them (``top``, best first); None when nothing has a result, or when the configurations
    beyond the top could matter (see the module docstring). ``every_result``: the top holds
    every configuration with a result, so what lies beyond it was pruned or diverged and counts
    as the worst result, the top's last (then the answer is exact)."""
    if not top or draws < 1:
        return None
    k = min(max(k, 1), draws)
    t = min(len(top), draws)
    total = math.comb(draws, k)
    beyond = math.comb(draws - t, k) / total if draws - t >= k else 0.0
    if beyond > TAIL_NEGLIGIBLE and not every_result:
        return None
    value = sum(math.comb(draws - 1 - r, k - 1) / total * mean
                for r, mean in enumerate(top[:t]) if draws - 1 - r >= k - 1)
    return value + beyond * top[t - 1]


@dataclass
class BudgetCurve:
    """One optimizer's expected best after k trials, k = 1..``trials``, with an interval."""

    optimizer: str
    trials: int
    expected: list[float]
    low: list[float]
    high: list[float]

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
