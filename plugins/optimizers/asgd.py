"""Averaged SGD (torch's ``ASGD``), evaluated at its average.

Polyak & Juditsky 1992 average the iterates of SGD; Bottou 2012 gives the form torch follows
(``torch.optim.ASGD``). Each step is SGD with a decaying step size and a shrink term::

    eta_t = lr / (1 + lambd * lr * t) ** alpha
    w    <- w * (1 - lambd * eta_t) - eta_t * g
    ax   <- ax + mu_t * (w - ax),   mu_t = 1 / max(1, t - t0)

so ``ax`` is the plain mean of the iterates after step ``t0`` (and ``w`` itself before). The
point of the method is the average, but torch keeps it in the state and leaves the parameters at
``w``: evaluated there, ASGD is only SGD with a decaying step. :class:`AveragedSGD` adds
``eval()`` and ``train()``, which the training loop calls around every evaluation
(:func:`tuner.plugin.optimizer.eval_mode`): ``eval()`` swaps the average into the parameters
and ``train()`` swaps it back, exactly (a swap, no arithmetic).

torch's default ``t0`` is a million steps, which would never average within a run here: ``t0``
is in the space. The state is ``ax`` (1n; ``eta``, ``mu`` and the step are scalars).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.space import Float, Int
from tuner_plugins.optimizers.torch_optim import fastest_implementation

MODE_KEY = "averaged_weights_in"
"""Group key: True while the parameters hold the average (between ``eval()`` and ``train()``)."""

REFERENCE = (
    "Polyak & Juditsky 1992, Acceleration of Stochastic Approximation by Averaging (SIAM J. "
    "Control Optim. 30); Bottou 2012, Stochastic Gradient Descent Tricks; torch.optim.ASGD"
)


class AveragedSGD(torch.optim.ASGD):
    """torch's ASGD, with :meth:`eval` and :meth:`train` to evaluate at the averaged weights."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        for group in self.param_groups:
            group.setdefault(MODE_KEY, False)

    @torch.no_grad()
    def _swap(self, averaged: bool) -> None:
        for group in self.param_groups:
            if group[MODE_KEY] == averaged:
                continue
            for param in group["params"]:
                average = self.state.get(param, {}).get("ax")
                if average is not None:
                    held = param.detach().clone()
                    param.copy_(average)
                    average.copy_(held)
            group[MODE_KEY] = averaged

    def eval(self) -> None:
        """Put the averaged weights into the parameters (no-op if they are there)."""
        self._swap(True)

    def train(self) -> None:
        """Put the training weights back; the inverse of :meth:`eval`."""
        self._swap(False)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """torch's ASGD step; raises while the averaged weights are in the parameters."""
        if any(group[MODE_KEY] for group in self.param_groups):
            raise RuntimeError("AveragedSGD.step() called in evaluation mode: call train() first")
        return super().step(closure)


def build_asgd(params: list[Any], hp: Mapping[str, Any]) -> AveragedSGD:
    kwargs = dict(hp)
    kwargs["t0"] = float(kwargs["t0"])
    kwargs.update(fastest_implementation(torch.optim.ASGD, params))
    return AveragedSGD(params, **kwargs)


ASGD = OptimizerPlugin(
    name="asgd",
    summary="Averaged SGD: SGD with a decaying step, evaluated at the mean of its iterates "
    "after t0.",
    space=[
        Float("lr", 1e-4, 1.0, default=1e-2, log=True, recommended=1e-2,
              help="step size at t = 0 (torch: 1e-2)"),
        Int("t0", 1, 10_000, default=100, log=True, recommended=100,
            help="averaging starts after this step (torch: 1e6, never within a run)"),
        Float("lambd", 1e-6, 1e-2, default=1e-4, log=True, recommended=1e-4,
              help="step decay and shrink (torch: 1e-4)"),
        Float("alpha", 0.5, 1.0, default=0.75, recommended=0.75,
              help="power of the step decay (torch: 0.75)"),
        Float("weight_decay", 0.0, 1e-3, default=0.0, help="L2 penalty added to the gradient"),
    ],
    build=build_asgd,
    state_multiple=1,  # ax
    reference=REFERENCE,
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register averaged SGD."""
    register(ASGD)
