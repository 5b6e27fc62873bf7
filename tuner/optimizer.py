"""The optimizer plugin contract: what a plugin declares, and how tuner builds and drives it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.space import SearchSpace

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class OptimizerPlugin:
    """One optimizer that tuner can tune.

    Attributes:
        name: lower-case name used on the command line (``adamw``, ``lion``).
        summary: one line for ``tuner optimizers list``.
        space: the search space (a :class:`~tuner.space.SearchSpace` or a list of parameters).
            ``lr`` should be its first parameter: the advice speaks of learning rates.
        build: ``build(params, hyperparams) -> torch.optim.Optimizer``. ``params`` is the model's
            parameters (a list of tensors); ``hyperparams`` holds a value for every parameter of
            the space that is active. Build the fastest implementation torch offers for the
            parameters' device: ``fused=True`` where torch supports it, otherwise whichever of
            ``foreach=True`` and the single-tensor loop measures faster.
        state_multiple: optimizer-state size as a multiple of the parameter count (SGD 0,
            momentum 1, Adam 2, AMSGrad 3): the advice reports memory from it, and the
            conformance tests measure it.
        needs_closure: ``step`` must be given a closure that re-evaluates the loss (L-BFGS).
        full_batch_only: only meaningful on full-batch tasks (L-BFGS).
        reference: the paper or documentation it follows.

    An optimizer that evaluates at different weights from the ones it trains (Schedule-Free)
    defines ``eval()`` and ``train()`` methods on the optimizer object; the training loop calls
    them around every evaluation through :func:`eval_mode` and :func:`train_mode`. For every other
    optimizer those are no-ops.
    """

    name: str
    summary: str
    space: SearchSpace
    build: Callable[[list[torch.Tensor], Mapping[str, Any]], torch.optim.Optimizer]
    state_multiple: float
    needs_closure: bool = False
    full_batch_only: bool = False
    reference: str = ""
    plugin: str = field(default="", compare=False)
    version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.space, SearchSpace):
            object.__setattr__(self, "space", SearchSpace(self.space))

    def create(
        self, params: Iterable[torch.Tensor], hyperparams: Mapping[str, Any] | None = None
    ) -> torch.optim.Optimizer:
        """Check ``hyperparams`` against the space, fill in defaults, and build the optimizer."""
        values = self.space.complete(hyperparams or {}, owner=self.name)
        return self.build(list(params), values)


@dataclass(frozen=True)
class OptimizerWrapper:
    """An optimizer built around any other one (Lookahead): ``NAME-INNER`` selects it.

    Attributes:
        name: the prefix (``lookahead`` makes ``lookahead-adamw``).
        summary: one line for ``tuner optimizers list``.
        wrap: ``wrap(inner) -> OptimizerPlugin`` returning the combined plugin, named
            ``f"{name}-{inner.name}"``, with the inner space plus the wrapper's own parameters.
    """

    name: str
    summary: str
    wrap: Callable[[OptimizerPlugin], OptimizerPlugin]
    plugin: str = field(default="", compare=False)
    version: str = field(default="", compare=False)


def eval_mode(optimizer: Any) -> None:
    """Switch an optimizer to its evaluation weights, if it has any (Schedule-Free)."""
    switch = getattr(optimizer, "eval", None)
    if callable(switch):
        switch()


def train_mode(optimizer: Any) -> None:
    """Switch an optimizer back to its training weights; the inverse of :func:`eval_mode`."""
    switch = getattr(optimizer, "train", None)
    if callable(switch):
        switch()


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in the optimizer's state by tensors with at least one dimension.

    Scalars (step counters, L-BFGS's curvature scalars) are left out: the figure is meant to
    be compared with the parameter bytes (``state_multiple``).
    """
    import torch

    def size(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size() if value.dim() > 0 else 0
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        return 0

    return sum(size(state) for state in optimizer.state.values())
