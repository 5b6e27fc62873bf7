"""Your own model as a tuner task: a small MLP on two interleaved spirals, generated here.

Use it by reference (this file, and the name of the task in it)::

    tuner train --task examples/own-model/model.py:task --optimizer adamw --param lr=3e-3
    tuner study create spirals --task examples/own-model/model.py:task \\
        --optimizers adamw,sgd,lion --trials 10 --seeds 2
    tuner study run spirals --workers 2
    tuner advise --task spirals-mlp

Only this file is hashed: a worker refuses to run when it changed since the study was created
(``--allow-changed`` runs anyway); helpers it imports are not covered.
"""

import math

import torch
from torch import nn

from tuner.task.builders import from_function


def spirals(examples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two spirals in the plane, one per class, with a little noise; the same for every seed
    argument given."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(examples) % 2
    radius = torch.rand(examples, generator=generator) * 3 * math.pi
    angle = radius + math.pi * labels
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1) / 10
    return points + 0.03 * torch.randn(examples, 2, generator=generator), labels


def build(seed: int) -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The model (torch's generator is already seeded with ``seed``) and the data: the data
    is the same for every seed; the seed varies the weights and the batch order."""
    inputs, labels = spirals(1200)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 2))
    return model, (inputs[:1000], labels[:1000]), (inputs[1000:], labels[1000:])


# No ``kind``: two spirals in the plane are none of tuner's kinds (analytic, convex, vision,
# sequence, sparse), so the optimizers' recommended trials use no kind's preset. A CNN on images
# would say ``kind="vision"``, a character model ``kind="sequence"``.
task = from_function(
    name="spirals-mlp", build=build, metric="val_accuracy", direction="maximize",
    budget=300, batch_size=32, eval_every=50, target=0.9,
    summary="a 2-32-32-2 MLP on two interleaved spirals",
)
