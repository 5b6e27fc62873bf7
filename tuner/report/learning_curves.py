"""The learning-curves figure: each optimizer's best configuration, its metric per step as the
mean over seeds with the seeds' range as a band."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.report.drawing import colours, pyplot, save


@dataclass
class SeedCurve:
    """One seed's learning curve: (step, metric) pairs."""

    steps: list[int]
    values: list[float | None]


def plot_learning_curves(
    curves: Mapping[str, Sequence[SeedCurve]],
    metric: str,
    path: str | Path,
    target: float | None = None,
    log_y: bool = False,
    labels: Mapping[str, str] | None = None,
    title: str = "",
    palette: Mapping[str, Any] | None = None,
) -> Path:
    """Each optimizer's best configuration: mean metric over seeds per step, min..max as a band
    (``palette``: each optimizer's colour, default
    :func:`~tuner.report.drawing.colours` of these optimizers)."""
    figure, axes = pyplot().subplots(figsize=(7.5, 4.5))
    palette = palette or colours(list(curves))
    for name in sorted(curves):
        steps, means, lows, highs = _curve_band(curves[name])
        if not steps:
            continue
        label = (labels or {}).get(name, name)
        axes.plot(steps, means, color=palette[name], lw=1.8, label=label)
        axes.fill_between(steps, lows, highs, color=palette[name], alpha=0.18, lw=0)
    if target is not None:
        axes.axhline(target, color="0.4", ls=":", lw=1, label=f"target {target:g}")
    if log_y:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    axes.set_title(title or "learning curves of each optimizer's best configuration")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return save(figure, path)


def _curve_band(
    seeds: Sequence[SeedCurve],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per step where some seed has a finite value: the step, the mean, min and max over them."""
    by_step: dict[int, list[float]] = {}
    for curve in seeds:
        for step, value in zip(curve.steps, curve.values, strict=True):
            if value is not None and math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    return steps, means, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps]
