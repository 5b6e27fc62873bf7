"""Fixed settings without a study: train each ``OPTIMIZER:k=v,k=v`` setting once, draw them
side by side (``tuner plot``).

The textbook figure of optimizers on f = x1^2 + 10 x2^2 from (4, 3) is one panel per fixed
setting (GD at lr 0.1 and 0.01, momentum, Nesterov, Adagrad, RMSProp, Adam)::

    from tuner.report.plots import plot_setting_trajectories
    figure = plot_setting_trajectories("quadratic", ["sgd:lr=0.1", "sgd:lr=0.01",
                                                     "momentum:lr=0.01", "adam:lr=0.1"],
                                       "paths.png")
    [panel.final_metric for panel in figure.panels]

Each setting is one :func:`tuner.training.train` run (the run ``tuner train`` makes for the same
optimizer, values, task, seed and options), so a panel's final loss is that run's. A panel's
title names the setting and its final metric. The paths are drawn by the report's own
:func:`~tuner.report.trajectories.plot_trajectories`; :func:`plot_setting_curves` draws the
learning curves of the same settings, one panel each. torch and matplotlib are imported only
when a figure is made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.report.drawing import panel_grid, save
from tuner.report.trajectories import (
    Trajectory,
    TrajectoryPanel,
    plane_function,
    plot_trajectories,
)

if TYPE_CHECKING:
    from tuner.task.contract import Task
    from tuner.training.result import RunResult

__all__ = [
    "Figure", "Panel", "PlotError", "Setting", "parse_setting", "plot_setting_curves",
    "plot_setting_trajectories", "run_settings",
]

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

    def trajectory_panel(self, seed: int) -> TrajectoryPanel:
        """This run's path, as :func:`~tuner.report.trajectories.plot_trajectories` draws it."""
        points = [(float(x), float(y)) for x, y in self.result.trajectory or []]
        return TrajectoryPanel(self.title, {self.setting.label: [Trajectory(points, seed)]})

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


def plot_setting_trajectories(
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
    drawn = plot_trajectories(
        [panel.trajectory_panel(seed) for panel in panels], path,
        function=plane_function(task), start=tuple(task.start),
        minimum=tuple(task.minimum) if getattr(task, "minimum", None) is not None else None,
        title=f"{task.name}: one panel per setting, {_steps(panels)}",
        # one colour: each panel holds one setting, named in its title
        palette=dict.fromkeys((panel.setting.label for panel in panels), "C0"),
    )
    return Figure(drawn, task.name, panels)


def plot_setting_curves(
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


def _draw_curves(task: Task, panels: Sequence[Panel], path: Path) -> Path:
    figure, axes = panel_grid(len(panels), COLUMNS, (4.0, 3.6))
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
    figure.tight_layout()
    return save(figure, path)


def _steps(panels: Sequence[Panel]) -> str:
    steps = sorted({panel.result.options.get("budget") for panel in panels} - {None})
    return f"{steps[0]} steps each" if len(steps) == 1 else "steps as set"
