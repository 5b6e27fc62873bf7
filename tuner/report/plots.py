"""Fixed settings without a study: train each ``OPTIMIZER:k=v,k=v`` setting once, draw them
side by side.

The textbook figure of optimizers on f = x1^2 + 10 x2^2 from (4, 3) is one panel per fixed
setting (GD at lr 0.1 and 0.01, momentum, Nesterov, Adagrad, RMSProp, Adam)::

    from tuner.report.plots import plot_trajectories
    figure = plot_trajectories("quadratic", ["sgd:lr=0.1", "sgd:lr=0.01",
                                             "momentum:lr=0.01", "adam:lr=0.1"], "paths.png")
    [panel.final_metric for panel in figure.panels]

Each setting is one :func:`tuner.training.train` run (the run ``tuner train`` makes for the same
optimizer, values, task, seed and options), so a panel's final loss is that run's. A panel's
title names the setting and its final metric. :func:`plot_curves` draws the learning curves of
the same settings, one panel each. torch and matplotlib are imported only when a figure is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError

if TYPE_CHECKING:
    from tuner.task.contract import Task
    from tuner.training.loop import RunResult

__all__ = [
    "Figure", "Panel", "PlotError", "Setting", "parse_setting", "plot_curves",
    "plot_trajectories", "run_settings",
]

DPI = 110
COLUMNS = 4
"""Panels per row of a figure."""


class PlotError(TunerError, ValueError):
    """A setting that cannot be read, or a figure the task cannot have."""


@dataclass(frozen=True)
class Setting:
    """One optimizer at fixed hyperparameter values (the rest at its defaults)."""

    optimizer: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``sgd lr=0.1``: the optimizer and the values given."""
        values = " ".join(f"{name}={_number(value)}" for name, value in self.params.items())
        return f"{self.optimizer} {values}".strip()


def parse_setting(text: str) -> Setting:
    """``OPTIMIZER:k=v,k=v`` (or ``OPTIMIZER`` alone) -> a checked :class:`Setting`.

    The optimizer must be registered and every value must fit its space; otherwise
    :class:`PlotError` (or the registry's own error) with one line.
    """
    from tuner.plugin.registry import get_registry

    name, _, values = text.strip().partition(":")
    if not name:
        raise PlotError(f"--run {text!r}: expected OPTIMIZER or OPTIMIZER:NAME=VALUE,...")
    plugin = get_registry().optimizer(name.strip())
    assignments = [part for part in values.split(",") if part.strip()]
    params = plugin.space.parse(assignments, owner=f"--run {text!r}: {plugin.name}")
    plugin.space.complete(params, owner=f"--run {text!r}: {plugin.name}")
    return Setting(plugin.name, params)


@dataclass
class Panel:
    """One setting's run, as a figure shows it."""

    setting: Setting
    result: RunResult
    metric: str

    @property
    def final_metric(self) -> float | None:
        return self.result.final_metric

    @property
    def title(self) -> str:
        """The setting, then its final metric (or how the run ended)."""
        if self.result.status == "complete":
            ending = f"final {self.metric} {_number(self.final_metric)}"
        else:
            ending = f"{self.result.status} at step {self.result.steps}"
        return f"{self.setting.label}\n{ending}"

    def to_dict(self) -> dict[str, Any]:
        result = self.result
        return {
            "optimizer": self.setting.optimizer, "params": dict(self.setting.params),
            "label": self.setting.label, "title": self.title, "status": result.status,
            "final_metric": result.final_metric, "steps": result.steps,
            "function_evals": result.function_evals, "gradient_evals": result.gradient_evals,
            "hessian_evals": result.hessian_evals,
        }


@dataclass
class Figure:
    """A figure written to ``path``: its panels in order."""

    path: Path
    task: str
    panels: list[Panel]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "task": self.task,
                "panels": [panel.to_dict() for panel in self.panels]}


def run_settings(
    task: str | Task, settings: Sequence[str | Setting], seed: int = 0, **options: Any
) -> list[Panel]:
    """Train ``task`` once per setting (``options`` as :func:`tuner.training.train` takes
    them); every setting is checked before the first run."""
    from tuner.plugin.registry import get_registry
    from tuner.training.loop import train
    from tuner.training.options import make_options

    task = get_registry().task(task) if isinstance(task, str) else task
    parsed = [s if isinstance(s, Setting) else parse_setting(s) for s in settings]
    if not parsed:
        raise PlotError("give at least one setting (--run OPTIMIZER:NAME=VALUE,...)")
    checked = make_options(**options)
    return [
        Panel(setting, train(task, setting.optimizer, dict(setting.params), seed,
                             options=checked), task.metric)
        for setting in parsed
    ]


def plot_trajectories(
    task: str | Task, settings: Sequence[str | Setting], path: str | Path, seed: int = 0,
    **options: Any,
) -> Figure:
    """One panel per setting: its path over the contours of a 2-D task's function.

    Raises :class:`PlotError` for a task without a 2-D path (``records_trajectory``), before
    anything is trained.
    """
    from tuner.plugin.registry import get_registry

    task = get_registry().task(task) if isinstance(task, str) else task
    if not task.records_trajectory or getattr(task, "function", None) is None:
        raise PlotError(
            f"task {task.name!r} has no 2-D path to draw; `tuner plot curves` draws its "
            "learning curves"
        )
    panels = run_settings(task, settings, seed, **options)
    return Figure(_draw_trajectories(task, panels, Path(path)), task.name, panels)


def plot_curves(
    task: str | Task, settings: Sequence[str | Setting], path: str | Path, seed: int = 0,
    **options: Any,
) -> Figure:
    """One panel per setting: its metric and training loss against the step."""
    from tuner.plugin.registry import get_registry

    task = get_registry().task(task) if isinstance(task, str) else task
    panels = run_settings(task, settings, seed, **options)
    return Figure(_draw_curves(task, panels, Path(path)), task.name, panels)


# -- drawing ------------------------------------------------------------------------------------


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _grid(count: int) -> tuple[Any, Any, list[Any]]:
    """A figure with ``count`` panels, at most :data:`COLUMNS` a row; unused axes hidden."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(COLUMNS, count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.0 * columns, 3.6 * rows),
                                squeeze=False)
    flat = [axis for row in axes for axis in row]
    for axis in flat[count:]:
        axis.set_visible(False)
    return plt, figure, flat[:count]


def _save(plt: Any, figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def _frame(task: Task, panels: Sequence[Panel]) -> tuple[float, float, float, float]:
    """One frame for every panel: the start, the minimum and the paths, padded; points far
    beyond the start (a run that blew up) are left out of the framing."""
    start, minimum = tuple(task.start), tuple(getattr(task, "minimum", task.start))
    reach = 5.0 * max(math.dist(start, minimum), 1.0)
    points = [start, minimum] + [
        p for panel in panels for p in (panel.result.trajectory or [])
        if all(math.isfinite(c) for c in p) and math.dist(p, minimum) <= reach
    ]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    pad_x = 0.12 * max(max(xs) - min(xs), 1e-3)
    pad_y = 0.12 * max(max(ys) - min(ys), 1e-3)
    return min(xs) - pad_x, max(xs) + pad_x, min(ys) - pad_y, max(ys) + pad_y


def _contours(task: Task, frame: tuple[float, float, float, float]) -> tuple[Any, Any, Any]:
    """The task's function on a grid over ``frame`` (float64), shifted to be positive."""
    import numpy as np
    import torch

    x0, x1, y0, y1 = frame
    grid_x, grid_y = np.meshgrid(np.linspace(x0, x1, 160), np.linspace(y0, y1, 160))
    points = torch.as_tensor(np.stack([grid_x, grid_y], axis=-1), dtype=torch.float64)
    with torch.no_grad():
        values = task.function(points).numpy()
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return grid_x, grid_y, values - low + 1e-3 * (high - low + 1e-12)


def _draw_trajectories(task: Task, panels: Sequence[Panel], path: Path) -> Path:
    import numpy as np
    from matplotlib.colors import LogNorm

    plt, figure, axes = _grid(len(panels))
    frame = _frame(task, panels)
    grid_x, grid_y, shifted = _contours(task, frame)
    levels = np.logspace(np.log10(shifted.min()), np.log10(shifted.max()), 20)
    for axis, panel in zip(axes, panels, strict=True):
        axis.contour(grid_x, grid_y, shifted, levels=levels, norm=LogNorm(), cmap="Greys",
                     linewidths=0.6)
        points = [p for p in panel.result.trajectory or [] if all(map(math.isfinite, p))]
        if points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            axis.plot(xs, ys, "o-", color="C0", ms=2.5, lw=1.0)
            axis.plot(xs[-1:], ys[-1:], "o", color="C3", ms=5)
        axis.plot([task.start[0]], [task.start[1]], "s", color="black", ms=5)
        minimum = getattr(task, "minimum", None)
        if minimum is not None:
            axis.plot([minimum[0]], [minimum[1]], "*", color="gold", mec="black", ms=11)
        axis.set_xlim(frame[0], frame[1])
        axis.set_ylim(frame[2], frame[3])
        axis.set_title(panel.title, fontsize=9)
        axis.tick_params(labelsize=7)
    figure.suptitle(f"{task.name}: one panel per setting, {_steps(panels)}", fontsize=10)
    return _save(plt, figure, path)


def _draw_curves(task: Task, panels: Sequence[Panel], path: Path) -> Path:
    plt, figure, axes = _grid(len(panels))
    values = [p.metric for panel in panels for p in panel.result.curve]
    values += [p.train_loss for panel in panels for p in panel.result.curve]
    log_y = bool(values) and all(math.isfinite(v) and v > 0 for v in values)
    for axis, panel in zip(axes, panels, strict=True):
        curve = panel.result.curve
        steps = [p.step for p in curve]
        axis.plot(steps, [p.metric for p in curve], "-", color="C0", lw=1.4, label=task.metric)
        axis.plot(steps, [p.train_loss for p in curve], "--", color="C1", lw=1.0,
                  label="train loss")
        if log_y:
            axis.set_yscale("log")
        axis.set_xlabel("step", fontsize=8)
        axis.set_title(panel.title, fontsize=9)
        axis.tick_params(labelsize=7)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(f"{task.name}: learning curves, one panel per setting", fontsize=10)
    return _save(plt, figure, path)


def _steps(panels: Sequence[Panel]) -> str:
    steps = sorted({panel.result.options.get("budget") for panel in panels} - {None})
    return f"{steps[0]} steps each" if len(steps) == 1 else "steps as set"
