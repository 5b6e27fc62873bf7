"""Nonlinear conjugate gradient: Fletcher-Reeves or Polak-Ribière+, with restarts.

Each iteration searches along ``d`` with a strong-Wolfe line search, then builds the next
direction from the new gradient (Nocedal & Wright, Numerical Optimization, 2nd ed., ch. 5.2)::

    d_next = -g_new + beta * d
    Fletcher-Reeves (5.41a):  beta = (g_new . g_new) / (g . g)
    Polak-Ribiere+  (5.45):   beta = max(0, g_new . (g_new - g) / (g . g))

Restarts (``d = -g``): every ``restart_every`` iterations (0: every n, the parameter count), and
whenever ``d`` is not a descent direction. The first trial step of each search is
``min(lr, 1.01 * 2 (f - f_previous) / phi'(0))`` (N&W 3.60: the last decrease, expected again);
the very first is ``lr * min(1, 1 / |g|)``.

The curvature constant ``c2`` of the search must stay below 1/2 for Fletcher-Reeves to be sure
of a descent direction (N&W Lemma 5.6). The state is the point, its gradient and the next
direction: three vectors, ``3n``. Full batch only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.objective import FlatObjective
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.space import Categorical, Float, Int
from tuner_plugins.optimizers._flat_optimizer import TOLERANCE_GRAD, FlatOptimizer
from tuner_plugins.optimizers._line_search import strong_wolfe

BETAS = ("polak-ribiere-plus", "fletcher-reeves")


def conjugate_beta(rule: str, grad: torch.Tensor, new_grad: torch.Tensor) -> float:
    """The coefficient of the previous direction under ``rule`` (one of :data:`BETAS`)."""
    previous = float(grad @ grad)
    if rule == "fletcher-reeves":
        return float(new_grad @ new_grad) / previous
    return max(0.0, float(new_grad @ (new_grad - grad)) / previous)


class ConjugateGradient(FlatOptimizer):
    """Nonlinear conjugate gradient with a strong-Wolfe line search.

    Args:
        params: the parameters (one group).
        lr: the largest first trial step of a line search.
        beta: ``polak-ribiere-plus`` or ``fletcher-reeves``.
        restart_every: iterations between restarts along the steepest descent (0: n).
        c1: the sufficient-decrease constant of the line search.
        c2: its curvature constant (below 0.5).
        tolerance_grad: do nothing once the gradient's largest entry is at most this.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        beta: str = "polak-ribiere-plus",
        restart_every: int = 0,
        c1: float = 1e-4,
        c2: float = 0.1,
        tolerance_grad: float = TOLERANCE_GRAD,
    ) -> None:
        if beta not in BETAS:
            raise ValueError(f"beta must be one of {', '.join(BETAS)}, got {beta!r}")
        if not 0.0 < c1 < c2 < 0.5:
            raise ValueError(f"need 0 < c1 < c2 < 0.5, got c1={c1}, c2={c2}")
        if restart_every < 0:
            raise ValueError(f"restart_every must be >= 0, got {restart_every}")
        defaults = {"lr": lr, "beta": beta, "restart_every": restart_every, "c1": c1, "c2": c2}
        super().__init__(params, defaults, None, tolerance_grad)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | FlatObjective | None = None) -> torch.Tensor:
        """One iteration: line search along the direction, then the next direction. Returns the
        loss at the point the step started from."""
        group = self.param_groups[0]
        objective = self.objective(closure)
        x, loss, grad = self.start(objective)
        state = self.flat_state
        direction = state.get("direction")
        if direction is None or state.get("x") is None or not torch.equal(state["x"], x):
            direction = -grad  # a first step, or the parameters moved: steepest descent
            state["iterations"] = 0
            state.pop("previous_loss", None)
        if self.converged(grad):
            state["direction"] = direction
            self.finish(objective, x, loss, grad)
            return loss
        slope = float(grad @ direction)
        if not slope < 0.0:
            direction, slope = -grad, -float(grad @ grad)
            state["iterations"] = 0
        previous = state.get("previous_loss")
        first = group["lr"] * min(1.0, 1.0 / float(grad.norm()))
        if previous is not None:
            guess = 1.01 * 2.0 * (float(loss) - float(previous)) / slope
            first = min(group["lr"], guess) if guess > 0.0 else group["lr"]
        found = strong_wolfe(self.searcher(objective, x, direction), float(loss), slope, first,
                             group["c1"], group["c2"])
        if found.step == 0.0:
            if state["iterations"] == 0 and torch.equal(direction, -grad):
                state["stalled"] = True
            state["direction"], state["iterations"] = -grad, 0
            state.pop("previous_loss", None)
            self.finish(objective, x, loss, grad)
            return loss
        point, new_loss, new_grad = found.extra
        iterations = state["iterations"] + 1
        every = group["restart_every"] or self.numel
        if iterations >= every:
            state["direction"], state["iterations"] = -new_grad, 0
        else:
            beta = conjugate_beta(group["beta"], grad, new_grad)
            state["direction"] = torch.add(-new_grad, direction, alpha=beta)
            state["iterations"] = iterations
        state["previous_loss"] = loss.reshape(())
        self.finish(objective, point, new_loss, new_grad)
        return loss


def _build(params: list[torch.Tensor], hp: dict[str, Any]) -> ConjugateGradient:
    return ConjugateGradient(params, lr=hp["lr"], beta=hp["beta"],
                             restart_every=hp["restart_every"], c2=hp["c2"])


CG = OptimizerPlugin(
    name="cg",
    summary="Nonlinear conjugate gradient (Polak-Ribiere+ or Fletcher-Reeves), restarts.",
    space=[
        Float("lr", 1e-3, 10.0, default=1.0, log=True, recommended=1.0,
              help="largest first trial step of a line search"),
        Categorical("beta", BETAS, default="polak-ribiere-plus",
                    recommended="polak-ribiere-plus", help="the conjugacy rule"),
        Int("restart_every", 0, 1000, default=0, recommended=0,
            help="iterations between restarts; 0 = n, the parameter count"),
        Float("c2", 0.01, 0.45, default=0.1, recommended=0.1,
              help="Wolfe curvature constant (N&W: 0.1 for CG)"),
    ],
    build=_build,
    state_multiple=3,  # the point, its gradient and the next direction
    needs_closure=True,
    full_batch_only=True,
    wants_flat_loss=True,
    reference="Fletcher & Reeves 1964; Polak & Ribiere 1969, Polyak 1969; Gilbert & Nocedal "
    "1992 (PR+); Nocedal & Wright 2006, Numerical Optimization (2nd ed.), ch. 5",
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register nonlinear conjugate gradient."""
    register(CG)
