"""``digits-cnn``: a small convolutional network on the 8x8 handwritten digits."""

from __future__ import annotations

import torch
from torch import nn

from tuner.task.contract import Problem, Task
from tuner_plugins.tasks._digits import DIGITS_DATA, digits


class DigitsCNN(Task):
    """Two 3x3 convolutions (16, 32 channels) with max-pooling, then a linear classifier."""

    name = "digits-cnn"
    summary = "Small CNN (2 conv layers, linear head) on the 8x8 digits, batch 64, 20 epochs"
    kind = "vision"
    data = DIGITS_DATA
    metric = "val_accuracy"
    direction = "maximize"
    target = 0.95
    budget = 440
    eval_every = 22
    batch_size = 64

    def build(self, seed: int, device: torch.device) -> Problem:
        train, val = digits(seed, device)
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
        )
        return Problem(model=model.to(device), train=train, val=val)
