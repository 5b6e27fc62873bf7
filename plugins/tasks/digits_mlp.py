"""``digits-mlp``: a two-layer perceptron on the 8x8 handwritten digits."""

from __future__ import annotations

import torch
from torch import nn

from tuner.task.contract import Problem, Task
from tuner_plugins.tasks._digits import DIGITS_DATA, digits


class DigitsMLP(Task):
    """64 -> 128 -> 10 with ReLU; 20 epochs of batches of 64 (22 steps an epoch). The hidden
    width is a task parameter (``--task-param width=512``)."""

    name = "digits-mlp"
    summary = "MLP 64-128-10 on the 8x8 handwritten digits, batch 64, 20 epochs"
    kind = "vision"
    data = DIGITS_DATA
    metric = "val_accuracy"
    direction = "maximize"
    target = 0.93
    budget = 440
    eval_every = 22
    batch_size = 64
    parameters = {"width": 128}

    def build(self, seed: int, device: torch.device) -> Problem:
        train, val = digits(seed, device)
        width = self.task_params["width"]
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
        return Problem(model=model.to(device), train=train, val=val)
