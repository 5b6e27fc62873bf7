"""BFGS and DFP: quasi-Newton methods with a dense inverse-Hessian approximation.

Both keep ``H``, an n x n approximation of the inverse Hessian, step along ``p = -H g`` with a
strong-Wolfe line search (:mod:`tuner_plugins.optimizers._line_search`; the first trial step is
``lr``, 1 being the quasi-Newton step), and update ``H`` from the step ``s = x_new - x`` and the
change of gradient ``y = g_new - g`` (Nocedal & Wright, Numerical Optimization, 2nd ed., ch. 6)::

    BFGS (6.17):  H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T          rho = 1 / (y^T s)
    DFP  (6.15):  H <- H - (H y)(H y)^T / (y^T H y) + s s^T / (y^T s)

``H`` starts as the identity; the first step tries ``lr * min(1, 1 / |g|)`` (a step of length
at most ``lr`` along the steepest descent), and before the first update ``H`` is rescaled to
``(y^T s / y^T y) I`` (N&W 6.20). A pair with ``y^T s <= 0`` (only possible when the search
ran out of evaluations) is skipped. When the search finds no lower point, ``H`` goes back to the
identity; when that happens along the steepest descent, the optimizer stops until the
parameters change (see :mod:`tuner_plugins.optimizers._flat_optimizer`).

The state is ``H`` plus the point and its gradient: ``n^2 + 2n`` numbers, which is why the
plugins refuse models above :data:`MAX_PARAMS` parameters. Full batch only: the line search
compares values of one fixed function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.objective import FlatObjective
from tuner.plugin.optimizer import MatrixState, OptimizerPlugin
from tuner.plugin.space import Float
from tuner_plugins.optimizers._flat_optimizer import TOLERANCE_GRAD, FlatOptimizer
from tuner_plugins.optimizers._line_search import strong_wolfe

MAX_PARAMS = 5_000
"""The most parameters BFGS and DFP take: H alone is 25 million numbers there."""
UPDATES = ("bfgs", "dfp")
NOCEDAL_WRIGHT = "Nocedal & Wright 2006, Numerical Optimization (2nd ed.), ch. 6"


def bfgs_update(h: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
    """The BFGS update of the inverse Hessian ``h``, in place (``y^T s`` > 0)."""
    rho = 1.0 / float(y @ s)
    hy = h @ y
    h.sub_(rho * (torch.outer(s, hy) + torch.outer(hy, s)))
    h.add_(torch.outer(s, s), alpha=rho * rho * float(y @ hy) + rho)


def dfp_update(h: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
    """The DFP update of the inverse Hessian ``h``, in place (``y^T s`` > 0)."""
    hy = h @ y
    h.sub_(torch.outer(hy, hy), alpha=1.0 / float(y @ hy))
    h.add_(torch.outer(s, s), alpha=1.0 / float(y @ s))


class QuasiNewton(FlatOptimizer):
    """BFGS or DFP with a dense inverse Hessian and a strong-Wolfe line search.

    Args:
        params: the parameters (one group).
        lr: the first trial step of each line search (1 = the quasi-Newton step).
        update: ``bfgs`` or ``dfp``.
        c1: the sufficient-decrease constant of the line search.
        c2: its curvature constant.
        max_params: refuse models with more parameters.
        tolerance_grad: do nothing once the gradient's largest entry is at most this.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        update: str = "bfgs",
        c1: float = 1e-4,
        c2: float = 0.9,
        max_params: int | None = MAX_PARAMS,
        tolerance_grad: float = TOLERANCE_GRAD,
    ) -> None:
        if update not in UPDATES:
            raise ValueError(f"update must be one of {', '.join(UPDATES)}, got {update!r}")
        if not 0.0 < c1 < c2 < 1.0:
            raise ValueError(f"need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
        defaults = {"lr": lr, "update": update, "c1": c1, "c2": c2}
        super().__init__(params, defaults, max_params, tolerance_grad)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | FlatObjective | None = None) -> torch.Tensor:
        """One iteration: direction, line search, inverse-Hessian update. Returns the loss at
        the point the step started from."""
        group = self.param_groups[0]
        objective = self.objective(closure)
        x, loss, grad = self.start(objective)
        state = self.flat_state
        if "inverse_hessian" not in state:
            state["inverse_hessian"] = torch.eye(self.numel, dtype=x.dtype, device=x.device)
            state["updates"] = 0
        h = state["inverse_hessian"]
        if self.converged(grad):
            self.finish(objective, x, loss, grad)
            return loss
        fresh = state["updates"] == 0
        direction = -(h @ grad)
        slope = float(grad @ direction)
        if not fresh and not slope < 0.0:  # H lost positive definiteness: start over
            h.copy_(torch.eye(self.numel, dtype=x.dtype, device=x.device))
            state["updates"], fresh = 0, True
            direction, slope = -grad, -float(grad @ grad)
        first = group["lr"] * min(1.0, 1.0 / float(grad.norm())) if fresh else group["lr"]
        found = strong_wolfe(self.searcher(objective, x, direction), float(loss), slope,
                             first, group["c1"], group["c2"])
        if found.step == 0.0:
            if fresh:
                state["stalled"] = True
            else:
                h.copy_(torch.eye(self.numel, dtype=x.dtype, device=x.device))
                state["updates"] = 0
            self.finish(objective, x, loss, grad)
            return loss
        point, new_loss, new_grad = found.extra
        s, y = point - x, new_grad - grad
        curvature = float(y @ s)
        if curvature > 0.0:
            if fresh:
                h.mul_(curvature / float(y @ y))
            (bfgs_update if group["update"] == "bfgs" else dfp_update)(h, s, y)
            state["updates"] += 1
        self.finish(objective, point, new_loss, new_grad)
        return loss


def _builder(update: str) -> Callable[[list[torch.Tensor], dict[str, Any]], QuasiNewton]:
    def build(params: list[torch.Tensor], hp: dict[str, Any]) -> QuasiNewton:
        return QuasiNewton(params, lr=hp["lr"], update=update, c2=hp["c2"])

    return build


def _space() -> list[Float]:
    return [
        Float("lr", 0.01, 1.0, default=1.0, log=True, recommended=1.0,
              help="first trial step; 1 = the quasi-Newton step"),
        Float("c2", 0.1, 0.99, default=0.9, recommended=0.9,
              help="Wolfe curvature constant (N&W: 0.9)"),
    ]


BFGS = OptimizerPlugin(
    name="bfgs",
    summary="BFGS quasi-Newton: dense inverse Hessian, strong-Wolfe line search (full batch).",
    space=_space(),
    build=_builder("bfgs"),
    state_multiple=MatrixState(1, 2),  # H, the point and its gradient
    needs_closure=True,
    full_batch_only=True,
    wants_flat_loss=True,
    max_params=MAX_PARAMS,
    reference="Broyden, Fletcher, Goldfarb, Shanno 1970; " + NOCEDAL_WRIGHT,
)

DFP = OptimizerPlugin(
    name="dfp",
    summary="DFP quasi-Newton: dense inverse Hessian, strong-Wolfe line search (full batch).",
    space=_space(),
    build=_builder("dfp"),
    state_multiple=MatrixState(1, 2),  # H, the point and its gradient
    needs_closure=True,
    full_batch_only=True,
    wants_flat_loss=True,
    max_params=MAX_PARAMS,
    reference="Davidon 1959, Fletcher & Powell 1963; " + NOCEDAL_WRIGHT,
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register BFGS and DFP."""
    register(BFGS)
    register(DFP)
