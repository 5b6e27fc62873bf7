"""Defaults against tuning (Schmidt et al., "Descending through a Crowded Valley", 2021).

Per optimizer on a task: its default configuration's result (the configuration of its trials of
origin ``recommended``, every study's first trial; the one with the most seeds) against its
tuned best. Then the Crowded Valley question: is "the best of K optimizers at their defaults"
as good as "one optimizer tuned with the same number of runs" (K configurations)? The second is
the *expected* best of K of that optimizer's stored configurations drawn at random (order-free,
so it does not depend on which sampler found what; Dodge et al.'s "expected validation
performance", 2019; :mod:`tuner.advice.budgets`):

    E[best of K] = sum_i ((i / N)^K - ((i - 1) / N)^K) * x_(i)

over its N configurations sorted worst first (``x_(i)`` the i-th). A diverged configuration is
the worst possible draw, and so is a pruned one: each counts as the worst result the optimizer
measured (:func:`tuner.advice.budgets.expected_best_of`). Both sides are read under the
ranking's protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.advice.budgets import expected_best_of

if TYPE_CHECKING:
    from tuner.advice.ranking import TaskRanking
    from tuner.store import Store


def defaults_against_tuning(store: Store, ranking: TaskRanking) -> dict[str, Any]:
    """Each optimizer's default against its tuned best, and the best of K defaults against each
    optimizer tuned with K configurations (K: the optimizers with a usable default)."""
    from tuner.store.queries import config_outcomes, recommended_configs

    direction = ranking.direction
    per_optimizer: dict[str, dict[str, Any]] = {}
    usable: dict[str, float] = {}
    for optimizer, found in recommended_configs(store, ranking.scope, ranking.where).items():
        default = found[0]
        tuned = next((s.mean for s in ranking.optimizers if s.optimizer == optimizer), None)
        mean = default.mean if not default.diverged else None
        if mean is not None:
            usable[optimizer] = mean
        per_optimizer[optimizer] = {
            "default": mean, "tuned": tuned, "diverged": bool(default.diverged),
            "seeds": default.seeds,
        }
    k = len(usable)
    best_default = None
    if usable:
        sign = -1.0 if direction == "maximize" else 1.0
        name = min(sorted(usable), key=lambda o: sign * usable[o])
        best_default = {"optimizer": name, "mean": usable[name]}
    tuned_with_k = {}
    if k:
        for optimizer, outcomes in config_outcomes(store, ranking.scope,
                                                   where=ranking.where).items():
            tuned_with_k[optimizer] = expected_best_of(outcomes, k, direction)
    return {"defaults": per_optimizer, "best_default": best_default, "k": k,
            "tuned_with_k": tuned_with_k}
