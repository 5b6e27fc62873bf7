"""signSGD and Signum: descent along the sign of the gradient, or of its momentum.

Bernstein et al. 2018, "signSGD: Compressed Optimisation for Non-Convex Problems"
(arXiv:1802.04434)::

    signSGD:  p <- p - lr * sign(g)
    Signum:   m <- beta * m + (1 - beta) * g;   p <- p - lr * sign(m)

Weight decay is decoupled, as the authors' MXNet Signum applies it (its ``wd_lh``): the parameters
are scaled by ``1 - lr * weight_decay`` before the sign step, so the decay never enters the sign.
signSGD keeps no state; Signum keeps one momentum buffer per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from tuner import hookimpl
from tuner.optimizer import OptimizerPlugin
from tuner.space import Float
from tuner_plugins.optimizers._sign_descent import sign_descent_step
from tuner_plugins.optimizers.lion import _check_hyperparameters, _gradients_with_momentum

REFERENCE = (
    "Bernstein et al. 2018, signSGD: Compressed Optimisation for Non-Convex Problems, "
    "arXiv:1802.04434"
)


class SignSGD(torch.optim.Optimizer):
    """signSGD: move every coordinate by ``lr`` against the sign of its gradient.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (the size of every coordinate's move).
        weight_decay: decoupled weight decay.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, weight_decay: float = 0.0) -> None:
        _check_hyperparameters(lr, weight_decay, [])
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Take one step; ``closure`` re-evaluates the loss and is optional."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("SignSGD does not support sparse gradients")
            sign_descent_step(
                params, [p.grad for p in params], None, lr=float(group["lr"]),
                weight_decay=group["weight_decay"], update_beta=0.0, momentum_beta=0.0,
                momentum_first=True,
            )
        return loss


class Signum(torch.optim.Optimizer):
    """Signum: move every coordinate by ``lr`` against the sign of its gradient's momentum.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        momentum: the momentum's decay ``beta``.
        weight_decay: decoupled weight decay.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ) -> None:
        _check_hyperparameters(lr, weight_decay, [momentum])
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Take one step; ``closure`` re-evaluates the loss and is optional."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, momenta = _gradients_with_momentum(self, group)
            sign_descent_step(
                params, grads, momenta, lr=float(group["lr"]),
                weight_decay=group["weight_decay"], update_beta=group["momentum"],
                momentum_beta=group["momentum"], momentum_first=True,
            )
        return loss


def _sign_lr(help_text: str) -> Float:
    return Float("lr", 1e-6, 1e-1, default=1e-4, log=True, recommended=1e-4, help=help_text)


SIGNSGD = OptimizerPlugin(
    name="signsgd",
    summary="signSGD: sign of the gradient; no state.",
    space=[
        _sign_lr("each coordinate moves by lr"),
        Float("weight_decay", 0.0, 1.0, default=0.0, help="decoupled"),
    ],
    build=lambda params, hp: SignSGD(params, lr=hp["lr"], weight_decay=hp["weight_decay"]),
    state_multiple=0,
    reference=REFERENCE,
)

SIGNUM = OptimizerPlugin(
    name="signum",
    summary="Signum: sign of the gradient's momentum; 1 buffer.",
    space=[
        _sign_lr("each coordinate moves by lr"),
        Float("momentum", 0.0, 0.999, default=0.9, recommended=0.9),
        Float("weight_decay", 0.0, 1.0, default=0.0, help="decoupled"),
    ],
    build=lambda params, hp: Signum(
        params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"]
    ),
    state_multiple=1,
    reference=REFERENCE,
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register signSGD and Signum."""
    register(SIGNSGD)
    register(SIGNUM)
