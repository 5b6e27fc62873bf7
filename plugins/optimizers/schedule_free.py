"""Schedule-Free AdamW: AdamW without a learning-rate schedule, evaluated at averaged weights.

Defazio et al. 2024, "The Road Less Scheduled" (arXiv:2405.15682; the AlgoPerf 2024 self-tuning
track winner). Three sequences replace the schedule::

    y_t     = (1 - beta1) * z_t + beta1 * x_t          gradients are taken here (training)
    z_{t+1} = z_t - lr_t * (g_t / (sqrt(v_t) + eps) + weight_decay * y_t)
    x_{t+1} = (1 - c_{t+1}) * x_t + c_{t+1} * z_{t+1}  evaluated here
    c_{t+1} = w_t / sum_{i <= t} w_i,   w_t = (t + 1)^r * (max_{i <= t} lr_i)^weight_lr_power

with ``v_t`` Adam's second moment, ``lr_t = lr * warmup(t) * sqrt(1 - beta2^(t+1))`` and a
linear warm-up over ``warmup_steps``. The reference defaults are ``r = 0`` and
``weight_lr_power = 2``.

The parameters hold ``y`` while training and ``x`` while evaluating: :meth:`eval` and
:meth:`train` switch between the two (``x = (y - (1 - beta1) z) / beta1``), which the training
loop calls through :func:`tuner.plugin.optimizer.eval_mode` /
:func:`~tuner.plugin.optimizer.train_mode`. State per parameter: ``z`` and ``exp_avg_sq`` (2n);
``x`` is never stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.space import Float, Int
from tuner.training.batched.schedule_free import BatchedScheduleFreeAdamW
from tuner_plugins.optimizers._blocks import (
    block_elements,
    group_by_device_and_dtype,
    split_into_blocks,
)

REFERENCE = "Defazio et al. 2024, The Road Less Scheduled, arXiv:2405.15682"


class AdamWScheduleFree(torch.optim.Optimizer):
    """Schedule-Free AdamW; call :meth:`eval` before evaluating and :meth:`train` after.

    Args:
        params: parameters or parameter groups.
        lr: peak learning rate (reached after ``warmup_steps``).
        betas: ``(beta1, beta2)``: beta1 interpolates between z and x, beta2 is Adam's.
        eps: added to the square root of the second moment.
        weight_decay: decoupled weight decay, applied at y.
        warmup_steps: steps of linear learning-rate warm-up.
        r: power of the step count in the averaging weights.
        weight_lr_power: power of the largest learning rate so far in the averaging weights.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2.5e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not (0.0 < betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in (0, 1) and [0, 1), got {betas}")
        if not weight_decay >= 0.0 or warmup_steps < 0:
            raise ValueError("weight decay and warmup steps must be >= 0")
        defaults = {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "warmup_steps": int(warmup_steps), "r": r, "weight_lr_power": weight_lr_power,
            "k": 0, "train_mode": True, "weight_sum": 0.0, "lr_max": -1.0, "scheduled_lr": 0.0,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def eval(self) -> None:
        """Put the averaged weights x into the parameters (no-op if already evaluating)."""
        for group in self.param_groups:
            if group["train_mode"]:
                beta1 = group["betas"][0]
                params, zs = self._with_state(group)
                if params:
                    torch._foreach_lerp_(params, zs, 1.0 - 1.0 / beta1)
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Put the training weights y back into the parameters; the inverse of :meth:`eval`."""
        for group in self.param_groups:
            if not group["train_mode"]:
                beta1 = group["betas"][0]
                params, zs = self._with_state(group)
                if params:
                    torch._foreach_lerp_(params, zs, 1.0 - beta1)
                group["train_mode"] = True

    def _with_state(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        pairs = [(p, self.state[p]["z"]) for p in group["params"] if "z" in self.state.get(p, {})]
        return [p for p, _ in pairs], [z for _, z in pairs]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Take one step at y; raises if the optimizer is in evaluation mode."""
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(
                "AdamWScheduleFree.step() called in evaluation mode: call optimizer.train() first"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        k = group["k"]
        warmup = group["warmup_steps"]
        schedule = (k + 1) / warmup if k < warmup else 1.0
        bias_correction2 = 1.0 - beta2 ** (k + 1)
        lr = float(group["lr"]) * schedule * math.sqrt(bias_correction2)
        lr_max = group["lr_max"] = max(lr, group["lr_max"])
        weight = (k + 1) ** group["r"] * lr_max ** group["weight_lr_power"]
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        average_weight = weight / weight_sum if weight_sum != 0.0 else 0.0
        group["scheduled_lr"] = lr

        ys, grads, zs, squares = [], [], [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError("AdamWScheduleFree does not support sparse gradients")
            state = self.state[param]
            if "z" not in state:
                state["z"] = param.detach().clone(memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            ys.append(param)
            grads.append(param.grad)
            zs.append(state["z"])
            squares.append(state["exp_avg_sq"])
        if ys:
            self._update(ys, grads, zs, squares, lr=lr, average_weight=average_weight,
                         beta1=beta1, beta2=beta2, eps=group["eps"], decay=group["weight_decay"])
        group["k"] = k + 1

    def _update(
        self,
        ys: list[torch.Tensor],
        grads: list[torch.Tensor],
        zs: list[torch.Tensor],
        squares: list[torch.Tensor],
        *,
        lr: float,
        average_weight: float,
        beta1: float,
        beta2: float,
        eps: float,
        decay: float,
    ) -> None:
        """Update v, z and y in place, block by block, without forming x.

        With ``d = g / (sqrt(v) + eps) + decay * y_t`` and ``c`` the averaging weight, the paper's
        sequences give ``z' = z - lr d`` and, substituting x = (y - (1 - beta1) z) / beta1,
        ``y' = (1 - c) y + c z' - lr (1 - beta1) (1 - c) d``.
        """
        shrink = lr * (1.0 - beta1) * (1.0 - average_weight)
        for part in group_by_device_and_dtype([ys, grads, zs, squares]):
            for y, g, z, v in split_into_blocks(part, block_elements(part[0][0].device)):
                torch._foreach_mul_(v, beta2)
                torch._foreach_addcmul_(v, g, g, value=1.0 - beta2)
                denominators = torch._foreach_sqrt(v)
                torch._foreach_add_(denominators, eps)
                if decay != 0.0:
                    torch._foreach_add_(z, y, alpha=-lr * decay)
                torch._foreach_addcdiv_(z, g, denominators, value=-lr)
                if decay != 0.0:
                    torch._foreach_mul_(y, 1.0 - average_weight - shrink * decay)
                    torch._foreach_add_(y, z, alpha=average_weight)
                else:
                    torch._foreach_lerp_(y, z, average_weight)
                torch._foreach_addcdiv_(y, g, denominators, value=-shrink)


def _build(params: list[torch.Tensor], hp: dict[str, Any]) -> AdamWScheduleFree:
    return AdamWScheduleFree(
        params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), weight_decay=hp["weight_decay"],
        warmup_steps=hp["warmup_steps"], r=hp["r"], weight_lr_power=hp["weight_lr_power"],
    )


SCHEDULE_FREE_ADAMW = OptimizerPlugin(
    name="schedulefree-adamw",
    summary="Schedule-Free AdamW: no lr schedule; evaluates at averaged weights (eval/train).",
    space=[
        Float("lr", 1e-5, 1e-1, default=2.5e-3, log=True, recommended=2.5e-3,
              help="peak lr; the reference default 0.0025"),
        Float("beta1", 0.5, 0.99, default=0.9, recommended=0.9, help="y between z and x"),
        Float("beta2", 0.9, 0.9999, default=0.999, recommended=0.999),
        Float("weight_decay", 0.0, 0.5, default=0.0, recommended=0.0, help="decoupled, at y"),
        Int("warmup_steps", 0, 5000, default=0, recommended=0,
            help="linear lr warm-up inside the optimizer; the paper warms up ~5% of the run"),
        Float("r", 0.0, 2.0, default=0.0, recommended=0.0, help="step-count power of averaging"),
        Float("weight_lr_power", 0.0, 4.0, default=2.0, recommended=2.0,
              help="lr power of averaging"),
    ],
    build=_build,
    build_batched=BatchedScheduleFreeAdamW,
    state_multiple=2,
    reference=REFERENCE,
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register Schedule-Free AdamW."""
    register(SCHEDULE_FREE_ADAMW)
