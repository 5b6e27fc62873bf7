"""The shared multi-tensor step of the sign-descent optimizers (Lion, Tiger, signSGD, Signum).

All four move each parameter by ``lr`` times the sign of a blend of momentum and gradient, with
decoupled weight decay::

    p <- p * (1 - lr * weight_decay) - lr * sign(u)

where ``u`` is the gradient (signSGD), the freshly updated momentum (Signum, Tiger) or a blend
``beta1 * m + (1 - beta1) * g`` taken before the momentum is updated (Lion).

Speed: the step is written with ``torch._foreach_*`` ops, run on CPU over cache-sized blocks
(:mod:`tuner_plugins.optimizers._blocks`), so that each tensor crosses the memory bus about once
per step, as in SGD with momentum, although the step takes five ops.

:class:`SignDescent` is the base class of the four optimizers: it owns ``step()`` (closure,
gradients and momentum buffers per group, the shared step) and asks each subclass only for its
group's betas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from tuner_plugins.optimizers._blocks import (
    block_elements,
    group_by_device_and_dtype,
    split_into_blocks,
)


@torch.no_grad()
def sign_descent_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momenta: list[torch.Tensor] | None,
    *,
    lr: float,
    weight_decay: float,
    update_beta: float,
    momentum_beta: float,
    momentum_first: bool,
) -> None:
    """One sign-descent step over aligned lists of parameters, gradients and momenta.

    Args:
        params: the parameters, updated in place.
        grads: their gradients.
        momenta: their momentum buffers, updated in place (``None`` for signSGD).
        lr: the learning rate (the size of every coordinate's move).
        weight_decay: decoupled weight decay: parameters are first scaled by ``1 - lr * wd``.
        update_beta: Lion's beta1: ``u = update_beta * m + (1 - update_beta) * g``.
        momentum_beta: the momentum's decay: ``m <- momentum_beta * m + (1 - momentum_beta) * g``.
        momentum_first: update the momentum first and take ``u = m`` (Signum, Tiger).
    """
    if not params:
        return
    lists = [params, grads] + ([momenta] if momenta is not None else [])
    for part in group_by_device_and_dtype(lists):
        for p, g, *m in split_into_blocks(part, block_elements(part[0][0].device)):
            if not m:
                signs = torch._foreach_sign(g)
            elif momentum_first:
                torch._foreach_lerp_(m[0], g, 1.0 - momentum_beta)
                signs = torch._foreach_sign(m[0])
            else:
                signs = torch._foreach_lerp(m[0], g, 1.0 - update_beta)
                torch._foreach_sign_(signs)
            if weight_decay != 0.0:
                torch._foreach_mul_(p, 1.0 - lr * weight_decay)
            torch._foreach_add_(p, signs, alpha=-lr)
            if m and not momentum_first:
                torch._foreach_lerp_(m[0], g, 1.0 - momentum_beta)


Batch = tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None]
"""One group's step: the group, its parameters with a gradient, their gradients and momenta."""


def check_hyperparameters(lr: float, weight_decay: float, betas: Iterable[float]) -> None:
    """Raise ``ValueError`` unless ``lr`` and ``weight_decay`` are >= 0 and each beta in [0, 1)."""
    if not lr >= 0.0:
        raise ValueError(f"learning rate must be >= 0, got {lr}")
    if not weight_decay >= 0.0:
        raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
    for beta in betas:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas must be in [0, 1), got {beta}")


class SignDescent(torch.optim.Optimizer):
    """A sign-descent optimizer: ``p <- p * (1 - lr * wd) - lr * sign(u)``, group by group.

    The step is :func:`sign_descent_step`; a subclass says how it reads its betas from a group
    (:meth:`group_betas`), whether it keeps a momentum buffer (``exp_avg`` in each parameter's
    state) and whether the momentum moves before the sign is taken. It may hold a step back with
    :meth:`batches_to_step`. Groups need ``lr`` and ``weight_decay``.
    """

    has_momentum: bool = True
    """Keep a momentum buffer per parameter (signSGD keeps none)."""
    momentum_first: bool = True
    """Update the momentum, then step along its sign (Signum, Tiger); else Lion's order."""

    def group_betas(self, group: dict[str, Any]) -> tuple[float, float]:
        """The group's betas.

        Args:
            group: one of ``param_groups``.

        Returns:
            ``(update_beta, momentum_beta)``, as :func:`sign_descent_step` takes them.
        """
        raise NotImplementedError

    def batches_to_step(self, batches: Iterator[Batch]) -> Iterable[Batch]:
        """The groups to step on; by default all of them, each collected just before its step.

        Args:
            batches: each group's parameters, gradients and momenta, collected lazily.

        Returns:
            The batches to step on (an override may return none to skip the step).
        """
        return batches

    def _collect(self, group: dict[str, Any]) -> Batch:
        """The group's parameters that have a gradient, their gradients and momentum buffers."""
        params, grads, momenta = [], [], []
        has_momentum = self.has_momentum
        for param in group["params"]:
            grad = param.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            params.append(param)
            grads.append(grad)
            if has_momentum:
                state = self.state[param]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                momenta.append(state["exp_avg"])
        return group, params, grads, momenta if has_momentum else None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Take one step; ``closure`` re-evaluates the loss and is optional."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        batches = (self._collect(group) for group in self.param_groups)
        for group, params, grads, momenta in self.batches_to_step(batches):
            update_beta, momentum_beta = self.group_betas(group)
            sign_descent_step(
                params, grads, momenta, lr=float(group["lr"]),
                weight_decay=group["weight_decay"], update_beta=update_beta,
                momentum_beta=momentum_beta, momentum_first=self.momentum_first,
            )
        return loss
