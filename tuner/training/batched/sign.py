"""Batched sign descent: Lion, Tiger, signSGD and Signum for K configurations.

The same step as ``tuner_plugins.optimizers._sign_descent.sign_descent_step``, op for op, with
each configuration's numbers along the leading dimension::

    p <- p * (1 - lr * weight_decay) - lr * sign(u)

where ``u`` is the gradient (signSGD), the freshly updated momentum (Signum, Tiger) or the blend
``beta1 * m + (1 - beta1) * g`` taken before the momentum moves (Lion). A sign amplifies any
difference in ``u`` near zero into a full step of ``lr``, so these steps repeat the unbatched
arithmetic exactly (a lerp with the same weight, rounded as torch rounds the Python float) rather
than an equivalent formula.

Tiger's non-finite-gradient guard works per configuration: a configuration whose gradients are
not all finite skips its step and is pulled towards its centres, the others step as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tuner.training.batched.optimizers import BatchedOptimizer, Factors


class BatchedSignDescent(BatchedOptimizer):
    """Sign descent for K configurations.

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``weight_decay`` and the betas of the variant (below).
        variant: ``lion`` (``beta1``, ``beta2``), ``tiger`` (``beta``, ``nan_guard``),
            ``signsgd`` (no beta) or ``signum`` (``momentum``).
        shrink: Tiger's guard: how far a skipped configuration is pulled to its centres.
    """

    VARIANTS = ("lion", "tiger", "signsgd", "signum")

    def __init__(
        self,
        groups: list[dict],
        hp: Mapping[str, Any],
        *,
        variant: str,
        shrink: float = 0.99,
    ) -> None:
        if variant not in self.VARIANTS:
            raise ValueError(f"unknown sign-descent variant {variant!r}")
        super().__init__(groups, hp)
        self.variant = variant
        self.has_momentum = variant != "signsgd"
        self.momentum_first = variant != "lion"
        self.nan_guard = bool(hp.get("nan_guard", False))
        self.shrink = float(shrink)
        self.has_decay = "weight_decay" in self.hp and bool(
            (self.float_hp("weight_decay") != 0).any()
        )
        self._skip: torch.Tensor | None = None

    def betas(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(update_beta, momentum_beta)`` per configuration, float64 ``(K,)``."""
        if self.variant == "lion":
            return self.float_hp("beta1"), self.float_hp("beta2")
        if self.variant == "tiger":
            return self.float_hp("beta"), self.float_hp("beta")
        if self.variant == "signum":
            return self.float_hp("momentum"), self.float_hp("momentum")
        zero = self.float_hp("lr") * 0.0
        return zero, zero

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        if self.has_momentum:
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if self.nan_guard:
            state["centre"] = param.detach().flatten(1).mean(dim=1)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        update_beta, momentum_beta = self.betas()
        values = {
            "neg_lr": -lr,
            "update_weight": 1.0 - update_beta,
            "momentum_weight": 1.0 - momentum_beta,
        }
        if self.has_decay:
            values["shrink"] = 1.0 - lr * self.float_hp("weight_decay")
        return values

    def before_step(self) -> None:
        """Tiger's guard: the configurations whose gradients are not all finite."""
        self._skip = None
        if not self.nan_guard:
            return
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads:
            return
        finite = torch.stack([g.flatten(1).isfinite().all(dim=1) for g in grads]).all(dim=0)
        if not bool(finite.all()):
            self._skip = ~finite

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        momentum = state.get("exp_avg")
        skip = None if self._skip is None else self.rows_of(self._skip)
        if skip is not None:
            before = param.detach().clone()
            momentum_before = momentum.clone() if momentum is not None else None
        if momentum is None:
            signs = torch.sign(grad)
        elif self.momentum_first:
            momentum.lerp_(grad, factors.at("momentum_weight", momentum).to(momentum.dtype))
            signs = torch.sign(momentum)
        else:
            signs = torch.lerp(
                momentum, grad, factors.at("update_weight", momentum).to(momentum.dtype)
            ).sign_()
        if decay and self.has_decay:
            param.mul_(factors.at("shrink", param))
        param.addcmul_(signs, factors.at("neg_lr", param))
        if momentum is not None and not self.momentum_first:
            momentum.lerp_(grad, factors.at("momentum_weight", momentum).to(momentum.dtype))
        if skip is not None:
            shape = (-1,) + (1,) * (param.dim() - 1)
            mask = skip.view(shape)
            centre = state["centre"].view(shape)
            pulled = before.sub_(centre).mul_(self.shrink).add_(centre)
            param.copy_(torch.where(mask, pulled, param))
            if momentum is not None:
                momentum.copy_(torch.where(mask, momentum_before, momentum))


def build_lion(groups: list[dict], hp: Mapping[str, Any]) -> BatchedSignDescent:
    """Lion's batched step (``build_batched`` of the ``lion`` plugin)."""
    return BatchedSignDescent(groups, hp, variant="lion")


def build_tiger(
    groups: list[dict], hp: Mapping[str, Any], shrink: float = 0.99
) -> BatchedSignDescent:
    """Tiger's batched step (``build_batched`` of the ``tiger`` plugin)."""
    return BatchedSignDescent(groups, hp, variant="tiger", shrink=shrink)


def build_signsgd(groups: list[dict], hp: Mapping[str, Any]) -> BatchedSignDescent:
    """signSGD's batched step (``build_batched`` of the ``signsgd`` plugin)."""
    return BatchedSignDescent(groups, hp, variant="signsgd")


def build_signum(groups: list[dict], hp: Mapping[str, Any]) -> BatchedSignDescent:
    """Signum's batched step (``build_batched`` of the ``signum`` plugin)."""
    return BatchedSignDescent(groups, hp, variant="signum")
