"""``quadratic``: the ill-conditioned bowl x1^2 + 10 x2^2, the textbook picture of an optimizer."""

from __future__ import annotations

import torch

from tuner_plugins.tasks._common import PlaneTask


class Quadratic(PlaneTask):
    """f(x1, x2) = x1^2 + 10 x2^2 from (4, 3); condition number 10; the path is recorded."""

    name = "quadratic"
    summary = "x1^2 + 10*x2^2 from (4, 3), 100 full-batch steps; records the 2-D path"
    target = 1e-2
    budget = 100
    eval_every = 5
    minimum = (0.0, 0.0)
    start = (4.0, 3.0)
    reference = {"optimizer": "adam", "params": {"lr": 0.1}}

    @staticmethod
    def function(xy: torch.Tensor) -> torch.Tensor:
        """The function itself, on a point or on a batch of points (last dimension 2)."""
        return xy[..., 0] ** 2 + 10.0 * xy[..., 1] ** 2
