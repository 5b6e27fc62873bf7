"""The base of the optimizers that work on the flat parameter vector (Newton, BFGS, DFP, CG).

:class:`FlatOptimizer` is a ``torch.optim.Optimizer`` over one parameter group whose ``step``
takes a :class:`~tuner.plugin.objective.FlatObjective` (tuner's training loop passes one: the
plugins set ``wants_flat_loss``) or an ordinary closure (then values and gradients come through
it). Its whole state lives in the entry of the first parameter, as L-BFGS keeps it, so
``state_dict`` and ``load_state_dict`` work unchanged.

The point a step ends at, with its loss and gradient, is kept in the state (``x``, ``loss``,
``grad``): the next step starts from them without evaluating again, unless the parameters were
moved in between (a Lookahead synchronisation, a load), which the exact comparison with ``x``
detects. A step at a point where the gradient is below ``tolerance_grad``, or where the last
search along the steepest descent found no lower point (``stalled``), evaluates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from tuner.plugin.objective import FlatObjective, as_objective

TOLERANCE_GRAD = 1e-9
"""A step at a point whose gradient's largest entry is at most this does nothing."""


class FlatOptimizer(torch.optim.Optimizer):
    """An optimizer over the flat parameter vector, stepped with a flat objective.

    Args:
        params: the parameters (one group).
        defaults: the group's hyperparameters; ``lr`` is the first trial step of a line search.
        max_params: refuse (``ValueError``) more parameters than this.
        tolerance_grad: the gradient's largest entry at which a step does nothing.
    """

    wants_flat_loss = True
    """:func:`tuner.training.steps.optimizer_step` reads this and passes a FlatObjective."""

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        max_params: int | None = None,
        tolerance_grad: float = TOLERANCE_GRAD,
    ) -> None:
        if not defaults.get("lr", 1.0) > 0.0:
            raise ValueError(f"lr (the first trial step) must be positive, got {defaults['lr']}")
        super().__init__(params, {**defaults, "tolerance_grad": tolerance_grad})
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} takes one parameter group")
        self._params: list[torch.Tensor] = self.param_groups[0]["params"]
        self.numel = sum(p.numel() for p in self._params)
        if max_params is not None and self.numel > max_params:
            raise ValueError(
                f"{type(self).__name__} handles at most {max_params:,} parameters, got "
                f"{self.numel:,}"
            )

    @property
    def flat_state(self) -> dict[str, Any]:
        """The optimizer's state (kept in the first parameter's entry)."""
        return self.state[self._params[0]]

    def objective(self, closure: Callable[[], Any] | FlatObjective | None) -> FlatObjective:
        """The flat objective ``step`` was given, or one built around an ordinary closure."""
        objective = as_objective(self._params, closure)
        if len(objective.params) != len(self._params) or any(
            a is not b for a, b in zip(objective.params, self._params, strict=True)
        ):
            raise ValueError(f"{type(self).__name__}: the objective is over other parameters")
        return objective

    def start(self, objective: FlatObjective) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The current point ``x``, its loss and its gradient: from the state when the
        parameters still sit where the last step left them, else evaluated."""
        state = self.flat_state
        x = objective.flat_params()
        kept = state.get("x")
        if kept is not None and kept.shape == x.shape and torch.equal(kept, x):
            return x, state["loss"], state["grad"]
        state.pop("stalled", None)
        loss, grad = objective.value_and_grad(x)
        return x, loss, grad

    def finish(
        self, objective: FlatObjective, x: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor
    ) -> None:
        """Put ``x`` in place and keep it with its loss and gradient for the next step."""
        objective.set_params(x)
        state = self.flat_state
        state["x"], state["loss"], state["grad"] = x, loss.reshape(()), grad

    def converged(self, grad: torch.Tensor) -> bool:
        """Nothing to do here: a (numerically) zero gradient, or a search that stalled."""
        tolerance = self.param_groups[0]["tolerance_grad"]
        return bool(self.flat_state.get("stalled", False)) or (
            grad.numel() == 0 or float(grad.abs().max()) <= tolerance
        )

    def searcher(
        self, objective: FlatObjective, x: torch.Tensor, direction: torch.Tensor
    ) -> Callable[[float], tuple[float, float, Any]]:
        """``phi(step) -> (value, slope, (point, value, gradient))`` along ``direction``."""

        def phi(step: float) -> tuple[float, float, Any]:
            point = torch.add(x, direction, alpha=step)
            value, grad = objective.value_and_grad(point)
            return float(value), float(grad @ direction), (point, value, grad)

        return phi
