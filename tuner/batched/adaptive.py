"""Batched adaptive optimizers, as ``torch.optim`` computes them: the Adam family (Adam, AdamW,
AMSGrad, Adamax, NAdam, RAdam), Adagrad, RMSprop and Adadelta.

Each class follows its torch.optim class's update for ``maximize=False``, one configuration per
slice of the leading dimension. The scalar parts that torch computes in Python from the step count
(bias corrections, NAdam's momentum schedule, RAdam's rectification) are computed here per
configuration in float64 (:meth:`~tuner.batched.optimizers.BatchedOptimizer.factors`), so a
configuration whose ``beta2`` leaves RAdam unrectified for longer than another's is simply a
different number in its slice.

Weight decay is coupled (``g <- g + weight_decay * p``) unless the optimizer decouples it
(AdamW, or ``decoupled_weight_decay=True``), which shrinks the parameters first,
``p <- p * (1 - lr * weight_decay)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tuner.batched.optimizers import BatchedOptimizer, Factors


class _Adaptive(BatchedOptimizer):
    """The weight decay that every torch.optim adaptive optimizer shares (coupled or not)."""

    def __init__(
        self, groups: list[dict], hp: Mapping[str, Any], *, decoupled: bool = False
    ) -> None:
        super().__init__(groups, hp)
        self.decoupled = bool(decoupled or hp.get("decoupled_weight_decay", False))
        self.has_decay = "weight_decay" in self.hp and bool(
            (self.float_hp("weight_decay") != 0).any()
        )

    def decay_factors(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """``shrink = 1 - lr * weight_decay`` (decoupled) or ``weight_decay`` (coupled)."""
        if not self.has_decay:
            return {}
        weight_decay = self.float_hp("weight_decay")
        if self.decoupled:
            return {"shrink": 1.0 - lr * weight_decay}
        return {"weight_decay": weight_decay}

    def decayed_gradient(
        self, param: torch.Tensor, grad: torch.Tensor, factors: Factors, decay: bool
    ) -> torch.Tensor:
        """Apply the weight decay: shrink ``param`` in place, or return ``g + wd * p``."""
        if not (decay and self.has_decay):
            return grad
        if self.decoupled:
            param.mul_(factors.at("shrink", param))
            return grad
        return grad.addcmul(param, factors.at("weight_decay", param))


class BatchedAdam(_Adaptive):
    """``torch.optim.Adam`` / ``AdamW`` for K configurations::

        m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2;   (AMSGrad: v^ = max)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, ``eps`` (default 1e-8), optional ``weight_decay`` and
            ``decoupled_weight_decay``.
        amsgrad: keep the running maximum of ``v`` (AMSGrad).
        decoupled: AdamW's decoupled weight decay.
    """

    def __init__(
        self,
        groups: list[dict],
        hp: Mapping[str, Any],
        *,
        amsgrad: bool = False,
        decoupled: bool = False,
    ) -> None:
        super().__init__(groups, hp, decoupled=decoupled)
        self.amsgrad = bool(amsgrad or hp.get("amsgrad", False))

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if self.amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        beta1, beta2 = self.float_hp("beta1"), self.float_hp("beta2")
        return {
            **self.decay_factors(lr),
            "blend": 1.0 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1.0 - beta2,
            "neg_step_size": -(lr / (1.0 - beta1 ** step)),
            "bias_correction2_sqrt": torch.sqrt(1.0 - beta2 ** step),
            "eps": self.float_hp("eps", 1e-8),
        }

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        grad = self.decayed_gradient(param, grad, factors, decay)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, factors.at("blend", exp_avg).to(exp_avg.dtype))
        exp_avg_sq.mul_(factors.at("beta2", param)).addcmul_(
            grad * factors.at("one_minus_beta2", param), grad
        )
        second = exp_avg_sq
        if self.amsgrad:
            second = torch.maximum(state["max_exp_avg_sq"], exp_avg_sq,
                                   out=state["max_exp_avg_sq"])
        denominator = (second.sqrt() / factors.at("bias_correction2_sqrt", param)).add_(
            factors.at("eps", param)
        )
        param.addcdiv_(exp_avg * factors.at("neg_step_size", param), denominator)
