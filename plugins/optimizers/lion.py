"""Lion and Tiger: sign-of-momentum optimizers that keep a single buffer per parameter.

Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675)::

    u = sign(beta1 * m + (1 - beta1) * g)
    p <- p - lr * (u + weight_decay * p)
    m <- beta2 * m + (1 - beta2) * g

Every coordinate moves by exactly ``lr``, more than Adam's typical step, so the paper advises a
learning rate 3-10x smaller than AdamW's and a weight decay 3-10x larger (the product
``lr * weight_decay`` is what decays the weights).

Tiger (Su 2023, "Tiger: a tight-fisted optimizer") is Lion with ``beta1 = beta2 = beta``: the
update is the sign of the momentum itself. Its author recommends ``beta = 0.945`` for vision
(the midpoint of Lion's 0.9 and 0.99) and ``0.965`` for language models (Lion's 0.95 and 0.98).

Tiger's optional non-finite-gradient guard (``nan_guard=True``): when any gradient of the step
holds a NaN or an infinity, the step is skipped (momentum untouched) and every parameter that has
a gradient is pulled slightly towards its initial centre::

    p <- (p - c) * shrink + c          shrink = 0.99

where ``c`` is the mean of the parameter's values when the optimizer first steps on it (1 for a
normalisation gain initialised to ones, 0 for a bias, about 0 for a weight matrix), stored as a
scalar in the parameter's state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.space import Categorical, Float
from tuner.training.batched.sign import build_lion, build_tiger
from tuner_plugins.optimizers._sign_descent import Batch, SignDescent, check_hyperparameters

LION_REFERENCE = (
    "Chen et al. 2023, Symbolic Discovery of Optimization Algorithms, arXiv:2302.06675"
)
TIGER_REFERENCE = "Su 2023, Tiger: a tight-fisted optimizer (github.com/bojone/tiger)"
TIGER_SHRINK = 0.99
"""How far the non-finite-gradient guard pulls parameters towards their centre."""


class Lion(SignDescent):
    """Lion: move every coordinate by ``lr`` in the direction of a momentum/gradient blend.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (3-10x below AdamW's).
        betas: ``(beta1, beta2)``: the blend used for the update and the momentum's decay.
        weight_decay: decoupled weight decay (3-10x above AdamW's).
    """

    momentum_first = False  # the sign of a blend taken before the momentum moves

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        check_hyperparameters(lr, weight_decay, betas)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    def group_betas(self, group: dict[str, Any]) -> tuple[float, float]:
        """``(beta1, beta2)``: the update's blend and the momentum's decay."""
        beta1, beta2 = group["betas"]
        return beta1, beta2


class Tiger(SignDescent):
    """Tiger: Lion with one beta, so the update is the sign of the momentum itself.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        beta: momentum decay (0.945 for vision, 0.965 for language).
        weight_decay: decoupled weight decay.
        nan_guard: skip a step whose gradients are not all finite and shrink the parameters
            towards their initial centre instead (see the module docstring).
        shrink: the guard's shrink factor.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        beta: float = 0.945,
        weight_decay: float = 0.0,
        nan_guard: bool = False,
        shrink: float = TIGER_SHRINK,
    ) -> None:
        check_hyperparameters(lr, weight_decay, [beta])
        if not 0.0 < shrink <= 1.0:
            raise ValueError(f"shrink must be in (0, 1], got {shrink}")
        defaults = {
            "lr": lr, "beta": beta, "weight_decay": weight_decay, "nan_guard": bool(nan_guard),
            "shrink": shrink,
        }
        super().__init__(params, defaults)

    def group_betas(self, group: dict[str, Any]) -> tuple[float, float]:
        """Tiger's one beta, for both the update and the momentum."""
        return group["beta"], group["beta"]

    def batches_to_step(self, batches: Iterator[Batch]) -> Iterable[Batch]:
        """All groups; none if the guard is on and a gradient is not finite (then shrink)."""
        collected = list(batches)
        if any(group["nan_guard"] for group in self.param_groups):
            for _, params, _, _ in collected:
                for param in params:
                    state = self.state[param]
                    if "centre" not in state:
                        state["centre"] = param.detach().mean()
            all_grads = [grad for _, _, grads, _ in collected for grad in grads]
            if all_grads and not self._all_finite(all_grads):
                for group, params, _, _ in collected:
                    for param in params:
                        centre = self.state[param]["centre"]
                        param.sub_(centre).mul_(group["shrink"]).add_(centre)
                return []
        return collected

    @staticmethod
    def _all_finite(grads: list[torch.Tensor]) -> bool:
        """Whether every gradient is finite: a NaN or an infinity shows in its min or max.

        One ``aminmax`` pass per tensor and one device synchronisation per step; exact (no
        overflowing sum or norm), and much faster on CPU than an infinity norm.
        """
        extremes = [value for grad in grads if grad.numel() for value in torch.aminmax(grad)]
        if not extremes:
            return True
        device = extremes[0].device
        return bool(torch.stack([value.to(device) for value in extremes]).isfinite().all())


def _build_lion(params: list[torch.Tensor], hp: dict[str, Any]) -> Lion:
    return Lion(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]),
                weight_decay=hp["weight_decay"])


def _build_tiger(params: list[torch.Tensor], hp: dict[str, Any]) -> Tiger:
    return Tiger(params, lr=hp["lr"], beta=hp["beta"], weight_decay=hp["weight_decay"],
                 nan_guard=hp["nan_guard"])


def _build_tiger_batched(groups: list[dict], hp: dict[str, Any]) -> Any:
    return build_tiger(groups, hp, shrink=TIGER_SHRINK)


LION = OptimizerPlugin(
    name="lion",
    summary="Lion: sign of a momentum/gradient blend; 1 buffer; lr 3-10x below AdamW's.",
    space=[
        Float("lr", 1e-6, 1e-2, default=1e-4, log=True, recommended=1e-4,
              help="3-10x smaller than AdamW's"),
        Float("beta1", 0.5, 0.99, default=0.9, recommended=0.9,
              help="blend of momentum and gradient in the update"),
        Float("beta2", 0.9, 0.9999, default=0.99, recommended=0.99,
              help="decay of the momentum"),
        Float("weight_decay", 0.0, 2.0, default=0.1, recommended=0.1,
              help="decoupled; 3-10x larger than AdamW's (0.1-1)"),
    ],
    build=_build_lion,
    build_batched=build_lion,
    state_multiple=1,
    reference=LION_REFERENCE,
    # the paper's language-model settings: betas (0.95, 0.98) for stability
    presets={"sequence": {"beta1": 0.95, "beta2": 0.98}},
)

TIGER = OptimizerPlugin(
    name="tiger",
    summary="Tiger: Lion with beta1 = beta2; sign of the momentum; optional NaN guard.",
    space=[
        Float("lr", 1e-6, 1e-2, default=1e-4, log=True, recommended=1e-4,
              help="as Lion's: 3-10x smaller than AdamW's"),
        Float("beta", 0.8, 0.999, default=0.945, recommended=0.945,
              help="0.945 for vision, 0.965 for language"),
        Float("weight_decay", 0.0, 2.0, default=0.01, recommended=0.01, help="decoupled"),
        Categorical("nan_guard", (False, True), default=False, recommended=False,
                    help=f"on a non-finite gradient: skip, shrink by {TIGER_SHRINK} to centre"),
    ],
    build=_build_tiger,
    build_batched=_build_tiger_batched,
    state_multiple=1,
    reference=TIGER_REFERENCE,
    presets={"vision": {"beta": 0.945}, "sequence": {"beta": 0.965}},  # the author's advice
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register Lion and Tiger."""
    register(LION)
    register(TIGER)
