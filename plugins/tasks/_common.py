"""Pieces shared by the reference tasks: shipped data files and a 2-D point model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch


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
