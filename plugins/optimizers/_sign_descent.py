"""The shared multi-tensor step of the sign-descent optimizers (Lion, Tiger, signSGD, Signum).

All four move each parameter by ``lr`` times the sign of a blend of momentum and gradient, with
decoupled weight decay::

    p <- p * (1 - lr * weight_decay) - lr * sign(u)

where ``u`` is the gradient (signSGD), the freshly updated momentum (Signum, Tiger) or a blend
``beta1 * m + (1 - beta1) * g`` taken before the momentum is updated (Lion).

Speed: the step is written with ``torch._foreach_*`` ops, run on CPU over cache-sized blocks
(:mod:`tuner_plugins.optimizers._blocks`), so that each tensor crosses the memory bus about once
per step, as in SGD with momentum, although the step takes five ops.
"""

from __future__ import annotations

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
