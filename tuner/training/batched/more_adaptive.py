"""Batched Adan, ADOPT and AdEMAMix, as pytorch_optimizer computes them (the more-optimizers
extra, ``tuner_plugins.optimizers.more``).

Each class repeats, op for op on stacked tensors, the multi-tensor (``foreach``) path that
pytorch_optimizer takes for float32 and float64 parameters on any device, for ``maximize``
off, without gradient clipping, gradient centralisation, AdaNorm or the cautious and
StableAdamW variants (which the plugins leave off). The scalars pytorch_optimizer computes in
Python from the step count (bias corrections, Adan's step sizes, AdEMAMix's warm-up of alpha
and beta3, ADOPT's clipping bound) are computed here in Python too, per configuration, with
the same formulas, so each slice gets the very number its unbatched run gets before it is
rounded to the parameters' type. pytorch_optimizer is not imported: these run without it.

Weight decay follows the plugins: Adan's is proximal, ``p <- p / (1 + lr * wd)`` after the
step (the official code's default); AdEMAMix's decoupled, ``p <- p * (1 - lr * wd)`` first;
ADOPT's coupled, ``g <- g + wd * p``, or decoupled with ``decoupled_weight_decay``. A group
excluded from weight decay is not decayed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from tuner.training.batched.optimizers import BatchedOptimizer, Factors

__all__ = ["BatchedADOPT", "BatchedAdEMAMix", "BatchedAdan"]


def _debias(beta: float, step: int) -> float:
    """``1 - beta^step``, as pytorch_optimizer's ``BaseOptimizer.debias`` computes it."""
    return 1.0 - math.pow(beta, step)


class _PerConfiguration(BatchedOptimizer):
    """Scalars computed in Python per configuration, and the weight decay's factors."""

    def __init__(self, groups: list[dict], hp: Mapping[str, Any]) -> None:
        super().__init__(groups, hp)
        self.has_decay = "weight_decay" in self.hp and bool(
            (self.float_hp("weight_decay") != 0).any()
        )

    def per_configuration(
        self, formula: Callable[..., float], *columns: torch.Tensor
    ) -> torch.Tensor:
        """``formula`` of each configuration's values in ``columns`` (float64 ``(K,)``
        tensors), evaluated in Python: a float64 ``(K,)`` tensor."""
        values = [formula(*row) for row in zip(*(column.tolist() for column in columns),
                                                strict=True)]
        return torch.tensor(values, dtype=torch.float64, device=self.device)


class BatchedAdan(_PerConfiguration):
    """pytorch_optimizer's ``Adan`` for K configurations::

        d <- g - g_prev  (0 on the first step);   m <- lerp(m, g, 1 - beta1)
        n <- lerp(n, d, 1 - beta2);   u = g + beta2 d;   v <- beta3 v + (1 - beta3) u^2
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta3^t) + eps)
               - lr beta2 / (1 - beta2^t) * n / (same)
        p <- p / (1 + lr * weight_decay)

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, ``beta3``, optional ``weight_decay`` and ``eps``
            (default 1e-8).
    """

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        for name in ("exp_avg", "exp_avg_sq", "exp_avg_diff", "previous_grad"):
            state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        beta1, beta2, beta3 = (self.float_hp(name) for name in ("beta1", "beta2", "beta3"))
        found = {
            "blend": 1.0 - beta1,
            "diff_blend": 1.0 - beta2,
            "beta2": beta2,
            "beta3": beta3,
            "one_minus_beta3": 1.0 - beta3,
            "bias_correction3_sq": self.per_configuration(
                lambda b3: math.sqrt(_debias(b3, step)), beta3),
            "eps": self.float_hp("eps", 1e-8),
            "neg_step_size": -self.per_configuration(
                lambda rate, b1: rate / _debias(b1, step), lr, beta1),
            "neg_diff_step_size": -self.per_configuration(
                lambda rate, b2: rate * b2 / _debias(b2, step), lr, beta2),
        }
        if self.has_decay:
            found["proximal"] = 1.0 + lr * self.float_hp("weight_decay")
        return found

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg_diff, difference = state["exp_avg_diff"], state["previous_grad"]
        if state["step"] == 1:  # no previous gradient: the difference starts at 0
            difference.copy_(grad).neg_()
        difference.add_(grad)
        exp_avg.lerp_(grad, factors.at("blend", exp_avg).to(exp_avg.dtype))
        exp_avg_diff.lerp_(difference, factors.at("diff_blend", exp_avg).to(exp_avg.dtype))
        difference.mul_(factors.at("beta2", param)).add_(grad)
        exp_avg_sq.mul_(factors.at("beta3", param)).addcmul_(
            difference * factors.at("one_minus_beta3", param), difference
        )
        denominator = exp_avg_sq.sqrt().div_(factors.at("bias_correction3_sq", param))
        denominator.add_(factors.at("eps", param))
        param.addcdiv_(exp_avg * factors.at("neg_step_size", param), denominator)
        param.addcdiv_(exp_avg_diff * factors.at("neg_diff_step_size", param), denominator)
        if decay and self.has_decay:
            param.div_(factors.at("proximal", param))
        difference.copy_(grad).neg_()


class BatchedADOPT(_PerConfiguration):
    """pytorch_optimizer's ``ADOPT`` for K configurations::

        t = 1:  v <- g^2                                      (no step)
        t > 1:  m <- lerp(m, clip(g / max(sqrt(v), eps), t^(1/4)), 1 - beta1)
                p <- p - lr m;   v <- beta2 v + (1 - beta2) g^2

    with the weight decay applied to ``g`` (coupled) or ``p`` (decoupled) first, on every step.

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, ``eps``, optional ``weight_decay`` and
            ``decoupled_weight_decay``.
    """

    def __init__(self, groups: list[dict], hp: Mapping[str, Any]) -> None:
        super().__init__(groups, hp)
        self.decoupled = bool(hp.get("decoupled_weight_decay", False))

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        beta1, beta2 = self.float_hp("beta1"), self.float_hp("beta2")
        found = {
            "blend": 1.0 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1.0 - beta2,
            "eps": self.float_hp("eps", 1e-6),
            "neg_lr": -lr,
        }
        if self.has_decay:
            weight_decay = self.float_hp("weight_decay")
            found["decay"] = (self.per_configuration(lambda wd, rate: 1.0 - wd * rate,
                                                     weight_decay, lr)
                              if self.decoupled else weight_decay)
        return found

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        if decay and self.has_decay:
            if self.decoupled:
                param.mul_(factors.at("decay", param))
            else:
                grad = grad.addcmul(param, factors.at("decay", param))
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        step = state["step"]
        if step == 1:
            exp_avg_sq.addcmul_(grad, grad)
            return
        denominator = torch.maximum(exp_avg_sq.sqrt(), factors.at("eps", param))
        clip = math.pow(step, 0.25)
        normed = (grad / denominator).clamp_(-clip, clip)
        exp_avg.lerp_(normed, factors.at("blend", exp_avg).to(exp_avg.dtype))
        param.addcmul_(exp_avg, factors.at("neg_lr", param))
        exp_avg_sq.mul_(factors.at("beta2", param)).addcmul_(
            grad * factors.at("one_minus_beta2", param), grad
        )


class BatchedAdEMAMix(_PerConfiguration):
    """pytorch_optimizer's ``AdEMAMix`` for K configurations, decoupled weight decay::

        p <- p (1 - lr wd);   m1 <- lerp(m1, g, 1 - beta1);   v <- beta2 v + (1 - beta2) g^2
        m2 <- lerp(m2, g, 1 - beta3_t)
        p <- p - lr (m1 / (1 - beta1^t) + alpha_t m2) / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    with ``alpha_t`` and ``beta3_t`` warmed up over ``t_alpha_beta3`` steps (the paper's
    schedulers; ``alpha`` and ``beta3`` from then on).

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, ``beta3``, ``alpha``, ``t_alpha_beta3`` (an int,
            equal for the batch), optional ``weight_decay`` and ``eps`` (default 1e-8).
    """

    def __init__(self, groups: list[dict], hp: Mapping[str, Any]) -> None:
        super().__init__(groups, hp)
        self.warmup = hp.get("t_alpha_beta3")

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        for name in ("exp_avg", "exp_avg_sq", "exp_avg_slow"):
            state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _alpha(self, step: int, alpha: float) -> float:
        return alpha if self.warmup is None else min(step * alpha / self.warmup, alpha)

    def _beta3(self, step: int, beta1: float, beta3: float) -> float:
        if self.warmup is None:
            return beta3
        log_beta1, log_beta3 = math.log(beta1), math.log(beta3)
        done = step / self.warmup
        return min(math.exp(log_beta1 * log_beta3
                            / ((1.0 - done) * log_beta3 + done * log_beta1)), beta3)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        beta1, beta2 = self.float_hp("beta1"), self.float_hp("beta2")
        beta3_t = self.per_configuration(lambda b1, b3: self._beta3(step, b1, b3),
                                         beta1, self.float_hp("beta3"))
        found = {
            "blend": 1.0 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1.0 - beta2,
            "slow_blend": 1.0 - beta3_t,
            "bias_correction1": self.per_configuration(lambda b1: _debias(b1, step), beta1),
            "bias_correction2_sq": self.per_configuration(
                lambda b2: math.sqrt(_debias(b2, step)), beta2),
            "alpha": self.per_configuration(lambda a: self._alpha(step, a),
                                            self.float_hp("alpha")),
            "eps": self.float_hp("eps", 1e-8),
            "neg_lr": -lr,
        }
        if self.has_decay:
            found["shrink"] = self.per_configuration(lambda wd, rate: 1.0 - wd * rate,
                                                     self.float_hp("weight_decay"), lr)
        return found

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        if decay and self.has_decay:
            param.mul_(factors.at("shrink", param))
        exp_avg, exp_avg_sq, slow = state["exp_avg"], state["exp_avg_sq"], state["exp_avg_slow"]
        exp_avg.lerp_(grad, factors.at("blend", exp_avg).to(exp_avg.dtype))
        exp_avg_sq.mul_(factors.at("beta2", param)).addcmul_(
            grad * factors.at("one_minus_beta2", param), grad
        )
        slow.lerp_(grad, factors.at("slow_blend", slow).to(slow.dtype))
        denominator = exp_avg_sq.sqrt().div_(factors.at("bias_correction2_sq", param))
        denominator.add_(factors.at("eps", param))
        update = exp_avg / factors.at("bias_correction1", param)
        update.addcmul_(slow, factors.at("alpha", param))
        param.addcdiv_(update * factors.at("neg_lr", param), denominator)
