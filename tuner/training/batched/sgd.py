"""Batched SGD: plain, heavy-ball and Nesterov momentum, as ``torch.optim.SGD`` computes them.

Per configuration ``k`` (``maximize=False``)::

    g <- g + weight_decay * p                        (coupled: an L2 term in the gradient)
    b <- g on the first step, else momentum * b + (1 - dampening) * g
    g <- g + momentum * b  (nesterov)  or  b  (heavy ball)
    p <- p - lr * g

A configuration whose momentum is 0 takes no buffer in torch; here it shares the buffer with the
others, with its dampening taken as 0, so that ``b = g`` and the step is plain SGD's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tuner.training.batched.optimizers import BatchedOptimizer, Factors


class BatchedSGD(BatchedOptimizer):
    """``torch.optim.SGD`` for K configurations.

    Args:
        groups: stacked parameter groups (see :class:`BatchedOptimizer`).
        hp: ``lr``, optional ``weight_decay``, ``momentum`` and ``dampening`` (``(K,)``).
        nesterov: Nesterov momentum (needs ``momentum`` in ``hp``).
    """

    def __init__(
        self, groups: list[dict], hp: Mapping[str, Any], *, nesterov: bool = False
    ) -> None:
        super().__init__(groups, hp)
        self.nesterov = bool(nesterov)
        self.has_momentum = "momentum" in self.hp
        self.has_decay = "weight_decay" in self.hp and bool(
            (self.float_hp("weight_decay") != 0).any()
        )

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        if self.has_momentum:
            state["momentum_buffer"] = torch.empty_like(param)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        values = {"neg_lr": -lr}
        if self.has_decay:
            values["weight_decay"] = self.float_hp("weight_decay")
        if self.has_momentum:
            momentum = self.float_hp("momentum")
            dampening = torch.where(momentum == 0, 0.0, self.float_hp("dampening", 0.0))
            values["momentum"] = momentum
            values["keep"] = 1.0 - dampening
        return values

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        if decay and self.has_decay:
            grad = grad.addcmul(param, factors.at("weight_decay", param))
        if self.has_momentum:
            buffer = state["momentum_buffer"]
            if state["step"] == 1:
                buffer.copy_(grad)
            else:
                momentum = factors.at("momentum", param)
                buffer.mul_(momentum).addcmul_(grad, factors.at("keep", param))
            if self.nesterov:
                grad = grad.addcmul(buffer, factors.at("momentum", param))
            else:
                grad = buffer
        param.addcmul_(grad, factors.at("neg_lr", param))
