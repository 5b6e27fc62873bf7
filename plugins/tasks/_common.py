"""Pieces shared by the reference tasks: shipped data files, and the 2-D analytic tasks."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from tuner.task.contract import Problem, Task


def data_path(name: str) -> Path:
    """The path of a data file shipped in ``tuner_plugins/tasks/data``."""
    return Path(str(resources.files("tuner_plugins.tasks") / "data" / name))


class Point(torch.nn.Module):
    """A model that is just a point in the plane, for analytic test functions."""

    def __init__(self, x: float, y: float) -> None:
        super().__init__()
        self.xy = torch.nn.Parameter(torch.tensor([x, y], dtype=torch.float32))

    def forward(self) -> torch.Tensor:
        return self.xy


class PlaneTask(Task):
    """An analytic function of a point in the plane, minimised from ``start``; the path is
    recorded. Subclasses give ``function``, ``start``, ``minimum`` and the declared attributes."""

    kind = "analytic"
    data = "generated (analytic function, no data)"
    metric = "loss"
    direction = "minimize"
    batch_size = None
    records_trajectory = True
    start: tuple[float, float]
    minimum: tuple[float, float]

    @staticmethod
    def function(xy: torch.Tensor) -> torch.Tensor:
        """The function itself, on a point or on a batch of points (last dimension 2)."""
        raise NotImplementedError

    def build(self, seed: int, device: torch.device) -> Problem:
        return Problem(model=Point(*self.start).to(device))

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.function(model())

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        return float(self.function(model()))

    def position(self, model: torch.nn.Module) -> torch.Tensor:
        return model.xy
