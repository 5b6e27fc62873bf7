"""Advice from the store: optimizers ranked per task, good-lr intervals, ties, warm starts.

Everything here is a read of the store (every study of a task counts, not only the last one),
opened read-only. What advice needs of a task (metric, direction, target) comes from its task
record and what it needs of a configuration (its measured optimizer-state bytes) from its runs,
so advice imports neither torch nor Optuna nor the plugins, and works on a store copied to a
machine without them. The words used below mean exactly this:

configuration
    One set of hyperparameters *plus the training options that change the result* (budget,
    schedule, warmup, batch size, ...; :mod:`tuner.store.config_key`): runs share one when their
    ``config_hash`` is equal. ``lr=1e-3`` trained for 100 steps and for 200 steps are two
    configurations. Its seeds are all the runs with that key, across studies.

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
    Decided from a resample (:mod:`~tuner.advice.bootstrap`): each configuration's mean is
    redrawn from ``Normal(mean, s/sqrt(n))`` 1000 times (fixed seed; a one-seed configuration
    takes its optimizer's pooled spread) and each optimizer's best configuration re-picked.
    An optimizer is tied with the winner when the winner beats it in fewer than 90% of the
    resamples. ``P(best)`` is an optimizer's share of the resamples it wins; under 0.9 for the
    winner the advice says "too few runs" and how many more seeds would settle it. With one
    seed everywhere the noise is unknown and no tie is declared. (:func:`tied_within_noise`,
    the older two-standard-error rule, stays as a pure function.)

lr ratio
    One optimizer's best lr over another's, with the 5%..95% quantiles of the resampled ratio:
    "lion's best lr is 8x (4x-12x) below adamw's" (:mod:`~tuner.advice.ratios`).

importance
    Each hyperparameter's share of the variation of an optimizer's configuration means on a
    task, a bias-corrected one-way functional-ANOVA estimate (:mod:`~tuner.advice.importance`).

Pareto set
    The optimizers no other beats on quality, steps to target and measured memory at once
    (:mod:`~tuner.advice.pareto`); ``advise(prefer=...)`` picks within it.

memory
    A configuration's optimizer state as a multiple of its parameters' bytes, as measured by
    its runs (``optimizer_state_bytes / param_bytes``): a tuned RMSprop with momentum and
    centering is 3n whatever the plugin declares at its defaults.

default
    An optimizer's recommended configuration, the first trial of every study (its trial's
    ``origin`` is ``recommended`` in the store).

The figures come from ``tuner_config_stats`` (one row per configuration, kept exact by triggers
on the runs) through a few index probes per optimizer, so ``tuner best`` stays fast over a
million runs. The modules: :mod:`~tuner.advice.stats` (the rules, pure functions),
:mod:`~tuner.advice.ranking` (``tuner best``), :mod:`~tuner.advice.recommend` (``tuner advise``),
:mod:`~tuner.advice.comparison` (``tuner compare``), :mod:`~tuner.advice.warm_starts`,
:mod:`~tuner.advice.bootstrap` (P(best), ratio intervals), :mod:`~tuner.advice.ratios`,
:mod:`~tuner.advice.importance`, :mod:`~tuner.advice.pareto`, :mod:`~tuner.advice.defaults`
(defaults against tuning), :mod:`~tuner.advice.widths` (the best lr across model widths).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below load on first use (see __getattr__)
    from tuner.advice.bootstrap import seeds_to_settle
    from tuner.advice.budgets import BudgetCurve, budget_curves, expected_best_of
    from tuner.advice.comparison import Comparison, compare, profile_costs, stored_tasks
    from tuner.advice.formatting import format_lr, format_metric, format_spread
    from tuner.advice.importance import Importance, importance
    from tuner.advice.pareto import pareto_set
    from tuner.advice.ranking import Certainty, OptimizerStanding, TaskRanking, best, rank_task
    from tuner.advice.ratios import LrRatio
    from tuner.advice.recommend import Advice, advise
    from tuner.advice.source import NoRunsError, NoTaskRecordError, open_for_reading
    from tuner.advice.stats import (
        DEFAULT_BPC_TOLERANCE,
        DEFAULT_RELATIVE_TOLERANCE,
        MEMORY_BUDGETS,
        TIE_STANDARD_ERRORS,
        WARM_START_MARGIN,
        AdviceError,
        AggregateRank,
        Tolerance,
        aggregate_ranks,
        default_tolerance,
        good_lr_interval,
        is_better,
        narrow_log_range,
        parse_memory_budget,
        performance_profile,
        rank_values,
        sample_std,
        standard_error,
        tied_within_noise,
    )
    from tuner.advice.warm_starts import WarmStart, warm_start, warm_start_spec
    from tuner.advice.widths import WidthAdvice, lr_across_widths

_HOMES = {
    "bootstrap": ("seeds_to_settle",),
    "budgets": ("BudgetCurve", "budget_curves", "expected_best_of"),
    "importance": ("Importance", "importance"),
    "pareto": ("pareto_set",),
    "ratios": ("LrRatio",),
    "comparison": ("Comparison", "compare", "profile_costs", "stored_tasks"),
    "formatting": ("format_lr", "format_metric", "format_spread"),
    "ranking": ("Certainty", "OptimizerStanding", "TaskRanking", "best", "rank_task"),
    "recommend": ("Advice", "advise"),
    "source": ("NoRunsError", "NoTaskRecordError", "open_for_reading"),
    "stats": (
        "DEFAULT_BPC_TOLERANCE", "DEFAULT_RELATIVE_TOLERANCE", "MEMORY_BUDGETS",
        "TIE_STANDARD_ERRORS", "WARM_START_MARGIN", "AdviceError", "AggregateRank", "Tolerance",
        "aggregate_ranks", "default_tolerance", "good_lr_interval", "is_better",
        "narrow_log_range", "parse_memory_budget", "performance_profile", "rank_values",
        "sample_std", "standard_error", "tied_within_noise",
    ),
    "warm_starts": ("WarmStart", "warm_start", "warm_start_spec"),
    "widths": ("WidthAdvice", "lr_across_widths"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """The public names, each loaded from its module on first use: ``tuner best`` loads the
    ranking, not the comparison or the warm starts."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'tuner.advice' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tuner.advice.{module}"), name)
    globals()[name] = value
    return value


__all__ = [  # noqa: F822 - every name is served by __getattr__
    "DEFAULT_BPC_TOLERANCE",
    "DEFAULT_RELATIVE_TOLERANCE",
    "MEMORY_BUDGETS",
    "TIE_STANDARD_ERRORS",
    "WARM_START_MARGIN",
    "Advice",
    "BudgetCurve",
    "AdviceError",
    "AggregateRank",
    "Certainty",
    "Comparison",
    "Importance",
    "LrRatio",
    "NoRunsError",
    "NoTaskRecordError",
    "OptimizerStanding",
    "TaskRanking",
    "Tolerance",
    "WarmStart",
    "WidthAdvice",
    "advise",
    "aggregate_ranks",
    "best",
    "budget_curves",
    "compare",
    "default_tolerance",
    "expected_best_of",
    "format_lr",
    "format_metric",
    "format_spread",
    "good_lr_interval",
    "importance",
    "is_better",
    "lr_across_widths",
    "narrow_log_range",
    "open_for_reading",
    "pareto_set",
    "parse_memory_budget",
    "performance_profile",
    "profile_costs",
    "rank_task",
    "rank_values",
    "sample_std",
    "seeds_to_settle",
    "standard_error",
    "stored_tasks",
    "tied_within_noise",
    "warm_start",
    "warm_start_spec",
]
