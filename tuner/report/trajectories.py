"""The trajectories figure: runs' paths in the plane over the loss contours of a 2-D task.

One drawing for every caller: the report draws each optimizer's stored path in one panel
(:func:`tuner.report.write.write_report`), ``tuner plot trajectories`` draws freshly trained
settings one per panel (:mod:`tuner.report.plots`). Both hand :func:`plot_trajectories` plain
paths; neither draws a path itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.report.drawing import colours, panel_grid, save

Point = tuple[float, float]

COLUMNS = 4
"""Panels per row of a figure with several."""
GRID = 200
"""Points per side of the grid the contours are computed on."""
LEVELS = 25
"""Contour levels, spaced evenly on a log scale."""


@dataclass
class Trajectory:
    """One run's path in the plane."""

    points: list[Point]
    seed: int = 0


@dataclass
class TrajectoryPanel:
    """One panel: its title and the paths it shows, by name (one colour per name)."""

    title: str
    paths: Mapping[str, Sequence[Trajectory]]


def plot_trajectories(
    panels: Sequence[TrajectoryPanel],
    path: str | Path,
    function: Callable[[Any], Any] | None = None,
    start: Point | None = None,
    minimum: Point | None = None,
    title: str = "",
    labels: Mapping[str, str] | None = None,
    palette: Mapping[str, Any] | None = None,
) -> Path:
    """Paths in the plane over the contours of ``function`` (a numpy ``(..., 2) -> (...)`` map,
    see :func:`plane_function`), one panel per :class:`TrajectoryPanel`, all in one frame.

    Contours are drawn on a log scale of ``f - min f + eps`` so valleys stay visible; with
    ``function`` None the paths are drawn alone. Every step is a dot, the last one a larger
    dot; ``start`` (default: the first path's first point) is a square, ``minimum`` a star.
    Points that are not finite are left out. A lone panel has a legend (``labels`` name the
    paths, default their names); several panels say in their titles what they show, and
    ``title`` heads the figure. ``palette``: each name's colour (default
    :func:`~tuner.report.drawing.colours` of the names).
    """
    names = sorted({name for panel in panels for name in panel.paths})
    palette = palette or colours(names)
    every = [_finite(run.points) for panel in panels for runs in panel.paths.values()
             for run in runs]
    if start is None:
        start = next((run[0] for run in every if run), None)
    frame = _frame([p for run in every for p in run], start, minimum)
    contours = _contours(function, frame) if function is not None else None
    lone = len(panels) == 1
    # a lone panel is the whole figure; several share a grid of smaller ones
    figure, grid = panel_grid(len(panels), COLUMNS, (7, 5.5) if lone else (4.0, 3.6))
    for panel, axes in zip(panels, grid, strict=True):
        if contours is not None:
            _draw_contours(axes, *contours)
        for name in sorted(panel.paths):
            for index, run in enumerate(panel.paths[name]):
                points = _finite(run.points)
                if not points:
                    continue
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                label = (labels or {}).get(name, name) if index == 0 else None
                axes.plot(xs, ys, "o-", color=palette[name], ms=2, lw=1.2, alpha=0.9,
                          label=label)
                axes.plot(xs[-1:], ys[-1:], "o", color=palette[name], mec="black", ms=5)
        if start is not None:
            axes.plot([start[0]], [start[1]], "s", color="black", ms=5, label="start")
        if minimum is not None:
            axes.plot([minimum[0]], [minimum[1]], "*", color="gold", mec="black", ms=12,
                      label="minimum")
        axes.set_xlim(frame[0], frame[1])
        axes.set_ylim(frame[2], frame[3])
        axes.set_title(panel.title, fontsize=10 if lone else 9)
        axes.set_xlabel("x1", fontsize=9 if lone else 8)
        axes.set_ylabel("x2", fontsize=9 if lone else 8)
        if lone:
            axes.legend(fontsize=8, loc="best")
        else:
            axes.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save(figure, path)


def plane_function(task: Any) -> Callable[[Any], Any] | None:
    """A 2-D task's ``function`` (on torch tensors) as a map of numpy points, for
    :func:`plot_trajectories`; None for a task without one. torch is imported on the first
    call."""
    function = getattr(task, "function", None)
    if function is None:
        return None

    def evaluate(points: Any) -> Any:
        import torch

        with torch.no_grad():
            return function(torch.as_tensor(points, dtype=torch.float64)).numpy()

    return evaluate


def _frame(
    points: Sequence[Point], start: Point | None, minimum: Point | None
) -> tuple[float, float, float, float]:
    """One frame (x0, x1, y0, y1) for every panel: the start, the minimum and the paths,
    padded. Where both the start and the minimum are known, points far beyond them (a run
    that blew up) are left out of the framing, so the other paths stay readable."""
    anchors = [tuple(p) for p in (start, minimum) if p is not None]
    if start is not None and minimum is not None:
        reach = 5.0 * max(math.dist(start, minimum), 1.0)
        points = [p for p in points if math.dist(p, minimum) <= reach]
    framed = [*anchors, *points] or [(-1.0, -1.0), (1.0, 1.0)]
    xs, ys = [p[0] for p in framed], [p[1] for p in framed]
    pad_x = 0.12 * max(max(xs) - min(xs), 1e-3)
    pad_y = 0.12 * max(max(ys) - min(ys), 1e-3)
    return min(xs) - pad_x, max(xs) + pad_x, min(ys) - pad_y, max(ys) + pad_y


def _finite(points: Sequence[Point]) -> list[Point]:
    return [p for p in points if all(map(math.isfinite, p))]


def _contours(
    function: Callable[[Any], Any], frame: tuple[float, float, float, float]
) -> tuple[Any, Any, Any, Any]:
    """The grid over ``frame``, ``function`` on it shifted to be positive, and the levels."""
    import numpy as np

    x0, x1, y0, y1 = frame
    grid_x, grid_y = np.meshgrid(np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID))
    values = np.asarray(function(np.stack([grid_x, grid_y], axis=-1)), dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    shifted = values - low + 1e-3 * (high - low + 1e-12)
    levels = np.logspace(np.log10(np.nanmin(shifted)), np.log10(np.nanmax(shifted)), LEVELS)
    return grid_x, grid_y, shifted, levels


def _draw_contours(axes: Any, grid_x: Any, grid_y: Any, shifted: Any, levels: Any) -> None:
    from matplotlib.colors import LogNorm

    axes.contourf(grid_x, grid_y, shifted, levels=levels, norm=LogNorm(), cmap="Greys",
                  alpha=0.55)
    axes.contour(grid_x, grid_y, shifted, levels=levels, norm=LogNorm(), colors="0.5",
                 linewidths=0.4)
