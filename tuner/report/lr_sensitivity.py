"""The lr-sensitivity figure: each optimizer's final metric against the learning rate, one panel
per optimizer, with the seed spread, the best configuration per lr bin and the good-lr interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.advice.lr_meaning import STEP_SIZE
from tuner.report.drawing import colours, panel_grid, save

COLUMNS = 3
"""Panels per row."""


@dataclass
class LrPoint:
    """One configuration on the lr-sensitivity plot: its lr, mean and spread over seeds."""

    lr: float
    mean: float | None
    std: float | None
    seeds: int
    diverged: bool


def plot_lr_sensitivity(
    points: Mapping[str, Sequence[LrPoint]],
    metric: str,
    direction: str,
    path: str | Path,
    good_lr: Mapping[str, tuple[float, float] | None] | None = None,
    best_lr: Mapping[str, float | None] | None = None,
    title: str = "",
    palette: Mapping[str, Any] | None = None,
    lr_meanings: Mapping[str, str] | None = None,
) -> Path:
    """The final metric against lr, one panel per optimizer.

    Each configuration is a dot with its seed spread (mean ± std) as an error bar; the line and
    band follow, bin by bin (quarter decades of lr), the best configuration's mean ± std; the
    good-lr interval is shaded; configurations that diverged are crosses on the bottom edge.
    ``palette`` (default :func:`~tuner.report.drawing.colours` of these optimizers) gives each
    its colour. ``lr_meanings`` says what each optimizer's lr is: a panel whose lr is not a plain
    step size (a multiplier, Muon's convention) names it on its axis, since each panel has its own.
    """
    names = sorted(points)
    columns = min(COLUMNS, max(1, len(names)))
    figure, grid = panel_grid(len(names), columns, (4.4, 3.3), sharey=True)
    palette = palette or colours(names)
    finite = [
        p.mean for name in names for p in points[name] if p.mean is not None and not p.diverged
    ]
    low = min(finite) if finite else 0.0
    high = max(finite) if finite else 1.0
    log_y = direction == "minimize" and low > 0 and high / low > 50  # losses over decades
    if log_y:
        bottom, top = low / 3, high * 2
        cross = low / 2
    else:
        pad = (high - low) * 0.08 or abs(high) * 0.05 or 0.05
        bottom, top = low - pad, high + pad
        cross = bottom + pad * 0.3
    for index, (name, axes) in enumerate(zip(names, grid, strict=True)):
        colour = palette[name]
        measured = sorted((p for p in points[name] if p.mean is not None and not p.diverged),
                          key=lambda p: p.lr)
        diverged = [p.lr for p in points[name] if p.diverged]
        if measured:
            axes.errorbar(
                [p.lr for p in measured], [p.mean for p in measured],
                yerr=[p.std or 0.0 for p in measured], fmt="o", ms=3, color=colour, alpha=0.45,
                elinewidth=0.8, capsize=0,
            )
            line = _best_per_bin(measured, direction)
            xs = [p.lr for p in line]
            ys = [p.mean for p in line]
            spread = [p.std or 0.0 for p in line]
            axes.plot(xs, ys, color=colour, lw=1.8)
            lows = [y - s for y, s in zip(ys, spread, strict=True)]
            highs = [y + s for y, s in zip(ys, spread, strict=True)]
            axes.fill_between(xs, lows, highs, color=colour, alpha=0.2, lw=0)
        if diverged:
            axes.plot(diverged, [cross] * len(diverged), "x", color="C3", ms=6,
                      label="diverged")
            axes.legend(fontsize=7, loc="lower left")
        interval = (good_lr or {}).get(name)
        if interval:
            axes.axvspan(interval[0], interval[1], color=colour, alpha=0.1)
        chosen = (best_lr or {}).get(name)
        if chosen:
            axes.axvline(chosen, color=colour, ls="--", lw=1)
        axes.set_xscale("log")
        if log_y:
            axes.set_yscale("log")
        axes.set_ylim(bottom, top)
        axes.set_title(name, fontsize=10)
        axes.grid(True, alpha=0.3)
        meaning = (lr_meanings or {}).get(name, STEP_SIZE)
        axes.set_xlabel("learning rate" + ("" if meaning == STEP_SIZE else f" ({meaning})"))
        if index % columns == 0:
            axes.set_ylabel(metric)
    figure.suptitle(
        title or f"lr sensitivity ({metric}, {'higher' if direction == 'maximize' else 'lower'}"
        " is better; shaded: good-lr interval)",
        fontsize=11,
    )
    figure.tight_layout()
    return save(figure, path)


def _best_per_bin(points: Sequence[LrPoint], direction: str, per_decade: int = 4) -> list[LrPoint]:
    """The best configuration in each lr bin (``per_decade`` bins per decade), in lr order."""
    bins: dict[int, LrPoint] = {}
    for point in points:
        key = math.floor(math.log10(point.lr) * per_decade) if point.lr > 0 else -(10**6)
        current = bins.get(key)
        better = current is None or (
            point.mean > current.mean if direction == "maximize" else point.mean < current.mean
        )
        if better:
            bins[key] = point
    return [bins[key] for key in sorted(bins)]
