"""Damped Newton's method: the exact Hessian, a backtracking line search, Levenberg damping.

Each step computes the loss, its gradient ``g`` and its dense Hessian ``H`` at the current
point (autograd differentiates the gradient again:
:meth:`tuner.plugin.objective.FlatObjective.hessian`), solves ``(H + lambda I) p = -g`` by a
Cholesky factorisation and backtracks along ``p`` from the step ``lr`` (1: the full Newton step)
until the loss decreases enough (Armijo; Nocedal & Wright, Numerical Optimization, 2nd ed., ch.
3.3-3.4). ``lambda`` is the ``damping`` hyperparameter (0: pure Newton); when ``H + lambda I``
is not positive definite (a saddle, a concave region) it is raised, tenfold at a time from
``1e-8`` times the Hessian's largest diagonal entry, until the factorisation succeeds
(Levenberg 1944, Marquardt 1963). On a quadratic with ``damping`` 0 the first step lands on the
minimum.

The Hessian costs ``n^2`` numbers and ``n`` backward passes per step, so the plugin refuses
models with more than :data:`MAX_PARAMS` parameters. No state is kept between steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.objective import FlatObjective
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.space import Float
from tuner_plugins.optimizers._flat_optimizer import TOLERANCE_GRAD, FlatOptimizer
from tuner_plugins.optimizers._line_search import backtracking

MAX_PARAMS = 2_000
"""The most parameters Newton takes (a 2,000 x 2,000 Hessian, 2,000 backward passes a step)."""
DAMPING_TRIES = 40


def damped_newton_direction(
    hessian: torch.Tensor, grad: torch.Tensor, damping: float
) -> tuple[torch.Tensor, float]:
    """``p`` solving ``(H + lambda I) p = -g`` with the smallest ``lambda >= damping`` (from
    tenfold increases) that makes the matrix positive definite; returns ``(p, lambda)``."""
    n = grad.numel()
    identity = torch.eye(n, dtype=hessian.dtype, device=hessian.device)
    floor = 1e-8 * max(1.0, float(hessian.diagonal().abs().max())) if n else 1e-8
    damping_now = damping
    for _ in range(DAMPING_TRIES):
        factor, info = torch.linalg.cholesky_ex(hessian + damping_now * identity)
        if int(info) == 0:
            direction = torch.cholesky_solve(-grad.unsqueeze(1), factor).squeeze(1)
            if bool(torch.isfinite(direction).all()):
                return direction, damping_now
        damping_now = max(10.0 * damping_now, floor)
    return -grad, float("inf")


class Newton(FlatOptimizer):
    """Newton's method with the exact Hessian, backtracking, and Levenberg damping.

    Args:
        params: the parameters (one group).
        lr: the first trial step of the backtracking search (1 = the Newton step).
        damping: ``lambda`` added to the Hessian's diagonal (0: pure Newton).
        c1: the sufficient-decrease constant.
        max_params: refuse models with more parameters.
        tolerance_grad: do nothing once the gradient's largest entry is at most this.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        damping: float = 0.0,
        c1: float = 1e-4,
        max_params: int | None = MAX_PARAMS,
        tolerance_grad: float = TOLERANCE_GRAD,
    ) -> None:
        if not damping >= 0.0:
            raise ValueError(f"damping must be >= 0, got {damping}")
        super().__init__(params, {"lr": lr, "damping": damping, "c1": c1}, max_params,
                         tolerance_grad)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | FlatObjective | None = None) -> torch.Tensor:
        """One Newton step. Returns the loss at the point the step started from."""
        group = self.param_groups[0]
        objective = self.objective(closure)
        x = objective.flat_params()
        loss, grad, hessian = objective.hessian(x)
        if grad.numel() == 0 or float(grad.abs().max()) <= group["tolerance_grad"]:
            objective.set_params(x)
            return loss
        direction, _ = damped_newton_direction(hessian, grad, group["damping"])
        # below this step x + step * p rounds to x: stop backtracking there
        resolution = torch.finfo(x.dtype).eps * (1.0 + float(x.abs().max()))
        found = backtracking(lambda step: float(objective.value(x + step * direction)),
                             float(loss), float(grad @ direction), group["lr"], group["c1"],
                             min_step=resolution / max(float(direction.abs().max()), 1e-300))
        objective.set_params(x + found.step * direction if found.step else x)
        return loss


def _build(params: list[torch.Tensor], hp: dict[str, Any]) -> Newton:
    return Newton(params, lr=hp["lr"], damping=hp["damping"])


NEWTON = OptimizerPlugin(
    name="newton",
    summary="Damped Newton: exact Hessian, backtracking, Levenberg damping (full batch, small).",
    space=[
        Float("lr", 0.1, 1.0, default=1.0, log=True, recommended=1.0,
              help="first trial step; 1 = the Newton step"),
        Float("damping", 0.0, 10.0, default=0.0, recommended=0.0,
              help="added to the Hessian's diagonal; raised when not positive definite"),
    ],
    build=_build,
    state_multiple=0,  # the Hessian is rebuilt every step, nothing is kept
    needs_closure=True,
    full_batch_only=True,
    wants_flat_loss=True,
    max_params=MAX_PARAMS,
    reference="Nocedal & Wright 2006, Numerical Optimization (2nd ed.), ch. 3; Levenberg "
    "1944, Marquardt 1963",
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register Newton's method."""
    register(NEWTON)
