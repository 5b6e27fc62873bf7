"""A task on which every optimizer is exactly tied: its metric is a function of the seed alone.

:class:`SeedOnly` trains one weight on ``w^2`` (so an optimizer has something to step) but scores
a run by a number drawn from its seed, whatever the optimizer did. Every configuration of every
optimizer thus has the same result on a seed, and no number of trials or seeds can separate two
optimizers: the extend tests use it for a ranking that cannot settle. Studies name it by
reference (``tests/tied_tasks.py:SeedOnly``), so worker processes load it too.
"""

from __future__ import annotations

import random

import torch

from tuner.task.contract import Problem, Task


class SeedOnly(Task):
    """Scored by its seed alone: every optimizer is tied with every other."""

    name = "seed-only"
    summary = "one weight on w^2, scored by a number drawn from the seed alone"
    kind = "analytic"
    metric = "loss"
    direction = "minimize"
    target = 0.0
    budget = 20
    eval_every = 5

    def build(self, seed: int, device: torch.device) -> Problem:
        model = torch.nn.Linear(1, 1, bias=False).to(device)
        score = 1.0 + random.Random(seed).random()
        return Problem(model=model, val=score)

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return (model.weight ** 2).sum()

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        return float(problem.val)
