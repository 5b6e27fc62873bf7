"""Float64 copies of tasks, and a small logistic regression, for the second-order method tests.

:func:`float64` wraps a registered task so that its model and data are float64 and each
evaluation records the flat parameter vector (``task.iterates``): with ``eval_every=1`` that is
every iterate of a run. :class:`SmallLogReg` is a 5-feature logistic regression whose loss and
gradient the tests also compute in NumPy (:func:`logreg_loss_and_grad`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tuner.task.contract import Problem, Task


def _double(tensors: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(t.double() if torch.is_tensor(t) and t.is_floating_point() else t
                 for t in tensors)


def float64(task: Task) -> Task:
    """A float64 copy of ``task`` (same name, data, loss and metric) that records iterates."""

    class Float64(type(task)):
        def build(self, seed: int, device: torch.device) -> Problem:
            problem = super().build(seed, device)
            problem.model.double()
            self.iterates: list[np.ndarray] = [flat(problem.model)]
            return Problem(problem.model, _double(problem.train), _double(problem.val))

        def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
            self.iterates.append(flat(model))
            return super().evaluate(model, problem)

    Float64.__name__ = f"Float64{type(task).__name__}"
    copy = Float64()
    copy.plugin, copy.version = task.plugin, task.version
    return copy


def flat(model: torch.nn.Module) -> np.ndarray:
    """The model's parameters as one float64 NumPy vector, in the optimizer's order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double().numpy()


FEATURES, EXAMPLES = 5, 200


def small_logreg_data() -> tuple[np.ndarray, np.ndarray]:
    """Fixed features and labels drawn from a logistic model (no separation)."""
    rng = np.random.default_rng(7)
    features = rng.standard_normal((EXAMPLES, FEATURES))
    weights = rng.standard_normal(FEATURES)
    labels = (rng.uniform(size=EXAMPLES) < 1.0 / (1.0 + np.exp(-features @ weights - 0.3)))
    return features, labels.astype(np.float64)


class SmallLogReg(Task):
    """Logistic regression on 5 features and 200 examples, float64, full batch, from zero."""

    name = "small-logreg"
    summary = "5-feature logistic regression, float64"
    kind = "convex"
    metric = "loss"
    direction = "minimize"
    target = 0.0
    budget = 50
    eval_every = 1
    batch_size = None

    def build(self, seed: int, device: torch.device) -> Problem:
        features, labels = small_logreg_data()
        model = torch.nn.Linear(FEATURES, 1).double()
        torch.nn.init.zeros_(model.weight)
        torch.nn.init.zeros_(model.bias)
        self.iterates = [flat(model)]
        data = (torch.from_numpy(features), torch.from_numpy(labels))
        return Problem(model=model, train=data, val=data)

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        inputs, labels = batch
        return F.binary_cross_entropy_with_logits(model(inputs).squeeze(-1), labels)

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        self.iterates.append(flat(model))
        return float(self.loss(model, problem.val))


def logreg_loss_and_grad(
    x: np.ndarray, features: np.ndarray, labels: np.ndarray
) -> tuple[float, np.ndarray]:
    """The mean logistic loss of ``x = (weights..., bias)`` and its gradient, in NumPy."""
    logits = features @ x[:-1] + x[-1]
    loss = np.mean(np.logaddexp(0.0, logits) - labels * logits)
    residual = (1.0 / (1.0 + np.exp(-logits)) - labels) / len(labels)
    return float(loss), np.append(features.T @ residual, residual.sum())


def logreg_hessian(x: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The Hessian of :func:`logreg_loss_and_grad`'s loss."""
    design = np.hstack([features, np.ones((len(features), 1))])
    p = 1.0 / (1.0 + np.exp(-(design @ x)))
    return (design * (p * (1 - p))[:, None]).T @ design / len(features)
