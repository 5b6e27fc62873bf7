"""The builders of the more-optimizers plugin: pytorch_optimizer's classes from a space's values.

Imported only when one of those optimizers is built (:mod:`tuner_plugins.optimizers.more`'s
``build``), so that the plugin loads, and the rest of tuner works, without pytorch_optimizer.
Each function takes ``(params, hp)`` as a plugin's ``build`` does and maps the space's names
(``beta1``, ``beta2``, ``beta3``) onto the class's arguments (``betas``); whatever the space
does not name stays at pytorch_optimizer's default, which the plugin's docstring states.

pytorch_optimizer's element-wise optimizers take their multi-tensor (``foreach``) path wherever
the parameters allow it. On the CPU, where a foreach op is a loop of ordinary kernels, the
per-tensor loop measured faster for all of them but MARS (five 1024x1024 layers, one thread,
ms per step, foreach against per tensor: Adan 69 / 56, ADOPT 47 / 28, AdEMAMix 49 / 38, LAMB
82 / 58, Prodigy 117 / 82, D-Adapt Adam 116 / 103, CAME 78 / 34, MARS 67 / 111), so those
are built with ``foreach=False`` there (:func:`_foreach`); elsewhere pytorch_optimizer decides.

:class:`Kron` is pytorch_optimizer's PSGD Kron with its random draws (the preconditioner's
probe vectors and the coin that rebalances its factors) taken from generators of its own,
seeded 0 and saved in the state dict: a run repeats exactly and resumes exactly, and the
probes do not shift the training's own random draws (dropout). pytorch_optimizer's draws from
torch's and numpy's global generators, which neither a run's seed nor a state dict fixes (the
coin is decided here: pytorch_optimizer's still draws numpy's, whose state is put back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytorch_optimizer
import torch

from tuner.plugin.optimizer import parameters_of

KRON_BALANCE_PROBABILITY = 0.01
"""How often Kron rebalances its factors' norms, per preconditioner update (pytorch_optimizer's
``balance_prob``)."""


def _betas(hp: Mapping[str, Any], *names: str) -> tuple[float, ...]:
    return tuple(hp[name] for name in names)


def _foreach(params: list[Any]) -> bool | None:
    """False (the per-tensor loop) for parameters on the CPU; None (pytorch_optimizer's
    choice) elsewhere. See the module docstring."""
    return False if all(p.device.type == "cpu" for p in parameters_of(params)) else None


def soap(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.SOAP(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2"),
        weight_decay=hp["weight_decay"], precondition_frequency=hp["precondition_frequency"],
    )


SHAMPOO_MAX_SIDE = 4096
"""The longest side Shampoo is built for: it keeps two ``d x d`` matrices per side (134 MB
each at 4096 in float32) and takes an SVD of one of them every step (pytorch_optimizer's plain
Shampoo has no cap; SOAP and Kron cap theirs)."""


def shampoo(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    longest = max((side for p in parameters_of(params) for side in p.shape), default=0)
    if longest > SHAMPOO_MAX_SIDE:
        raise ValueError(
            f"shampoo keeps two d x d matrices per side and takes an SVD every step: a side of "
            f"{longest} is above its limit of {SHAMPOO_MAX_SIDE} (soap and kron cap theirs)"
        )
    return pytorch_optimizer.Shampoo(
        params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"],
        matrix_eps=hp["matrix_eps"],
        preconditioning_compute_steps=hp["preconditioning_compute_steps"],
    )


def kron(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return Kron(params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"])


def ademamix(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.AdEMAMix(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2", "beta3"), alpha=hp["alpha"],
        t_alpha_beta3=hp["t_alpha_beta3"], weight_decay=hp["weight_decay"],
        weight_decouple=True, foreach=_foreach(params),
    )


def prodigy(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.Prodigy(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2"), d_coef=hp["d_coef"],
        weight_decay=hp["weight_decay"], safeguard_warmup=hp["safeguard_warmup"],
        bias_correction=hp["bias_correction"], foreach=_foreach(params),
    )


def dadapt_adam(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.DAdaptAdam(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2"),
        weight_decay=hp["weight_decay"],
        weight_decouple=hp.get("decoupled_weight_decay", False), foreach=_foreach(params),
    )


def mars(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.MARS(
        params, lr=hp["lr"], lr_1d=hp["lr"] / 2, betas=_betas(hp, "beta1", "beta2"),
        gamma=hp["gamma"], weight_decay=hp["weight_decay"],
    )


def came(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.CAME(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2", "beta3"),
        weight_decay=hp["weight_decay"], foreach=_foreach(params),
    )


def adan(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.Adan(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2", "beta3"),
        weight_decay=hp["weight_decay"], foreach=_foreach(params),
    )


def adopt(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.ADOPT(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2"), eps=hp["eps"],
        weight_decay=hp["weight_decay"],
        weight_decouple=hp.get("decoupled_weight_decay", False), foreach=_foreach(params),
    )


def lamb(params: list[Any], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    return pytorch_optimizer.Lamb(
        params, lr=hp["lr"], betas=_betas(hp, "beta1", "beta2"), eps=hp["eps"],
        weight_decay=hp["weight_decay"], foreach=_foreach(params),
    )


BUILDERS: dict[str, Callable[[list[Any], Mapping[str, Any]], torch.optim.Optimizer]] = {
    "soap": soap, "shampoo": shampoo, "kron": kron, "ademamix": ademamix, "prodigy": prodigy,
    "dadapt-adam": dadapt_adam, "mars": mars, "came": came, "adan": adan, "adopt": adopt,
    "lamb": lamb,
}
"""Each plugin's builder, by the plugin's name."""


def _device_key(device: torch.device) -> str:
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def _seeded_state(key: str) -> torch.Tensor:
    """A generator state for device ``key``, seeded 0."""
    return torch.Generator(device=key).manual_seed(0).get_state()


def _set_global_state(key: str, state: torch.Tensor) -> None:
    if key == "cpu":
        torch.set_rng_state(state)
    else:
        torch.cuda.set_rng_state(state, key)


def _global_state(key: str) -> torch.Tensor:
    return torch.get_rng_state() if key == "cpu" else torch.cuda.get_rng_state(key)


class Kron(pytorch_optimizer.Kron):
    """PSGD Kron whose random draws come from generators of its own (see the module docstring).

    Args:
        params: parameters or parameter groups.
        **kwargs: pytorch_optimizer's ``Kron`` arguments (``balance_prob`` excepted: the
            rebalancing coin is drawn here, with :data:`KRON_BALANCE_PROBABILITY`).
    """

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.random_states: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """pytorch_optimizer's step, with the global generators of the CPU and of the
        parameters' devices set to this optimizer's for its duration, then restored."""
        keys = sorted({"cpu"} | {_device_key(p.device) for group in self.param_groups
                                 for p in group["params"]})
        cuda = [torch.device(key).index for key in keys if key != "cpu"]
        numpy_state = np.random.get_state()  # its coin is decided below; numpy's draw ignored
        with torch.random.fork_rng(devices=cuda):
            for key in keys:
                _set_global_state(key, self.random_states.get(key, _seeded_state(key)))
            coin = float(torch.rand(()))  # from this optimizer's CPU generator
            self.balance_prob = 1.0 if coin < KRON_BALANCE_PROBABILITY else 0.0
            try:
                loss = super().step(closure)
            finally:
                np.random.set_state(numpy_state)
            self.random_states = {key: _global_state(key) for key in keys}
        return loss

    def state_dict(self) -> dict[str, Any]:
        """pytorch_optimizer's state dict, with the generators' states."""
        return {**super().state_dict(), "random_states": dict(self.random_states)}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the state and the generators' states."""
        state_dict = dict(state_dict)
        states = state_dict.pop("random_states", {})
        super().load_state_dict(state_dict)
        self.random_states = {key: state.clone() for key, state in states.items()}
