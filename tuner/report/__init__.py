"""The report layer: figures of a task's results and the HTML report that gathers them.

- :mod:`~tuner.report.write`: :func:`write_report`, the report's figures and its HTML.
- :mod:`~tuner.report.plots`: trajectories and learning curves of fresh runs (``tuner plot``).

The names below are handed out on first use (importing this package imports no matplotlib).
"""

from tuner._faces import lazy_face

__all__ = [
    "Report", "ReportError", "best_config_curves", "lr_points", "plot_budget_curves",
    "plot_learning_curves", "plot_lr_find", "plot_lr_sensitivity", "plot_performance_profile",
    "plot_trajectories", "stored_trajectories", "write_report",
]

__getattr__ = lazy_face(__name__, dict.fromkeys(__all__, "write"))
