"""``rosenbrock``: the curved valley (1 - x)^2 + 100 (y - x^2)^2 with its minimum at (1, 1)."""

from __future__ import annotations

import torch

from tuner_plugins.tasks._common import PlaneTask


class Rosenbrock(PlaneTask):
    """The 2-D Rosenbrock function from (-1.5, 2): easy to enter the valley, slow to follow it."""

    name = "rosenbrock"
    summary = "Rosenbrock's valley (1-x)^2 + 100(y-x^2)^2 from (-1.5, 2), 500 steps; records path"
    target = 0.05
    budget = 500
    eval_every = 10
    minimum = (1.0, 1.0)
    start = (-1.5, 2.0)
    reference = {"optimizer": "adam", "params": {"lr": 0.1}}

    @staticmethod
    def function(xy: torch.Tensor) -> torch.Tensor:
        """The function itself, on a point or on a batch of points (last dimension 2)."""
        x, y = xy[..., 0], xy[..., 1]
        return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2
