"""The task plugin contract: a reference model and its data, on which optimizers are measured."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

KINDS = ("analytic", "convex", "vision", "sequence", "sparse")
DIRECTIONS = ("minimize", "maximize")


@dataclass
class Problem:
    """One task built for one seed, on one device: the model and its data, ready to train.

    Attributes:
        model: the module whose parameters the optimizer trains.
        train: the training examples, one tensor per field (inputs, labels, ...), all with the
            examples along the first dimension. The training loop draws mini-batches from them
            by index; a full-batch task uses them whole. Empty when the loss needs no data
            (an analytic test function such as Rosenbrock).
        val: the validation data, in whatever form :meth:`Task.evaluate` wants.
        dataset: instead of ``train``, a ``torch.utils.data.Dataset`` (map-style) for data that
            does not fit in memory: each batch reads only its own examples (``dataset[i]``,
            collated by ``default_collate`` and moved to the device), in the order of the same
            seeded permutation the tensors would have.
    """

    model: torch.nn.Module
    train: tuple[torch.Tensor, ...] = ()
    val: Any = ()
    dataset: Any = None

    @property
    def train_size(self) -> int:
        """Number of training examples (0 when the loss needs no data)."""
        if self.dataset is not None:
            return len(self.dataset)
        return int(self.train[0].shape[0]) if self.train else 0


def _functional() -> Any:
    """``torch.nn.functional``, imported on first use (this module is imported without torch)."""
    global _F
    if _F is None:
        import torch.nn.functional

        _F = torch.nn.functional
    return _F


_F: Any = None


def hidden_linear_weights(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights of the model's ``nn.Linear`` layers between input and output: every one but
    the output head, taken to be the last ``nn.Linear`` in module order, and none shared with an
    embedding (tied weights). What :meth:`Task.hidden_matrices` returns unless a task says
    otherwise.

    Embeddings (a 2-D position table too), biases, normalisation weights and convolution
    kernels are never among them: they are not the weight of an ``nn.Linear``.
    """
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    embedded = {id(m.weight) for m in model.modules()
                if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))}
    return [m.weight for m in linears[:-1]
            if m.weight.requires_grad and id(m.weight) not in embedded]



class Task:
    """A reference training problem: data, a model, a loss and a metric.

    Subclass it and set the class attributes below; register an instance from a
    ``register_tasks`` hook. The training loop (:func:`tuner.training.train`) drives it:

    1. it seeds torch's global generator with the run's seed, then calls :meth:`build`, which
       returns the model (initialised from that generator) and the data as tensors on the device;
    2. every step it draws a batch of example indices from its own seeded generator, indexes
       every tensor of ``Problem.train`` with them and calls :meth:`loss`;
    3. every ``eval_every`` steps it calls :meth:`evaluate` (model in eval mode, no gradients).

    The same seed must give the same data split, the same initial weights and the same batch
    order: draw any randomness from ``seed`` or from torch's global generator, nothing else.

    Attributes:
        name: lower-case name used on the command line.
        summary: one line for ``tuner tasks list``.
        kind: one of ``analytic`` (a test function without data, such as Rosenbrock),
            ``convex``, ``vision``, ``sequence``, ``sparse``; or None when it is none of these
            or not said: such a task gets no kind presets and shows its kind as ``-``.
        data: where the data comes from: ``generated``, or the shipped file and its licence.
        metric: name of the reported metric (``val_accuracy``, ``val_bpc``, ``loss``).
        direction: ``minimize`` or ``maximize`` for the metric.
        target: the metric value that counts as reached, for time-to-target.
        budget: default number of optimizer steps of one run.
        eval_every: steps between evaluations (each one adds a point to the curve).
        batch_size: default batch size; ``None`` for full-batch tasks.
        divergence_threshold: a training loss above this ends the run as diverged; ``None``
            lets the loop use a multiple of the first loss.
        records_trajectory: the model is a single 2-D point whose path the run records
            (:meth:`position`), for plots over the loss contours. Such a task should also
            define ``function(xy)`` (the loss on points of shape ``(..., 2)``, any float dtype),
            ``start`` and ``minimum`` (2-tuples): the report draws the contours from them.
        reference: a configuration known to reach ``target`` within ``budget`` (the tests
            check it): ``{"optimizer": "adam", "params": {"lr": 0.1}}``; empty params mean the
            optimizer's defaults.
        parameters: the task's own parameters and their defaults (``{"width": 128}``): a
            study sets them (``--task-param width=256``) and :meth:`build` reads the values in
            use from ``self.task_params``. They are part of the task's identity in the store
            (:mod:`tuner.task.params`): ``digits-mlp[width=256]`` is a task of its own.
        unbatchable: why the model cannot be trained as a batch of configurations (stacked
            parameters under ``torch.func.vmap``: :mod:`tuner.training.batched.training`), or None
            when it can. A model can be batched when its forward pass has no Python control flow
            on tensor values and every operation has a vmap rule; otherwise its runs are
            trained one by one (a model whose first vectorised step fails falls back too).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[str | None]
    data: ClassVar[str] = "generated"
    metric: ClassVar[str]
    direction: ClassVar[str]
    target: ClassVar[float]
    budget: ClassVar[int]
    eval_every: ClassVar[int]
    batch_size: ClassVar[int | None] = None
    divergence_threshold: ClassVar[float | None] = None
    records_trajectory: ClassVar[bool] = False
    reference: ClassVar[dict[str, Any]] = {"optimizer": "adam", "params": {}}
    parameters: ClassVar[dict[str, Any]] = {}
    unbatchable: ClassVar[str | None] = None

    plugin: str = ""
    version: str = ""
    _task_params: dict[str, Any] | None = None
    _base_name: str | None = None

    # -- what a task implements -------------------------------------------------------------

    def build(self, seed: int, device: torch.device) -> Problem:
        """Build the model and the data for ``seed`` on ``device``.

        Args:
            seed: the run's seed; it fixes the data split (generated data may stay the same for
                every seed: the seed then varies only the split, weights and batch order).
            device: where the model and every tensor of the problem must live.

        Returns:
            A :class:`Problem`. Torch's global generator has just been seeded with ``seed``:
            create the model's parameters from it.
        """
        raise NotImplementedError(f"task {self.name!r} does not implement build()")

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The training loss (a scalar tensor, mean over the batch) on one batch.

        The default is the cross-entropy of ``model(inputs)`` against ``labels`` for a batch of
        ``(inputs, labels)``.
        """
        inputs, labels = batch
        return _functional().cross_entropy(model(inputs), labels)

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        """The metric on the validation data (called in eval mode, under ``torch.no_grad``).

        The default is the classification accuracy of ``model`` on ``problem.val``
        (``(inputs, labels)``).
        """
        inputs, labels = problem.val
        return float((model(inputs).argmax(dim=-1) == labels).float().mean())

    def hidden_matrices(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        """The model's hidden weight matrices: those an optimizer of hidden layers (Muon)
        trains, while another one (AdamW) trains the rest, chosen by role, not by shape.

        Hidden: the weight matrices between the input and the output (a Transformer's attention
        and MLP projections, an MLP's inner layers). Not hidden: embeddings (a 2-D position
        table too), the output head, biases, normalisation weights, convolution kernels. The
        default is :func:`hidden_linear_weights` (every ``nn.Linear`` weight but the last one,
        the head); override it when the head is not the model's last ``nn.Linear`` or when
        hidden matrices live elsewhere (``nn.MultiheadAttention``'s ``in_proj_weight``). A task
        whose list is empty (a point in the plane, a linear model) refuses such an optimizer.
        """
        return hidden_linear_weights(model)

    def position(self, model: torch.nn.Module) -> torch.Tensor | None:
        """The model's current point in the plane, for tasks with ``records_trajectory``.

        Return a 2-element tensor (the loop clones it, without a device sync, after each step).
        """
        return None

    # -- used by tuner ------------------------------------------------------------------------

    @property
    def task_params(self) -> dict[str, Any]:
        """The values of the task's parameters in use: the declared defaults, with what a
        study set (:meth:`with_params`) over them."""
        return {**self.parameters, **(self._task_params or {})}

    @property
    def base_name(self) -> str:
        """The declared name, without the parameters that :meth:`with_params` added."""
        return self._base_name or self.name

    def param_problems(self, values: Mapping[str, Any]) -> list[str]:
        """What is wrong with a combination of parameter values (each already of the right
        type); override to refuse values the model cannot take. The default accepts all."""
        return []

    def with_params(self, values: Mapping[str, Any]) -> Task:
        """A copy of this task with parameters set (checked against the declaration and
        coerced to the defaults' types); its ``name`` becomes the identity in the store,
        ``base[key=value]`` (:func:`tuner.task.params.identity`). No values: this task."""
        from tuner.task.params import identity, resolve_values

        if not values:
            return self
        base = self.base_name
        resolved = resolve_values(self.parameters, {**(self._task_params or {}), **values},
                                  f"task {base!r}")
        problems = self.param_problems(resolved)
        if problems:
            from tuner.task.params import TaskParamError

            raise TaskParamError(f"task {base!r}: {problems[0]}")
        configured = copy.copy(self)
        configured._base_name = base
        configured._task_params = resolved
        configured.name = identity(base, resolved, self.parameters)  # type: ignore[misc]
        return configured

    def reached(self, value: float) -> bool:
        """Whether a metric value meets the target, in the task's direction."""
        if self.direction == "maximize":
            return value >= self.target
        return value <= self.target

    def better(self, value: float, than: float | None, margin: float = 0.0) -> bool:
        """Whether ``value`` beats ``than`` by more than ``margin``, in the task's direction."""
        if than is None:
            return True
        if self.direction == "maximize":
            return value > than + margin
        return value < than - margin

    def describe(self) -> dict[str, Any]:
        """The declared attributes, JSON-ready."""
        keys = ("name", "summary", "kind", "data", "metric", "direction", "target", "budget",
                "eval_every", "batch_size", "reference")
        return {**{key: getattr(self, key) for key in keys}, "parameters": self.task_params}

    def problems(self) -> list[str]:
        """What is wrong with the declaration, for the plugin loader's one-line error."""
        found = []
        for key in ("name", "summary", "kind", "metric", "target", "budget", "eval_every"):
            if not hasattr(self, key):
                found.append(f"missing attribute {key!r}")
        if hasattr(self, "kind") and self.kind is not None and self.kind not in KINDS:
            found.append(f"kind must be one of {', '.join(KINDS)}, or None")
        if getattr(self, "direction", None) not in DIRECTIONS:
            found.append(f"direction must be one of {', '.join(DIRECTIONS)}")
        if isinstance(getattr(self, "budget", None), int) and self.budget <= 0:
            found.append("budget must be positive")
        if isinstance(getattr(self, "eval_every", None), int) and self.eval_every <= 0:
            found.append("eval_every must be positive")
        batch_size = getattr(self, "batch_size", None)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            found.append("batch_size must be a positive integer or None")
        parameters = getattr(self, "parameters", {})
        if not isinstance(parameters, Mapping):
            found.append("parameters must be a dict of names and default values")
        else:
            from tuner.task.params import check_declared

            found.extend(check_declared(parameters, getattr(self, "name", "?")))
        return found
