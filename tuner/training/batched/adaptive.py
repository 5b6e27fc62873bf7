"""Batched adaptive optimizers, as ``torch.optim`` computes them: the Adam family (Adam, AdamW,
AMSGrad, Adamax, NAdam, RAdam), Adagrad, RMSprop and Adadelta.

Each class follows its torch.optim class's update for ``maximize=False``, one configuration per
slice of the leading dimension. The scalar parts that torch computes in Python from the step count
(bias corrections, NAdam's momentum schedule, RAdam's rectification) are computed here per
configuration in float64 (:meth:`~tuner.training.batched.optimizers.BatchedOptimizer.factors`), so
a configuration whose ``beta2`` leaves RAdam unrectified for longer than another's is simply a
different number in its slice.

Weight decay is coupled (``g <- g + weight_decay * p``) unless the optimizer decouples it
(AdamW, or ``decoupled_weight_decay=True``), which shrinks the parameters first,
``p <- p * (1 - lr * weight_decay)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tuner.training.batched.optimizers import BatchedOptimizer, Factors


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


class BatchedAdamax(_Adaptive):
    """``torch.optim.Adamax`` for K configurations::

        m <- beta1 m + (1 - beta1) g;   u <- max(beta2 u, |g| + eps)
        p <- p - lr / (1 - beta1^t) * m / u

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, optional ``eps`` (default 1e-8) and ``weight_decay``
            (coupled).
    """

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_inf"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        beta1 = self.float_hp("beta1")
        return {
            **self.decay_factors(lr),
            "blend": 1.0 - beta1,
            "beta2": self.float_hp("beta2"),
            "eps": self.float_hp("eps", 1e-8),
            "neg_step_size": -(lr / (1.0 - beta1 ** step)),
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
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.lerp_(grad, factors.at("blend", exp_avg).to(exp_avg.dtype))
        torch.maximum(
            exp_inf.mul_(factors.at("beta2", param)),
            grad.abs().add_(factors.at("eps", param)),
            out=exp_inf,
        )
        param.addcdiv_(exp_avg * factors.at("neg_step_size", param), exp_inf)


class BatchedNAdam(_Adaptive):
    """``torch.optim.NAdam`` for K configurations: Adam with Dozat's momentum schedule
    ``mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay))``::

        p <- p - lr (1 - mu_t) / (1 - prod_{i<=t} mu_i) * g / d
               - lr mu_{t+1} / (1 - prod_{i<=t+1} mu_i) * m / d
        d  = sqrt(v / (1 - beta2^t)) + eps

    The running product of ``mu`` is kept per configuration in float32, as torch keeps it.

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, ``momentum_decay``, optional ``eps`` (default 1e-8),
            ``weight_decay`` and ``decoupled_weight_decay``.
    """

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        # torch's mu_product: a float32 scalar per parameter (the default scalar dtype)
        state["mu_product"] = torch.ones(self.size, dtype=torch.float32, device=self.device)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        beta1, beta2 = self.float_hp("beta1"), self.float_hp("beta2")
        momentum_decay = self.float_hp("momentum_decay", 4e-3)
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        return {
            **self.decay_factors(lr),
            "lr": lr,
            "mu": mu,
            "mu_next": mu_next,
            "blend": 1.0 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1.0 - beta2,
            "bias_correction2": 1.0 - beta2 ** step,
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
        mu_product = state["mu_product"]
        mu_product.mul_(factors.values["mu"].to(mu_product.dtype))
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, factors.at("blend", exp_avg).to(exp_avg.dtype))
        exp_avg_sq.mul_(factors.at("beta2", param)).addcmul_(
            grad * factors.at("one_minus_beta2", param), grad
        )
        denominator = (exp_avg_sq / factors.at("bias_correction2", param)).sqrt()
        denominator.add_(factors.at("eps", param))
        product = mu_product.to(torch.float64)
        lr, mu, mu_next = factors.values["lr"], factors.values["mu"], factors.values["mu_next"]
        grad_scale = -lr * (1.0 - mu) / (1.0 - product)
        avg_scale = (-lr * mu_next) / (1.0 - product * mu_next)
        shape = (-1,) + (1,) * (param.dim() - 1)
        compute = factors.at("lr", param).dtype
        param.addcdiv_(grad * grad_scale.to(compute).view(shape), denominator)
        param.addcdiv_(exp_avg * avg_scale.to(compute).view(shape), denominator)


class BatchedRAdam(_Adaptive):
    """``torch.optim.RAdam`` for K configurations (its multi-tensor form, which the plugin
    and Ranger build)::

        rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t),   rho_inf = 2 / (1 - beta2) - 1
        rho_t > 5:  p <- p - lr r_t / (1 - beta1^t) * m * sqrt(1 - beta2^t) / (sqrt(v) + eps)
        else:       p <- p - lr / (1 - beta1^t) * m

    with ``r_t`` the rectification. Whether a configuration is rectified yet depends on its own
    ``beta2``: each slice takes its own branch.

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, optional ``eps`` (default 1e-8), ``weight_decay`` and
            ``decoupled_weight_decay``.
        decoupled: decoupled weight decay whatever ``hp`` says (Ranger).
    """

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        beta1, beta2 = self.float_hp("beta1"), self.float_hp("beta2")
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        beta2_power = beta2 ** step
        rho_t = rho_inf - 2.0 * step * beta2_power / (1.0 - beta2_power)
        rectified = rho_t > 5.0
        ratio = (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / (
            (rho_inf - 4.0) * (rho_inf - 2.0) * rho_t
        )
        rect = torch.where(rectified, ratio.clamp(min=0.0) ** 0.5, 0.0)
        bias_correction1 = 1.0 - beta1 ** step
        # torch's multi-tensor form: buffer = 1 / ((sqrt(v) + eps) / c) + u, p += m * buffer,
        # where c = -sqrt(1 - beta2^t) lr r_t / (1 - beta1^t) (-0 when unrectified, so the
        # first term vanishes) and u = -lr / (1 - beta1^t) when unrectified, else 0.
        unrectified = torch.where(rect > 0, 0.0, 1.0)
        return {
            **self.decay_factors(lr),
            "blend": 1.0 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1.0 - beta2,
            "eps": self.float_hp("eps", 1e-8),
            "scale": ((1.0 - beta2_power) ** 0.5) * (lr * rect / bias_correction1) * -1.0,
            "unrectified_step": (lr * unrectified / bias_correction1) * -1.0,
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
        buffer = exp_avg_sq.sqrt().add_(factors.at("eps", param))
        buffer.div_(factors.at("scale", param)).reciprocal_()
        buffer.add_(factors.at("unrectified_step", param))
        param.addcmul_(exp_avg, buffer)


class BatchedAdagrad(_Adaptive):
    """``torch.optim.Adagrad`` for K configurations (``lr_decay`` 0)::

        s <- s + g^2   (from initial_accumulator_value);   p <- p - lr * g / (sqrt(s) + eps)

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, optional ``initial_accumulator_value``, ``eps`` (default 1e-10) and
            ``weight_decay`` (coupled).
    """

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        start = self.float_hp("initial_accumulator_value", 0.0)
        shape = (-1,) + (1,) * (param.dim() - 1)
        state["sum"] = torch.zeros_like(param, memory_format=torch.preserve_format).add_(
            start.to(param.dtype).view(shape)
        )

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return {**self.decay_factors(lr), "lr": lr, "eps": self.float_hp("eps", 1e-10)}

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        grad = self.decayed_gradient(param, grad, factors, decay)
        total = state["sum"]
        total.addcmul_(grad, grad)
        std = total.sqrt().add_(factors.at("eps", param))
        param.sub_(grad * factors.at("lr", param) / std)


class BatchedRMSprop(_Adaptive):
    """``torch.optim.RMSprop`` for K configurations::

        v <- alpha v + (1 - alpha) g^2;   (centered: a <- alpha a + (1 - alpha) g, v - a^2)
        d = sqrt(v) + eps;   b <- momentum b + g / d,  p <- p - lr b   (momentum > 0)
                             p <- p - lr g / d                         (momentum 0)

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``alpha``, ``eps``, optional ``momentum``, ``centered`` and
            ``weight_decay`` (coupled).
    """

    def __init__(self, groups: list[dict], hp: Mapping[str, Any]) -> None:
        super().__init__(groups, hp)
        self.centered = bool(hp.get("centered", False))
        momentum = self.float_hp("momentum", 0.0)
        # A configuration with momentum 0 keeps no buffer in torch and steps by -lr * g / d,
        # rounded differently from -lr * b: in a batch that mixes both, each takes its own.
        self.has_momentum = bool((momentum > 0).any())
        self.mixed_momentum = self.has_momentum and not bool((momentum > 0).all())

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if self.has_momentum:
            state["momentum_buffer"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )
        if self.centered:
            state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        alpha = self.float_hp("alpha")
        momentum = self.float_hp("momentum", 0.0)
        return {
            **self.decay_factors(lr),
            "neg_lr": -lr,
            "alpha": alpha,
            "one_minus_alpha": 1.0 - alpha,
            "eps": self.float_hp("eps", 1e-8),
            "momentum": momentum,
            "uses_momentum": (momentum > 0).to(torch.float64),
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
        square_avg = state["square_avg"]
        square_avg.mul_(factors.at("alpha", param)).addcmul_(
            grad * factors.at("one_minus_alpha", param), grad
        )
        if self.centered:
            grad_avg = state["grad_avg"]
            grad_avg.lerp_(grad, factors.at("one_minus_alpha", grad_avg).to(grad_avg.dtype))
            average = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            average = square_avg.sqrt()
        average.add_(factors.at("eps", param))
        neg_lr = factors.at("neg_lr", param)
        if not self.has_momentum:
            param.addcdiv_(grad * neg_lr, average)
            return
        buffer = state["momentum_buffer"]
        buffer.mul_(factors.at("momentum", param)).addcdiv_(grad, average)
        if not self.mixed_momentum:
            param.addcmul_(buffer, neg_lr)
            return
        plain = param.addcdiv(grad * neg_lr, average)
        param.addcmul_(buffer, neg_lr)
        param.copy_(torch.where(factors.at("uses_momentum", param) > 0, param, plain))


class BatchedAdadelta(_Adaptive):
    """``torch.optim.Adadelta`` for K configurations::

        v <- rho v + (1 - rho) g^2;   d = sqrt(u + eps) / sqrt(v + eps) * g
        u <- rho u + (1 - rho) d^2;   p <- p - lr d

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``rho``, ``eps``, optional ``weight_decay`` (coupled).
    """

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["acc_delta"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        rho = self.float_hp("rho")
        return {
            **self.decay_factors(lr),
            "neg_lr": -lr,
            "rho": rho,
            "one_minus_rho": 1.0 - rho,
            "eps": self.float_hp("eps", 1e-6),
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
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        rho, one_minus_rho = factors.at("rho", param), factors.at("one_minus_rho", param)
        eps = factors.at("eps", param)
        square_avg.mul_(rho).addcmul_(grad * one_minus_rho, grad)
        std = square_avg.add(eps).sqrt_()
        delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
        acc_delta.mul_(rho).addcmul_(delta * one_minus_rho, delta)
        param.addcmul_(delta, factors.at("neg_lr", param))
