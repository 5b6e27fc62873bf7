"""The optimizer plugin contract: what a plugin declares, and how tuner builds and drives it."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.plugin.space import SearchSpace, SpaceError

if TYPE_CHECKING:
    import torch

STEP_SIZE = "step size"
"""``lr_meaning`` of an optimizer whose ``lr`` is the step size itself (SGD, Adam, Lion)."""
MULTIPLIER = "multiplier"
"""``lr_meaning`` of a learning-rate-free optimizer whose ``lr`` multiplies the step size it
estimates itself (Prodigy, D-Adaptation): 1.0 is its natural value, not a step size."""

HIDDEN = "hidden"
"""The role of a hidden weight matrix (:meth:`tuner.task.contract.Task.hidden_matrices`)."""
OTHER = "other"
"""The role of every other parameter: embeddings, the output head, biases, norms, kernels."""
ROLE_KEY = "role"
"""The key of a parameter group's role, in the groups of an optimizer that splits by role."""


class RoleError(TunerError):
    """An optimizer that trains hidden matrices apart was given none, or no roles at all."""


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
            :class:`MatrixState`), or a :class:`TensorState` for one set by each tensor's shape
            and role (Adafactor's rows and columns, Muon's split); :meth:`state_multiple_at`
            reads each. The conformance tests measure it; the advice reports the measured
            bytes.
        lr_meaning: what the space's ``lr`` is, recorded with every run so that the advice
            compares learning rates only like with like: :data:`STEP_SIZE` (the default),
            :data:`MULTIPLIER` (a learning-rate-free method's factor on its own estimate: left
            out of lr ratios), or a named convention (``muon/match_rms_adamw``: Muon's lr,
            scaled so that its updates match AdamW's RMS), which lr ratios name.
        splits_by_role: ``build`` receives the parameter groups split by the parameters' role
            (:func:`split_by_role`): each group carries ``"role"``, :data:`HIDDEN` for the
            task's hidden weight matrices (:meth:`tuner.task.contract.Task.hidden_matrices`)
            or :data:`OTHER` for the rest. Muon orthogonalises the hidden ones and leaves the
            rest to AdamW. A task without hidden matrices refuses the optimizer in one line.
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
    lr_meaning: str = STEP_SIZE
    splits_by_role: bool = False
    requires: Requirement | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.space, SearchSpace):
            object.__setattr__(self, "space", SearchSpace(self.space))

    def state_multiple_at(
        self, param_count: int, tensors: Sequence[tuple[Sequence[int], str]] = ()
    ) -> float:
        """The declared optimizer-state size, as a multiple of the parameter count, for a
        model of ``param_count`` parameters; ``tensors`` are its parameters' shapes and roles,
        which a :class:`TensorState` needs."""
        multiple = self.state_multiple
        if isinstance(multiple, TensorState):
            return multiple(param_count, tensors)
        return float(multiple(param_count) if callable(multiple) else multiple)

    @property
    def state_text(self) -> str:
        """The declared state size for people: ``2n``, ``n^2 + 2n``."""
        multiple = self.state_multiple
        if isinstance(multiple, (MatrixState, TensorState)):
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
        """Check ``hyperparams`` against the space, fill in defaults, and build the optimizer.

        An optimizer that ``splits_by_role`` must be given groups with roles
        (:func:`split_by_role`), with at least one hidden matrix (:class:`RoleError`).
        """
        values = self.space.complete(hyperparams or {}, owner=self.name)
        params = list(params)
        if self.splits_by_role:
            check_roles(self.name, params)
        return self.build(params, values)


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
class TensorState:
    """A state whose size is set by each tensor's shape and role, not by the parameter count
    alone: ``per_tensor(shape, role)`` elements for each tensor, plus ``vectors`` vectors of
    length n.

    Use it as ``state_multiple`` (Adafactor keeps a row and a column of each matrix; Muon one
    buffer per hidden matrix and AdamW's two per other tensor). ``text`` says it for people.
    Adding a number adds vectors (a wrapper's own buffers).
    """

    per_tensor: Callable[[tuple[int, ...], str], float]
    text: str
    vectors: float = 0.0

    def __call__(self, param_count: int, tensors: Sequence[tuple[Sequence[int], str]]) -> float:
        """The multiple for a model of ``param_count`` parameters whose tensors have these
        ``(shape, role)``."""
        if not tensors:
            raise ValueError(f"the state {self.text} depends on the tensors' shapes and roles: "
                             "give them")
        elements = sum(self.per_tensor(tuple(shape), role) for shape, role in tensors)
        return elements / param_count + self.vectors

    def __add__(self, vectors: float) -> TensorState:
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


def split_by_role(groups: Iterable[Any], hidden: Iterable[torch.Tensor]) -> list[dict[str, Any]]:
    """The parameter groups (or a list of tensors) split by role, for an optimizer that
    ``splits_by_role``: each group in two, its ``hidden`` tensors with ``"role":``
    :data:`HIDDEN` and the others with :data:`OTHER`, every other key of the group kept; the
    hidden groups first (so ``param_groups[0]`` is a hidden one when there is any), empty
    groups left out."""
    hidden_ids = {id(p) for p in hidden}
    groups = list(groups)
    if groups and not isinstance(groups[0], Mapping):
        groups = [{"params": groups}]
    split: dict[str, list[dict[str, Any]]] = {HIDDEN: [], OTHER: []}
    for group in groups:
        for role, keep in ((HIDDEN, True), (OTHER, False)):
            params = [p for p in group["params"] if (id(p) in hidden_ids) is keep]
            if params:
                split[role].append({**group, "params": params, ROLE_KEY: role})
    return split[HIDDEN] + split[OTHER]


def check_roles(name: str, groups: list[Any]) -> None:
    """Raise :class:`RoleError` unless ``groups`` carry roles and hold a hidden matrix."""
    if not all(isinstance(g, Mapping) and g.get(ROLE_KEY) in (HIDDEN, OTHER) for g in groups):
        raise RoleError(
            f"optimizer {name!r} trains hidden weight matrices apart from the other parameters: "
            "give it parameter groups split by role (tuner.plugin.optimizer.split_by_role)")
    if not any(g[ROLE_KEY] == HIDDEN and g["params"] for g in groups):
        raise RoleError(f"optimizer {name!r} was given no hidden weight matrix to train")


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
