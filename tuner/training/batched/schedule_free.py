"""Batched Schedule-Free AdamW: K configurations of ``AdamWScheduleFree``, one per slice.

The same sequences as ``tuner_plugins.optimizers.schedule_free`` (Defazio et al. 2024), with every
float hyperparameter (``lr``, ``beta1``, ``beta2``, ``weight_decay``, ``r``,
``weight_lr_power``) per configuration; the averaging weight ``c_t``, the largest learning rate
so far and the running sum of weights are ``(K,)`` vectors per parameter group, computed in
float64 as the unbatched optimizer computes them in Python. ``warmup_steps`` is an integer, so
equal within a batch.

The parameters hold ``y`` while training; :meth:`BatchedScheduleFreeAdamW.eval` puts ``x`` in all
K slices and :meth:`~BatchedScheduleFreeAdamW.train` puts ``y`` back, as the unbatched
optimizer's ``eval()`` and ``train()`` do.

A learning rate of 0 (``lr_scale`` 0) stops ``z`` but not ``y``, which still moves towards ``z``
by the averaging weight: the unbatched optimizer does the same, so this is not a way to freeze a
configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tuner.training.batched.optimizers import BatchedError, BatchedOptimizer


class BatchedScheduleFreeAdamW(BatchedOptimizer):
    """Schedule-Free AdamW for K configurations; :meth:`eval` before evaluating, :meth:`train`
    after.

    Args:
        groups: stacked parameter groups.
        hp: ``lr``, ``beta1``, ``beta2``, ``weight_decay``, ``r``, ``weight_lr_power``
            (``(K,)`` tensors), ``warmup_steps`` (an int) and optional ``eps`` (default 1e-8).
    """

    def __init__(self, groups: list[dict], hp: Mapping[str, Any]) -> None:
        super().__init__(groups, hp)
        self.warmup_steps = int(hp.get("warmup_steps", 0))
        self.train_mode = True
        weight_decay = self.float_hp("weight_decay", 0.0)
        self.decays = weight_decay != 0
        self.has_decay = bool(self.decays.any())
        self.all_decay = bool(self.decays.all())
        zeros = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        for group in self.param_groups:
            group.update(k=0, lr_max=zeros - 1.0, weight_sum=zeros.clone())

    @torch.no_grad()
    def eval(self) -> None:
        """Put the averaged weights ``x`` into the parameters (no-op if already evaluating)."""
        if self.train_mode:
            self._switch(1.0 - 1.0 / self.float_hp("beta1"))
            self.train_mode = False

    @torch.no_grad()
    def train(self) -> None:
        """Put the training weights ``y`` back; the inverse of :meth:`eval`."""
        if not self.train_mode:
            self._switch(1.0 - self.float_hp("beta1"))
            self.train_mode = True

    def _switch(self, weight: torch.Tensor) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                state = self.state.get(param)
                if state is None:
                    continue
                shape = (-1,) + (1,) * (param.dim() - 1)
                param.lerp_(state["z"], weight.to(param.dtype).view(shape))

    def step(self) -> None:
        """One step at ``y``; refused in evaluation mode."""
        if not self.train_mode:
            raise BatchedError(
                "Schedule-Free step() called in evaluation mode: call train() first"
            )
        with torch.no_grad():
            lr = self.learning_rates()
            for group in self.param_groups:
                self._step_group(group, lr)

    def _step_group(self, group: dict[str, Any], base_lr: torch.Tensor) -> None:
        beta1, beta2 = self.float_hp("beta1"), self.float_hp("beta2")
        k = group["k"]
        warmup = self.warmup_steps
        schedule = (k + 1) / warmup if k < warmup else 1.0
        lr = base_lr * schedule * torch.sqrt(1.0 - beta2 ** (k + 1))
        lr_max = group["lr_max"] = torch.maximum(lr, group["lr_max"])
        weight = (k + 1) ** self.float_hp("r", 0.0) * lr_max ** self.float_hp(
            "weight_lr_power", 2.0
        )
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        average = torch.where(weight_sum != 0, weight / weight_sum, 0.0)
        group["k"] = k + 1
        decay = group["decay"] and self.has_decay
        weight_decay = self.float_hp("weight_decay", 0.0)
        shrink = lr * (1.0 - beta1) * (1.0 - average)
        numbers = {
            "beta2": beta2,
            "one_minus_beta2": 1.0 - beta2,
            "eps": self.float_hp("eps", 1e-8),
            "neg_lr": -lr,
            "average": average,
            "neg_shrink": -shrink,
            "neg_lr_decay": -lr * weight_decay,
            "keep": 1.0 - average - shrink * weight_decay,
            "decays": self.decays.to(torch.float64),
        }
        cache: dict[tuple[str, torch.dtype, int], torch.Tensor] = {}

        def at(name: str, like: torch.Tensor) -> torch.Tensor:
            key = (name, like.dtype, like.dim())
            if key not in cache:
                dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
                if name == "average":  # a lerp weight: the tensor's own dtype
                    dtype = like.dtype
                cache[key] = numbers[name].to(dtype).view((-1,) + (1,) * (like.dim() - 1))
            return cache[key]

        for y in group["params"]:
            g = y.grad
            if g is None:
                continue
            if g.is_sparse:
                raise BatchedError("Schedule-Free AdamW does not support sparse gradients")
            state = self.state.get(y)
            if state is None:
                state = self.state[y] = {
                    "step": 0,
                    "z": y.detach().clone(memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(y, memory_format=torch.preserve_format),
                }
            state["step"] += 1
            z, v = state["z"], state["exp_avg_sq"]
            v.mul_(at("beta2", v)).addcmul_(g * at("one_minus_beta2", g), g)
            denominator = v.sqrt().add_(at("eps", v))
            if decay:
                z.addcmul_(y, at("neg_lr_decay", y))
            z.addcdiv_(g * at("neg_lr", g), denominator)
            if not decay:
                y.lerp_(z, at("average", y))
            elif self.all_decay:
                y.mul_(at("keep", y)).addcmul_(z, at("average", y))
            else:  # the configurations without decay take the unbatched optimizer's lerp
                decayed = (y * at("keep", y)).addcmul_(z, at("average", y))
                lerped = torch.lerp(y, z, at("average", y))
                y.copy_(torch.where(at("decays", y) > 0, decayed, lerped))
            y.addcdiv_(g * at("neg_shrink", g), denominator)
