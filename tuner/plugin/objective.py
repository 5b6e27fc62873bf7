"""The loss as a function of the flat parameter vector, and the evaluations that were made of it.

Second-order and line-search optimizers (Newton, BFGS, DFP, conjugate gradient) think of the
model's parameters as one vector ``x`` and of the training loss as a function ``f(x)``: they
evaluate it at trial points, take its gradient, form its Hessian. :class:`FlatObjective` is that
function. The training loop builds one per step for an optimizer whose plugin sets
``wants_flat_loss`` and hands it to ``optimizer.step`` in place of the usual closure; it is
still callable as a closure (zero the gradients, the loss, its backward pass), so an optimizer
that only needs a closure works with it too.

Every evaluation is counted in an :class:`EvaluationCounts`: the loop's own record of function,
gradient and Hessian evaluations, which makes "evaluations to reach the target" comparable
between methods that make one evaluation per step (SGD, Adam) and methods that make several
(a line search, L-BFGS's inner iterations).

torch is imported inside the methods: importing this module is free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["ClosureObjective", "EvaluationCounts", "FlatObjective", "as_objective"]


@dataclass
class EvaluationCounts:
    """How many times the loss, its gradient and its Hessian were evaluated.

    A forward pass over a batch is one function evaluation, the backward pass after it one
    gradient evaluation, one dense Hessian one Hessian evaluation (whatever it cost inside).
    """

    function: int = 0
    gradient: int = 0
    hessian: int = 0


class FlatObjective:
    """The training loss ``f(x)`` of the flat parameter vector ``x``, for one step's batch.

    Evaluating at ``x`` writes ``x`` into the model's parameters (so after an evaluation the
    model sits at the last point evaluated); an optimizer puts the point it accepts in place with
    :meth:`set_params` at the end of its step. Gradients are returned, never accumulated into
    ``.grad``.

    Args:
        params: the parameters the optimizer trains, in its order.
        loss: ``loss() -> scalar tensor``, the forward pass on the step's batch (no backward).
        counts: where evaluations are counted (a fresh one if None).
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        loss: Callable[[], torch.Tensor],
        counts: EvaluationCounts | None = None,
    ) -> None:
        self.params = list(params)
        self.loss = loss
        self.counts = counts if counts is not None else EvaluationCounts()
        self.numel = sum(p.numel() for p in self.params)

    # -- the vector ---------------------------------------------------------------------------

    def flat_params(self) -> torch.Tensor:
        """A copy of the current parameters as one vector."""
        import torch

        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def set_params(self, x: torch.Tensor) -> None:
        """Write the vector ``x`` into the parameters."""
        import torch

        with torch.no_grad():
            offset = 0
            for p in self.params:
                size = p.numel()
                p.copy_(x[offset : offset + size].view_as(p))
                offset += size

    def _flatten(self, grads: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
        import torch

        return torch.cat([
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, self.params, strict=True)
        ])

    # -- evaluations ---------------------------------------------------------------------------

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)``, without its gradient: one function evaluation."""
        import torch

        self.set_params(x)
        with torch.no_grad():
            loss = self.loss()
        self.counts.function += 1
        return loss.detach()

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(x)`` and its gradient as a vector: one function and one gradient evaluation."""
        import torch

        self.set_params(x)
        with torch.enable_grad():
            loss = self.loss()
            self.counts.function += 1
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        self.counts.gradient += 1
        return loss.detach(), self._flatten(grads)

    def hessian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``f(x)``, its gradient and its dense Hessian (``numel x numel``), by differentiating
        the gradient once more; counted as one evaluation of each."""
        import torch

        self.set_params(x)
        with torch.enable_grad():
            loss = self.loss()
            self.counts.function += 1
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
            self.counts.gradient += 1
            flat = self._flatten(grads)
            hessian = self._second_derivatives(flat)
        self.counts.hessian += 1
        return loss.detach(), flat.detach(), hessian

    def _second_derivatives(self, grad: torch.Tensor) -> torch.Tensor:
        """The rows d(grad_i)/dx: all at once through a batched backward pass where autograd
        can vectorise it, else one backward pass per row."""
        import torch

        n = grad.numel()
        if not grad.requires_grad:  # the loss is linear (or constant) in x
            return torch.zeros(n, n, dtype=grad.dtype, device=grad.device)
        basis = torch.eye(n, dtype=grad.dtype, device=grad.device)
        try:
            rows = torch.autograd.grad(grad, self.params, grad_outputs=basis,
                                       is_grads_batched=True, retain_graph=True,
                                       allow_unused=True)
            return torch.cat([
                (r if r is not None else torch.zeros(n, p.numel(), dtype=grad.dtype,
                                                     device=grad.device)).reshape(n, -1)
                for r, p in zip(rows, self.params, strict=True)
            ], dim=1).detach()
        except RuntimeError:  # an op without a batching rule: row by row
            hessian = torch.empty(n, n, dtype=grad.dtype, device=grad.device)
            for i in range(n):
                row = torch.autograd.grad(grad[i], self.params, retain_graph=True,
                                          allow_unused=True)
                hessian[i] = self._flatten(row).detach()
            return hessian

    def __call__(self) -> torch.Tensor:
        """The ordinary closure: zero the gradients, the loss at the current parameters and
        its backward pass; returns the loss. One function and one gradient evaluation."""
        import torch

        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            loss = self.loss()
            self.counts.function += 1
            loss.backward()
        self.counts.gradient += 1
        return loss


class ClosureObjective(FlatObjective):
    """A :class:`FlatObjective` over an ordinary closure (one that zeroes the gradients,
    computes the loss and calls ``backward``): for an optimizer stepped outside tuner's loop.
    It gives values and gradients; no Hessian."""

    def __init__(self, params: list[torch.Tensor], closure: Callable[[], Any]) -> None:
        super().__init__(params, closure)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.value_and_grad(x)[0]

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        self.set_params(x)
        with torch.enable_grad():
            loss = self.loss()
        self.counts.function += 1
        self.counts.gradient += 1
        return torch.as_tensor(loss).detach(), self._flatten(
            tuple(p.grad for p in self.params)
        ).clone()

    def hessian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise RuntimeError(
            "a Hessian needs the loss itself, not a closure that runs backward(): step this "
            "optimizer through tuner.training.steps.optimizer_step, or pass a "
            "tuner.plugin.objective.FlatObjective"
        )

    def __call__(self) -> torch.Tensor:
        return self.loss()


def as_objective(params: list[torch.Tensor], closure: Any) -> FlatObjective:
    """``closure`` if it is a :class:`FlatObjective` already, else one built around it."""
    if isinstance(closure, FlatObjective):
        return closure
    if closure is None:
        raise RuntimeError("this optimizer evaluates the loss itself: step(closure) needs one")
    return ClosureObjective(params, closure)
