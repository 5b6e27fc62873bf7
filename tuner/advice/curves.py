"""The budget curves of a ranking: each optimizer's expected best after k trials
(:mod:`tuner.advice.budgets`), over the configurations the ranking compares, read from the store.
The report and the task page draw them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner.advice.budgets import BudgetCurve, budget_curves, seed_errors

if TYPE_CHECKING:
    from tuner.advice.ranking import TaskRanking
    from tuner.store import Store


def curves_of(ranking: TaskRanking, db: str | Store | None = None) -> dict[str, BudgetCurve]:
    """Each optimizer's :class:`BudgetCurve` over the configurations ``ranking`` compares (its
    scope, memory budget and ``where`` filter), read from the store at ``db`` (the one the
    ranking was read from): the curves the report and the task page draw."""
    from tuner.advice.source import open_for_reading
    from tuner.store.queries import config_outcome_spreads

    if ranking.scope is None:
        return {}
    store, opened = open_for_reading(db)
    try:
        configs = config_outcome_spreads(store, ranking.scope, None, ranking.memory_budget,
                                         ranking.where)
    finally:
        if opened:
            store.dispose()
    errors, known = seed_errors(configs)
    outcomes = {name: [c.outcome for c in found] for name, found in configs.items()}
    curves = budget_curves(outcomes, errors, ranking.direction)
    for curve in curves.values():
        curve.seed_noise = known
    return curves
