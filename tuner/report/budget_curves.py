"""The budget-curves figure: each optimizer's expected best result after k trials of tuning
(:mod:`tuner.advice.budgets`), with its interval as a band."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.report.drawing import colours, pyplot, save

if TYPE_CHECKING:
    from tuner.advice.budgets import BudgetCurve

BUDGET_LOG_X = 20
"""Above this many trials the budget curves' x axis is logarithmic."""


def plot_budget_curves(
    curves: Mapping[str, BudgetCurve],
    metric: str,
    direction: str,
    path: str | Path,
    title: str = "",
    palette: Mapping[str, Any] | None = None,
) -> Path:
    """Each optimizer's expected best result after k trials of tuning, k = 1..its trials, with
    its 5%..95% interval as a band (:mod:`tuner.advice.budgets`); the x axis is logarithmic
    above :data:`BUDGET_LOG_X` trials, the y axis for a positive loss over decades.
    ``palette``: each optimizer's colour (default :func:`~tuner.report.drawing.colours` of
    these optimizers)."""
    figure, axes = pyplot().subplots(figsize=(7.5, 4.5))
    palette = palette or colours(list(curves))
    most = max((curve.trials for curve in curves.values()), default=1)
    for name in sorted(curves):
        curve = curves[name]
        trials = list(range(1, curve.trials + 1))
        axes.plot(trials, curve.expected, color=palette[name], lw=1.8, label=name,
                  marker="o" if most <= BUDGET_LOG_X else None, ms=3)
        axes.fill_between(trials, curve.low, curve.high, color=palette[name], alpha=0.18, lw=0)
    if most > BUDGET_LOG_X:
        axes.set_xscale("log")
    lows = [v for curve in curves.values() for v in curve.low if math.isfinite(v)]
    highs = [v for curve in curves.values() for v in curve.high if math.isfinite(v)]
    if direction == "minimize" and lows and min(lows) > 0 and max(highs) / min(lows) > 50:
        axes.set_yscale("log")  # losses over decades, as on the lr-sensitivity plot
    else:
        from matplotlib.ticker import MaxNLocator

        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(1, max(most, 2))
    better = "higher" if direction == "maximize" else "lower"
    axes.set_xlabel("trials of tuning (k)")
    axes.set_ylabel(f"expected best {metric} ({better} is better)")
    axes.set_title(title or "expected best result after k trials")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return save(figure, path)
