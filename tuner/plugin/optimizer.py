"""The optimizer plugin contract: what a plugin declares, and how tuner builds and drives it."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner.plugin.space import SearchSpace, SpaceError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class OptimizerPlugin:
    """One optimizer that tuner can tune.

    Attributes:
        name: lower-case name used on the command line (``adamw``, ``lion``).
        summary: one line for ``tuner optimizers list``.
        space: the search space (a :class:`~tuner.plugin.space.SearchSpace` or a list of
            parameters). ``lr`` should be its first parameter: the advice speaks of learning rates.
        build: ``build(params, hyperparams) -> torch.optim.Optimizer``. ``params`` is the model's
            parameters as torch parameter groups, ``[{"params": [tensors]}]``, with a second
            group ``{"params": [...], "weight_decay": 0.0}`` when the run excludes biases and
            normalisation parameters from weight decay (pass it to a ``torch.optim.Optimizer``
            subclass as is: it takes groups; :func:`parameters_of` lists the tensors);
            ``hyperparams`` holds a value for every parameter of the space that is active.
            Build the fastest implementation torch offers for the parameters' device:
            ``fused=True`` where torch supports it, otherwise whichever of ``foreach=True`` and
            the single-tensor loop measures faster.
        state_multiple: optimizer-state size as a multiple of the parameter count (SGD 0,
            momentum 1, Adam 2, AMSGrad 3), or a callable ``n -> multiple`` for a state that
            grows with the parameter count ``n`` (a dense n x n matrix: see
            :class:`MatrixState`), or a :class:`ShapeState` for one that grows with each
            parameter's shape (SOAP's and Shampoo's per-side preconditioners, CAME's factored
            moments); :meth:`state_multiple_for` reads any of them. The conformance tests
            measure it; the advice reports the measured bytes.
        needs_closure: ``step`` must be given a closure that re-evaluates the loss (L-BFGS).
        full_batch_only: only meaningful on full-batch tasks (L-BFGS).
        reference: the paper or documentation it follows.
        wants_flat_loss: the training loop passes ``step`` a
            :class:`~tuner.plugin.objective.FlatObjective`, the loss as a function of the flat
            parameter vector (values, gradients, the Hessian; every evaluation counted), in
            place of the closure. For second-order and line-search methods (Newton, BFGS,
            conjugate gradient). The objective is also callable as an ordinary closure.
        max_params: the most parameters the optimizer handles (Newton's dense Hessian); a
            training run of a larger model is refused with one line before the first step.
        presets: recommended values per task kind (``{"sequence": {"beta": 0.965}}``), over
            the space's recommended values: a study's recommended trial on a task of that kind
            uses them (:meth:`recommended_for`). Each value must fit the space.
        lr_meaning: what ``lr`` is: a ``step size``, or a ``multiplier`` (lr-free Prodigy).
        requires: a package the optimizer's ``build`` imports beyond tuner's own dependencies
            (:class:`Requirement`); where it is not installed the optimizer is listed as such,
            with the line that installs it, instead of being registered.
        build_batched: ``build_batched(groups, hp) ->``
            :class:`~tuner.training.batched.optimizers.BatchedOptimizer`, the same update for K
            configurations at once (batched trials): ``groups`` holds parameters stacked along
            a leading dimension of size K, ``hp`` every float hyperparameter as a tensor of
            shape ``(K,)`` and the others as plain values, equal for all K. Optional: a plugin
            without it runs unbatched. :func:`tuner.testing.batched_difference` checks it
            against ``build``.

    An optimizer that evaluates at different weights from the ones it trains (Schedule-Free)
    defines ``eval()`` and ``train()`` methods on the optimizer object; the training loop calls
    them around every evaluation through :func:`eval_mode` and :func:`train_mode`. For every other
    optimizer those are no-ops.
    """

    name: str
    summary: str
    space: SearchSpace
    build: Callable[[list[torch.Tensor], Mapping[str, Any]], torch.optim.Optimizer]
    state_multiple: float | Callable[[int], float]
    needs_closure: bool = False
    full_batch_only: bool = False
    reference: str = ""
    plugin: str = field(default="", compare=False)
    version: str = field(default="", compare=False)
    wants_flat_loss: bool = False
    max_params: int | None = None
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    build_batched: Callable[[list[dict], Mapping[str, Any]], Any] | None = None  # BatchedOptimizer
    lr_meaning: str = "step size"
    requires: Requirement | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.space, SearchSpace):
            object.__setattr__(self, "space", SearchSpace(self.space))

    def state_multiple_at(self, param_count: int) -> float:
        """The declared optimizer-state size, as a multiple of the parameter count, for a
        model of ``param_count`` parameters (a :class:`ShapeState` needs the shapes:
        :meth:`state_multiple_for`)."""
        multiple = self.state_multiple
        if isinstance(multiple, ShapeState):
            raise TypeError(f"optimizer {self.name!r}: its state grows with the parameters' "
                            f"shapes ({multiple}); use state_multiple_for(shapes)")
        return float(multiple(param_count) if callable(multiple) else multiple)

    def state_multiple_for(self, shapes: Sequence[Sequence[int]]) -> float:
        """The declared optimizer-state size, as a multiple of the parameter count, for a
        model whose parameters have these ``shapes``."""
        if isinstance(self.state_multiple, ShapeState):
            return self.state_multiple.multiple(shapes)
        return self.state_multiple_at(sum(math.prod(shape) for shape in shapes))

    @property
    def state_text(self) -> str:
        """The declared state size for people: ``2n``, ``n^2 + 2n``."""
        multiple = self.state_multiple
        if isinstance(multiple, (MatrixState, ShapeState)):
            return str(multiple)
        if callable(multiple):
            return "f(n)"
        return f"{multiple:g}n"

    def check_presets(self, owner: str) -> None:
        """Raise :class:`~tuner.plugin.space.SpaceError` naming ``owner`` for a preset of an
        unknown
        task kind or a value the space does not accept."""
        from tuner.task.contract import KINDS

        for kind, values in self.presets.items():
            if kind not in KINDS:
                raise SpaceError(
                    f"{owner}: preset for unknown task kind {kind!r}; the kinds are: "
                    + ", ".join(KINDS)
                )
            self.space.complete(values, owner=f"{owner}: preset {kind!r}",
                                fallback=self.space.recommended())

    def recommended_for(self, kind: str | None, space: SearchSpace | None = None) -> dict:
        """The recommended configuration on a task of ``kind``: the space's recommended values
        with the kind's preset put over them.

        ``space`` is the space to take it from (a study's, with narrowed ranges: a preset value
        outside them is left out).
        """
        space = space if space is not None else self.space
        recommended = space.recommended()
        preset = dict(self.presets.get(kind, {})) if kind else {}
        usable = {}
        for name, value in preset.items():
            try:
                space.complete({**usable, name: value}, fallback=recommended)
            except SpaceError:
                continue
            usable[name] = value
        return space.complete(usable, fallback=recommended)

    def create(
        self, params: Iterable[torch.Tensor], hyperparams: Mapping[str, Any] | None = None
    ) -> torch.optim.Optimizer:
        """Check ``hyperparams`` against the space, fill in defaults, and build the optimizer."""
        values = self.space.complete(hyperparams or {}, owner=self.name)
        return self.build(list(params), values)


@dataclass(frozen=True)
class MatrixState:
    """A state that grows with the parameter count ``n``: ``matrices`` dense n x n matrices plus
    ``vectors`` vectors of length n, so ``matrices * n + vectors`` times the parameters.

    Use it as ``state_multiple`` (BFGS keeps its inverse-Hessian approximation and two
    vectors: ``MatrixState(1, 2)``). Adding a number adds vectors (a wrapper's own buffers).
    """

    matrices: float = 1.0
    vectors: float = 0.0

    def __call__(self, param_count: int) -> float:
        return self.matrices * param_count + self.vectors

    def __add__(self, vectors: float) -> MatrixState:
        return replace(self, vectors=self.vectors + vectors)

    __radd__ = __add__

    def __str__(self) -> str:
        matrices = "n^2" if self.matrices == 1 else f"{self.matrices:g}n^2"
        return matrices + (f" + {self.vectors:g}n" if self.vectors else "")


@dataclass(frozen=True)
class ShapeState:
    """A state that grows with each parameter's shape rather than with the parameter count:
    per-side preconditioner matrices (SOAP, Shampoo: ``d x d`` for every side ``d`` of a
    matrix), or row and column statistics (CAME's factored second moment).

    Use it as ``state_multiple``. ``elements(shape)`` is the number of state elements the
    optimizer keeps for one parameter of that shape (scalars left out, as
    :func:`optimizer_state_bytes` leaves them out); :meth:`multiple` sums it over a model's
    parameters and divides by their count. Adding a number adds vectors (a wrapper's own
    buffers), as for :class:`MatrixState`.

    Attributes:
        elements: ``elements(shape) -> int``, a module-level function (plugins are compared
            and may be pickled).
        text: how it grows, for people (``2n + 2 sum d^2 per matrix side``).
        vectors: vectors of length n added to it.
    """

    elements: Callable[[tuple[int, ...]], float]
    text: str
    vectors: float = 0.0

    def multiple(self, shapes: Sequence[Sequence[int]]) -> float:
        """State elements over parameter elements for parameters of these ``shapes``."""
        count = sum(math.prod(shape) for shape in shapes)
        kept = sum(self.elements(tuple(shape)) for shape in shapes)
        return kept / count + self.vectors if count else 0.0

    def __add__(self, vectors: float) -> ShapeState:
        return replace(self, vectors=self.vectors + vectors)

    __radd__ = __add__

    def __str__(self) -> str:
        return self.text + (f" + {self.vectors:g}n" if self.vectors else "")


@dataclass(frozen=True)
class Requirement:
    """A package an optimizer needs beyond tuner's own dependencies, and how to install it.

    A plugin module built over an optional package imports it only inside ``build``, so the
    module loads without it; the registry asks :meth:`missing` (which finds the package
    without importing it) and, where it is absent, keeps the optimizer out of the list and
    answers its name with :meth:`message`.

    Attributes:
        module: the import name (``pytorch_optimizer``).
        install: the command that installs it (``pip install "tuner[more-optimizers]"``).
    """

    module: str
    install: str

    def missing(self) -> bool:
        """Whether the package cannot be found here."""
        try:
            return importlib.util.find_spec(self.module) is None
        except (ImportError, ValueError):  # a parent that is not a package; a blocked import
            return True

    def message(self, what: str) -> str:
        """One line: ``what`` needs the package, and the command that installs it."""
        return f"{what} needs the package {self.module!r}, which is not installed: {self.install}"


@dataclass(frozen=True)
class OptimizerWrapper:
    """An optimizer built around any other one (Lookahead): ``NAME-INNER`` selects it.

    Attributes:
        name: the prefix (``lookahead`` makes ``lookahead-adamw``).
        summary: one line for ``tuner optimizers list``.
        wrap: ``wrap(inner) -> OptimizerPlugin`` returning the combined plugin, named
            ``f"{name}-{inner.name}"``, with the inner space plus the wrapper's own parameters.
        added_state: the state the wrapper keeps on top of the inner optimizer's, in multiples
            of the parameter count (Lookahead's slow weights: 1), for ``tuner optimizers list``.
    """

    name: str
    summary: str
    wrap: Callable[[OptimizerPlugin], OptimizerPlugin]
    plugin: str = field(default="", compare=False)
    version: str = field(default="", compare=False)
    added_state: float = 1.0


def parameters_of(params: Iterable[Any]) -> list[torch.Tensor]:
    """The tensors of ``params``: a list of tensors, or of parameter groups (dicts)."""
    found: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, Mapping):
            found.extend(item["params"])
        else:
            found.append(item)
    return found


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
