"""The report layer: figures of a task's results and the HTML report that gathers them.

- one module per figure: :mod:`~tuner.report.lr_find`, :mod:`~tuner.report.lr_sensitivity`,
  :mod:`~tuner.report.learning_curves`, :mod:`~tuner.report.budget_curves`,
  :mod:`~tuner.report.trajectories`, :mod:`~tuner.report.performance_profile`; what they
  share (colours, panels, saving) in :mod:`~tuner.report.drawing`. Each takes plain data.
- :mod:`~tuner.report.stored`: that data, read from the store.
- :mod:`~tuner.report.write`: :func:`write_report`, the figures and the page of one task;
  :mod:`~tuner.report.page` writes the page through :mod:`~tuner.report.templating`, the
  templates, filters and stylesheet the server's pages use too.
- :mod:`~tuner.report.plots`: settings trained once and drawn side by side (``tuner plot``).

The names below are handed out on first use (importing this package imports no matplotlib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner._faces import lazy_face

if TYPE_CHECKING:  # the names below load on first use (see __getattr__)
    from tuner.report.budget_curves import plot_budget_curves
    from tuner.report.learning_curves import SeedCurve, plot_learning_curves
    from tuner.report.lr_find import plot_lr_find
    from tuner.report.lr_sensitivity import LrPoint, plot_lr_sensitivity
    from tuner.report.performance_profile import plot_performance_profile
    from tuner.report.stored import best_config_curves, lr_points, stored_trajectories
    from tuner.report.trajectories import Trajectory, TrajectoryPanel, plot_trajectories
    from tuner.report.write import Report, ReportError, write_report

_HOMES = {
    "budget_curves": ("plot_budget_curves",),
    "learning_curves": ("SeedCurve", "plot_learning_curves"),
    "lr_find": ("plot_lr_find",),
    "lr_sensitivity": ("LrPoint", "plot_lr_sensitivity"),
    "performance_profile": ("plot_performance_profile",),
    "stored": ("best_config_curves", "lr_points", "stored_trajectories"),
    "trajectories": ("Trajectory", "TrajectoryPanel", "plot_trajectories"),
    "write": ("Report", "ReportError", "write_report"),
}
"""Each public name, by the module that defines it."""

__all__ = [
    "LrPoint", "Report", "ReportError", "SeedCurve", "Trajectory", "TrajectoryPanel",
    "best_config_curves", "lr_points", "plot_budget_curves", "plot_learning_curves",
    "plot_lr_find", "plot_lr_sensitivity", "plot_performance_profile", "plot_trajectories",
    "stored_trajectories", "write_report",
]

__getattr__ = lazy_face(
    __name__, {name: module for module, names in _HOMES.items() for name in names}
)
