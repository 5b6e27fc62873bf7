"""The base of optimizers that wrap another one (Lookahead, SAM): one set of parameter groups.

A wrapper steps the inner optimizer its own way but must look like it to everything else: a
learning-rate schedule sets ``lr`` on the inner optimizer's groups, ``zero_grad`` clears the
inner optimizer's gradients, and ``eval()``/``train()`` reach an inner optimizer that keeps
separate evaluation weights (Schedule-Free). :class:`WrappingOptimizer` shares the inner
``param_groups`` list (each group given the wrapper's own settings) and forwards the rest;
subclasses write ``step`` and, when they keep state of their own, the state dict.
"""

from __future__ import annotations

from typing import Any

import torch

from tuner.plugin.optimizer import eval_mode, train_mode


class WrappingOptimizer(torch.optim.Optimizer):
    """An optimizer around ``inner`` that shares its parameter groups and state.

    Args:
        inner: the optimizer that takes the steps (already built on the parameters).
        own: the wrapper's settings, added to each group that does not have them.
    """

    def __init__(self, inner: torch.optim.Optimizer, own: dict[str, Any]) -> None:
        super().__init__([{"params": list(group["params"])} for group in inner.param_groups],
                         own)
        self.inner = inner
        self.param_groups = inner.param_groups  # one list: schedulers see the inner's groups
        self.defaults = {**inner.defaults, **own}
        for group in self.param_groups:
            for key, value in own.items():
                group.setdefault(key, value)
        self.state = inner.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients (through the inner optimizer)."""
        self.inner.zero_grad(set_to_none=set_to_none)

    def eval(self) -> None:
        """Switch the inner optimizer to its evaluation weights, if it has any."""
        eval_mode(self.inner)

    def train(self) -> None:
        """Switch the inner optimizer back to its training weights, if it has any."""
        train_mode(self.inner)

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
