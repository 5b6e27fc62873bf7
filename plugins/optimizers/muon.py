"""Muon: orthogonalised momentum for the hidden weight matrices, AdamW for every other parameter.

Muon (Jordan et al. 2024) replaces each hidden matrix's momentum update by the nearest
semi-orthogonal matrix (five Newton-Schulz iterations), so that every direction of the matrix
moves by about the same amount. It is meant for the matrices between a network's input and its
output only: the standard recipe trains embeddings (a 2-D position table too), the output head,
biases, normalisation weights and convolution kernels with AdamW. torch 2.13's ``torch.optim.Muon``
refuses any parameter that is not 2-D, and an empty list.

So the split goes by each parameter's role, not its shape: the plugin ``splits_by_role``, and
the training loop hands it the task's hidden matrices (:meth:`tuner.task.contract.Task.
hidden_matrices`) in groups marked ``hidden`` and the rest in groups marked ``other``
(:func:`tuner.plugin.optimizer.split_by_role`). A task with no hidden matrix refuses it.

The lr convention is Moonlight's, ``adjust_lr_fn="match_rms_adamw"`` (Liu et al. 2025, "Muon is
Scalable for LLM Training", arXiv:2502.16982): each matrix's step is scaled by
``0.2 * sqrt(max(rows, cols))`` so that its RMS matches a typical AdamW update, and AdamW's lr
and weight decay carry over. (torch's default, Keller Jordan's ``sqrt(max(1, rows / cols))``,
wants an lr about 10-20x larger: 0.02.) The plugin declares it as its ``lr_meaning``, so the
advice names the convention wherever it compares Muon's lr with another optimizer's.

The space covers both parts: ``lr``, ``momentum``, ``weight_decay``, ``nesterov`` and
``ns_steps`` are Muon's; ``adamw_lr``, ``adamw_beta1``, ``adamw_beta2`` and
``adamw_weight_decay`` those of the AdamW that trains the rest. State: Muon's momentum buffer
(1 per hidden element), AdamW's two moments (2 per other element).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.optimizer import HIDDEN, ROLE_KEY, OptimizerPlugin, TensorState
from tuner.plugin.space import Categorical, Float, Int
from tuner_plugins.optimizers.torch_optim import fastest_implementation

ADJUST_LR_FN = "match_rms_adamw"
"""torch's ``adjust_lr_fn`` the plugin uses: its lr carries over from AdamW."""

REFERENCE = (
    "Jordan et al. 2024, Muon: An optimizer for hidden layers in neural networks "
    "(kellerjordan.github.io/posts/muon); Liu et al. 2025, Muon is Scalable for LLM Training, "
    "arXiv:2502.16982 (the lr convention); torch.optim.Muon"
)


class MuonWithAdamW(torch.optim.Optimizer):
    """torch's Muon over the hidden groups and torch's AdamW over the others, as one optimizer.

    ``param_groups`` holds both optimizers' groups (Muon's first) as the same dicts they step
    with, and ``state`` is the one both write into, so learning-rate schedules, ``zero_grad``,
    ``state_dict``/``load_state_dict`` and the state-size count see a single optimizer.

    Args:
        hidden: the parameter groups of hidden matrices (2-D each).
        other: the other parameter groups (may be empty).
        muon: keyword arguments of ``torch.optim.Muon``.
        adamw: keyword arguments of ``torch.optim.AdamW``.
    """

    def __init__(
        self,
        hidden: list[dict[str, Any]],
        other: list[dict[str, Any]],
        muon: Mapping[str, Any],
        adamw: Mapping[str, Any],
    ) -> None:
        self.muon = torch.optim.Muon(hidden, **muon)
        self.adamw = torch.optim.AdamW(other, **adamw) if other else None
        inner = [self.muon] + ([self.adamw] if self.adamw is not None else [])
        super().__init__([group for opt in inner for group in opt.param_groups], {})
        self._link()

    def _link(self) -> None:
        """Point both inner optimizers at this one's groups and state."""
        count = len(self.muon.param_groups)
        self.muon.param_groups = self.param_groups[:count]
        self.muon.state = self.state
        if self.adamw is not None:
            self.adamw.param_groups = self.param_groups[count:]
            self.adamw.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._link()  # loading replaced the group dicts and the state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        if self.adamw is not None:
            self.adamw.step()
        return loss


def _without_role(groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in group.items() if k != ROLE_KEY} for group in groups]


def build_muon(groups: list[dict[str, Any]], hp: Mapping[str, Any]) -> MuonWithAdamW:
    """Muon over the groups marked hidden, AdamW (its fastest implementation) over the rest."""
    hidden = _without_role(g for g in groups if g[ROLE_KEY] == HIDDEN)
    other = _without_role(g for g in groups if g[ROLE_KEY] != HIDDEN)
    muon = {"lr": hp["lr"], "momentum": hp["momentum"], "weight_decay": hp["weight_decay"],
            "nesterov": hp["nesterov"], "ns_steps": hp["ns_steps"],
            "adjust_lr_fn": ADJUST_LR_FN}
    adamw = {"lr": hp["adamw_lr"], "betas": (hp["adamw_beta1"], hp["adamw_beta2"]),
             "weight_decay": hp["adamw_weight_decay"]}
    if other:
        adamw.update(fastest_implementation(torch.optim.AdamW, other))
    return MuonWithAdamW(hidden, other, muon, adamw)


def muon_state_elements(shape: tuple[int, ...], role: str) -> float:
    """Muon's momentum buffer for a hidden matrix, AdamW's two moments for anything else."""
    return float(math.prod(shape) * (1 if role == HIDDEN else 2))


MUON = OptimizerPlugin(
    name="muon",
    summary="Muon on the hidden matrices (orthogonalised momentum), AdamW on the rest; "
    "AdamW-matched lr.",
    space=[
        Float("lr", 1e-5, 1e-1, default=1e-3, log=True, recommended=1e-3,
              help="Muon's, match_rms_adamw: AdamW's lr carries over (Moonlight)"),
        Float("momentum", 0.8, 0.99, default=0.95, recommended=0.95,
              help="Jordan, torch: 0.95"),
        Float("weight_decay", 0.0, 0.2, default=0.1, recommended=0.1,
              help="decoupled, hidden matrices (Moonlight, torch: 0.1)"),
        Categorical("nesterov", (True, False), default=True, help="Jordan, torch: Nesterov"),
        Int("ns_steps", 3, 8, default=5, recommended=5, help="Newton-Schulz iterations (5)"),
        Float("adamw_lr", 1e-5, 1e-1, default=1e-3, log=True, recommended=1e-3,
              help="AdamW's, for embeddings, head, biases, norms"),
        Float("adamw_beta1", 0.5, 0.99, default=0.9, recommended=0.9),
        Float("adamw_beta2", 0.9, 0.9999, default=0.95, recommended=0.95,
              help="Moonlight, modded-nanogpt: 0.95"),
        Float("adamw_weight_decay", 0.0, 0.2, default=0.0, recommended=0.0,
              help="decoupled, the other parameters"),
    ],
    build=build_muon,
    state_multiple=TensorState(muon_state_elements, "1n hidden + 2n other"),
    lr_meaning=f"muon/{ADJUST_LR_FN}",
    splits_by_role=True,
    reference=REFERENCE,
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register Muon."""
    register(MUON)
