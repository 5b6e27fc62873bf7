"""``logreg``: convex logistic regression on generated data with badly scaled features."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tuner.task.contract import Problem, Task

FEATURES = 100
EXAMPLES = 3000
VALIDATION_SIZE = 1000
DATA_SEED = 20240501  # the data set is the same for every seed; the seed draws the split


@lru_cache(maxsize=1)
def _dataset() -> tuple[np.ndarray, np.ndarray]:
    """Features whose scales spread over two decades (so the Hessian is badly conditioned along
    the axes), and labels drawn from a logistic model, so the optimum is finite (no separation)."""
    rng = np.random.default_rng(DATA_SEED)
    scales = 10.0 ** rng.uniform(-1.0, 1.0, FEATURES)
    features = rng.standard_normal((EXAMPLES, FEATURES)) * scales
    weights = rng.standard_normal(FEATURES) / scales * (3.0 / np.sqrt(FEATURES))
    probabilities = 1.0 / (1.0 + np.exp(-(features @ weights)))
    labels = (rng.uniform(size=EXAMPLES) < probabilities).astype(np.float32)
    return features.astype(np.float32), labels


class LogReg(Task):
    """A linear model with the logistic loss, trained on the full batch: a convex problem whose
    difficulty is only its conditioning (feature scales from 0.1 to 10).

    The optimum's validation loss is about 0.365. The weights of the small-scale features are
    large (up to about 10), so a method whose step is about ``lr`` per weight needs many steps:
    Adam at its default lr of 1e-3 reaches the target 0.40 at step 1,600-1,700 of 2,000.
    """

    name = "logreg"
    summary = "Logistic regression, 100 features scaled 0.1..10, 2,000 examples, full batch"
    kind = "convex"
    data = "generated (fixed Gaussian features with log-uniform scales, logistic labels)"
    metric = "val_loss"
    direction = "minimize"
    target = 0.40
    budget = 2000
    eval_every = 20
    batch_size = None

    def build(self, seed: int, device: torch.device) -> Problem:
        features, labels = _dataset()
        order = np.random.default_rng(seed).permutation(EXAMPLES)
        x = torch.from_numpy(features[order]).to(device)
        y = torch.from_numpy(labels[order]).to(device)
        model = nn.Linear(FEATURES, 1)
        nn.init.zeros_(model.weight)
        nn.init.zeros_(model.bias)
        val = VALIDATION_SIZE
        return Problem(model=model.to(device), train=(x[val:], y[val:]), val=(x[:val], y[:val]))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        inputs, labels = batch
        return F.binary_cross_entropy_with_logits(model(inputs).squeeze(-1), labels)

    def evaluate(self, model: nn.Module, problem: Problem) -> float:
        return float(self.loss(model, problem.val))
