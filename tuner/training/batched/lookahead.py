"""Batched Lookahead: slow weights around any batched optimizer, ``alpha`` per configuration.

As ``tuner_plugins.optimizers.lookahead.Lookahead``: the inner batched optimizer moves the fast
weights (the parameters); every ``k`` steps::

    slow <- slow + alpha * (fast - slow)        (each configuration with its own alpha)
    fast <- slow

``k`` is an integer hyperparameter, so equal within a batch; the slow weights start at the
parameters' values when the wrapper is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tuner.plugin.optimizer import eval_mode, train_mode
from tuner.training.batched.optimizers import BatchedError, BatchedOptimizer

OWN_HYPERPARAMETERS = ("k", "alpha")
"""Lookahead's own hyperparameters; the rest of a configuration belongs to the inner optimizer."""


class BatchedLookahead(BatchedOptimizer):
    """Lookahead around a batched optimizer.

    Args:
        inner: the batched optimizer that moves the fast weights (already built).
        hp: ``k`` (an int) and ``alpha`` (a ``(K,)`` tensor).

    ``lr_scale``, ``zero_grad`` and ``eval``/``train`` (Schedule-Free inside) go to the inner
    optimizer; :meth:`state_bytes` counts its state plus the slow weights.
    """

    def __init__(self, inner: BatchedOptimizer, hp: Mapping[str, Any]) -> None:
        self.inner = inner
        self.param_groups = inner.param_groups
        self.size = inner.size
        self.device = inner.device
        self.k = int(hp["k"])
        if self.k < 1:
            raise BatchedError(f"lookahead k must be >= 1, got {self.k}")
        alpha = hp["alpha"]
        if isinstance(alpha, torch.Tensor) and tuple(alpha.shape) != (self.size,):
            raise BatchedError(
                f"hyperparameter 'alpha' has shape {tuple(alpha.shape)}; "
                f"a batch of {self.size} needs ({self.size},)"
            )
        self.hp = {"k": self.k, "alpha": alpha}
        self.alpha = self.float_hp("alpha").to(self.device)
        self.lookahead_steps = 0
        self.state: dict[torch.Tensor, dict[str, Any]] = {}
        with torch.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    self.state[param] = {
                        "slow": param.detach().clone(memory_format=torch.preserve_format)
                    }

    @property
    def lr_scale(self) -> torch.Tensor:  # type: ignore[override]
        """The inner optimizer's ``lr_scale``."""
        return self.inner.lr_scale

    @lr_scale.setter
    def lr_scale(self, value: torch.Tensor) -> None:
        self.inner.lr_scale = value

    def step(self) -> None:
        """One inner step; every ``k``-th step also pulls the slow weights and resets the fast."""
        self.inner.step()
        self.lookahead_steps += 1
        if self.lookahead_steps % self.k != 0:
            return
        with torch.no_grad():
            for group in self.param_groups:
                for fast in group["params"]:
                    slow = self.state[fast]["slow"]
                    shape = (-1,) + (1,) * (fast.dim() - 1)
                    slow.lerp_(fast, self.alpha.to(slow.dtype).view(shape))
                    fast.copy_(slow)

    def zero_grad(self) -> None:
        """Clear the gradients (through the inner optimizer)."""
        self.inner.zero_grad()

    def state_bytes(self) -> int:
        """The inner optimizer's state bytes plus the slow weights'."""
        slow = sum(s["slow"].numel() * s["slow"].element_size() for s in self.state.values())
        return self.inner.state_bytes() + slow

    def eval(self) -> None:
        """Switch the inner optimizer to its evaluation weights, if it has any."""
        eval_mode(self.inner)

    def train(self) -> None:
        """Switch the inner optimizer back to its training weights, if it has any."""
        train_mode(self.inner)

    def __repr__(self) -> str:
        return f"BatchedLookahead(k={self.k}, inner={self.inner!r})"


def inner_hyperparams(hp: Mapping[str, Any]) -> dict[str, Any]:
    """A Lookahead configuration without Lookahead's own ``k`` and ``alpha``."""
    return {name: value for name, value in hp.items() if name not in OWN_HYPERPARAMETERS}
