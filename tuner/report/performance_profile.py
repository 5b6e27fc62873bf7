"""The performance-profile figure (Dolan and Moré): over tasks, the share each optimizer solves
within a factor tau of the fastest (:func:`tuner.advice.performance_profile`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from tuner.report.drawing import colours, pyplot, save


def plot_performance_profile(
    costs: Mapping[str, Mapping[str, float | None]],
    path: str | Path,
    cost_name: str = "steps to target",
) -> Path:
    """Dolan-Moré performance profiles: the fraction of tasks solved within a factor tau."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    from tuner.advice import performance_profile

    ratios = []
    for per in costs.values():
        finite = [c for c in per.values() if c is not None and math.isfinite(c) and c > 0]
        if finite:
            ratios += [c / min(finite) for c in finite]
    largest = max(ratios + [2.0]) * 1.2
    taus = [math.exp(math.log(largest) * i / 399) for i in range(400)]
    profile = performance_profile(costs, taus)
    palette = colours(list(profile))
    figure, axes = pyplot().subplots(figsize=(7, 4.5))
    for name in sorted(profile):
        axes.step(taus, profile[name], where="post", color=palette[name], lw=1.8, label=name)
    axes.set_xscale("log")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlim(1, largest)
    ticks = [t for t in (1, 1.5, 2, 3, 5, 10, 20, 50, 100, 1000) if t <= largest]
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel(f"tau: within this factor of the best {cost_name}")
    axes.set_ylabel("fraction of tasks")
    axes.set_title(f"performance profile over {len(costs)} task(s) ({cost_name}, tuned)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return save(figure, path)
