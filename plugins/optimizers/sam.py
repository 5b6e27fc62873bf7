"""Sharpness-Aware Minimization, a wrapper over any optimizer that steps on gradients.

Foret, Kleiner, Mobahi & Neyshabur 2021, "Sharpness-Aware Minimization for Efficiently Improving
Generalization" (ICLR, arXiv:2010.01412), Algorithm 1. Each step evaluates the gradient twice::

    g     = grad L(w)                             first evaluation
    e     = rho * g / ||g||                       the global L2 norm over every parameter
    g_adv = grad L(w + e)                         second evaluation, at the perturbed weights
    w     <- inner step from w, with gradient g_adv

so the training loop steps it through ``step(closure)`` (``needs_closure``, as for L-BFGS) and
counts two function and two gradient evaluations per step: "evaluations to the target" compares
it fairly with the one-evaluation optimizers. The paper's default radius is ``rho = 0.05``, from
a grid of 0.01-0.5 (its section 3 and appendix C); its base optimizer is SGD with momentum.

tuner keeps its own implementation, as it does for Lion, Tiger and Schedule-Free, and checks it
against ``pytorch_optimizer.SAM`` (tests/test_more_optimizers.py). The :class:`SharpnessAware`
object shares ``param_groups`` and ``state`` with the inner optimizer (so learning-rate schedules
drive the inner one and :func:`tuner.plugin.optimizer.optimizer_state_bytes` counts its state),
saves and restores the inner state dict, and forwards ``eval()``/``train()`` (Schedule-Free).
Its own copy of the weights lives only inside a step (1n more at the step's peak, none between
steps), so the state it declares is the inner optimizer's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.optimizer import OptimizerPlugin, OptimizerWrapper
from tuner.plugin.space import Float, SpaceError
from tuner.plugin.wrapping import WrappingOptimizer

REFERENCE = (
    "Foret et al. 2021, Sharpness-Aware Minimization for Efficiently Improving Generalization "
    "(ICLR), arXiv:2010.01412"
)
NORM_EPS = 1e-12
"""Added to the gradient norm before dividing (pytorch_optimizer's ``perturb_eps``)."""


class SharpnessAware(WrappingOptimizer):
    """SAM around ``inner``: the inner step takes the gradient at ``w + rho * g / ||g||``.

    Args:
        inner: the optimizer that takes the step (already built on the parameters).
        rho: the radius of the perturbation.
    """

    def __init__(self, inner: torch.optim.Optimizer, rho: float = 0.05) -> None:
        if not rho >= 0.0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        super().__init__(inner, {"sam_rho": rho})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate the gradient, move to the perturbed weights, evaluate it there, come back
        and take the inner step; returns the loss of the first evaluation."""
        if closure is None:
            raise RuntimeError("SAM evaluates the gradient twice per step: step() needs a "
                               "closure that recomputes the loss and its gradient")
        with torch.enable_grad():
            loss = closure()
        moved = [(group["sam_rho"], p) for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        saved = [p.detach().clone() for _, p in moved]
        if moved:
            norms = torch._foreach_norm([p.grad for _, p in moved])
            norm = torch.stack(norms).square_().sum().sqrt_() + NORM_EPS
            for rho, p in moved:
                p.add_(p.grad * (rho / norm))
        with torch.enable_grad():
            closure()
        for (_, p), weights in zip(moved, saved, strict=True):
            p.copy_(weights)
        self.inner.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict (its groups carry ``sam_rho``)."""
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the inner optimizer, and share its new groups and state again."""
        self.inner.load_state_dict(state_dict)
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state

    def __repr__(self) -> str:
        group = self.param_groups[0] if self.param_groups else {}
        return f"SharpnessAware(rho={group.get('sam_rho')}, inner={self.inner!r})"


RHO = Float("rho", 0.01, 0.5, default=0.05, log=True, recommended=0.05,
            help="perturbation radius (paper: 0.05, grid 0.01-0.5)")


@dataclass(frozen=True)
class SamBuild:
    """``build`` of ``sam-<inner>``: the inner optimizer on the parameters, SAM around it."""

    inner: OptimizerPlugin

    def __call__(self, params: list[Any], hp: Mapping[str, Any]) -> SharpnessAware:
        inner_hp = {name: value for name, value in hp.items() if name != RHO.name}
        return SharpnessAware(self.inner.build(params, inner_hp), rho=hp[RHO.name])


def wrap_in_sam(inner: OptimizerPlugin) -> OptimizerPlugin:
    """The plugin ``sam-<inner>``: inner space + rho, inner state, two evaluations a step."""
    if inner.needs_closure or inner.wants_flat_loss:
        raise SpaceError(f"sam cannot wrap {inner.name!r}: it evaluates the loss itself")
    if RHO.name in inner.space:
        raise SpaceError(f"sam cannot wrap {inner.name!r}: it already has a parameter 'rho'")
    return replace(
        inner,
        name=f"sam-{inner.name}",
        summary=f"Sharpness-Aware Minimization over {inner.name} (two gradients per step).",
        space=inner.space + [RHO],
        build=SamBuild(inner),
        build_batched=None,
        needs_closure=True,
        reference=REFERENCE + (f"; inner: {inner.reference}" if inner.reference else ""),
    )


SAM = OptimizerWrapper(
    name="sam",
    summary="Sharpness-Aware Minimization over any optimizer: sam-<name> (two gradients a step).",
    wrap=wrap_in_sam,
    added_state=0.0,
)


@hookimpl
def register_optimizer_wrappers(register: Callable[[OptimizerWrapper], None]) -> None:
    """Register the SAM wrapper."""
    register(SAM)
