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

from tuner import hookimpl
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.space import Float
from tuner.training.batched.sign import build_signsgd, build_signum
from tuner_plugins.optimizers._sign_descent import SignDescent, check_hyperparameters

REFERENCE = (
    "Bernstein et al. 2018, signSGD: Compressed Optimisation for Non-Convex Problems, "
    "arXiv:1802.04434"
)


class SignSGD(SignDescent):
    """signSGD: move every coordinate by ``lr`` against the sign of its gradient.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (the size of every coordinate's move).
        weight_decay: decoupled weight decay.
    """

    has_momentum = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, weight_decay: float = 0.0) -> None:
        check_hyperparameters(lr, weight_decay, [])
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    def group_betas(self, group: dict[str, Any]) -> tuple[float, float]:
        """No betas: signSGD has no momentum."""
        return 0.0, 0.0


class Signum(SignDescent):
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
        check_hyperparameters(lr, weight_decay, [momentum])
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def group_betas(self, group: dict[str, Any]) -> tuple[float, float]:
        """The momentum's decay, for both the update and the momentum."""
        return group["momentum"], group["momentum"]


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
    build_batched=build_signsgd,
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
    build_batched=build_signum,
    state_multiple=1,
    reference=REFERENCE,
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register signSGD and Signum."""
    register(SIGNSGD)
    register(SIGNUM)
