"""A task from plain functions: ``build(seed) -> (model, train, val)``, a loss and a metric.

The common case of "my model, my data" without writing a :class:`~tuner.task.Task` subclass::

    task = tuner.task.from_function(
        name="my-cnn", build=build, metric="val_accuracy", direction="maximize",
        budget=500, batch_size=64, kind="vision",
    )

``kind`` is said, never guessed: without it the task's kind is None (shown as ``-``), and a
study's recommended trial uses each optimizer's plain recommended values, without the preset of
a kind the model may not be.

``train`` is a tuple of tensors (examples along the first dimension), or a map-style
``torch.utils.data.Dataset`` for data that does not fit in memory: the training loop then reads
only each batch's examples, in the order of a permutation seeded by the run's seed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuner.task.contract import Problem, Task

if TYPE_CHECKING:
    import torch

Build = Callable[..., tuple[Any, Any, Any]]


def _to_device(data: Any, device: torch.device) -> Any:
    import torch

    if isinstance(data, torch.Tensor):
        return (data.to(device),)
    if isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data):
        return tuple(t.to(device) for t in data)
    return data  # a Dataset, or whatever the user's evaluate takes


def _accuracy(model: torch.nn.Module, val: Any, batch_size: int | None) -> float:
    """The default metric: the classification accuracy on ``(inputs, labels)`` tensors or on a
    Dataset of such pairs (read in batches)."""
    if isinstance(val, tuple):
        inputs, labels = val
        return float((model(inputs).argmax(dim=-1) == labels).float().mean())
    from torch.utils.data import DataLoader

    device = next(model.parameters()).device
    right = total = 0
    for inputs, labels in DataLoader(val, batch_size=batch_size or 256, shuffle=False):
        inputs, labels = inputs.to(device), labels.to(device)
        right += int((model(inputs).argmax(dim=-1) == labels).sum())
        total += int(labels.shape[0])
    return right / max(total, 1)


class FunctionTask(Task):
    """A task whose model, data, loss and metric are plain functions (:func:`from_function`)."""

    def __init__(
        self,
        *,
        name: str,
        build: Build,
        metric: str = "val_accuracy",
        direction: str = "maximize",
        loss: Callable[[Any, tuple[Any, ...]], Any] | None = None,
        evaluate: Callable[[Any, Any], float] | None = None,
        budget: int = 500,
        batch_size: int | None = 64,
        eval_every: int | None = None,
        target: float | None = None,
        kind: str | None = None,
        summary: str = "",
        data: str = "generated",
    ) -> None:
        self.name, self.metric, self.direction = name, metric, direction  # type: ignore[misc]
        self.budget, self.batch_size, self.kind = budget, batch_size, kind  # type: ignore[misc]
        self.eval_every = eval_every or max(1, budget // 10)  # type: ignore[misc]
        if target is None:  # no target: never counted as reached
            target = float("nan")
        self.target, self.data = target, data  # type: ignore[misc]
        builder = getattr(build, "__name__", "a function")
        self.summary = summary or f"{name} (built by {builder})"  # type: ignore[misc]
        self._build, self._loss, self._evaluate = build, loss, evaluate
        self._wants_device = "device" in inspect.signature(build).parameters

    @property
    def defined_in(self) -> str | None:
        """The module of the build function: where the user's code of this task lives (the
        task's class is tuner's own, so its module says nothing of it)."""
        module = getattr(self._build, "__module__", None)
        return module if isinstance(module, str) else None

    def build(self, seed: int, device: torch.device) -> Problem:
        built = self._build(seed, device=device) if self._wants_device else self._build(seed)
        if not (isinstance(built, tuple) and len(built) == 3):
            raise TypeError(f"task {self.name!r}: build() must return (model, train, val)")
        model, train, val = built
        model = model.to(device)
        train = _to_device(train, device)
        val = _to_device(val, device)
        if isinstance(train, tuple):
            return Problem(model=model, train=train, val=val)
        return Problem(model=model, val=val, dataset=train)

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self._loss is not None:
            return self._loss(model, batch)
        return super().loss(model, batch)

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        if self._evaluate is not None:
            return float(self._evaluate(model, problem.val))
        return _accuracy(model, problem.val, self.batch_size)


def from_function(**declaration: Any) -> FunctionTask:
    """A :class:`~tuner.task.Task` from plain functions.

    Args:
        name: the task's name (its identity in the store).
        build: ``build(seed)`` (or ``build(seed, device=...)``) returning ``(model, train,
            val)``; torch's generator is seeded with ``seed`` before it is called. ``train`` is
            a tensor, a tuple of tensors, or a map-style Dataset; ``val`` is what ``evaluate``
            takes (tensors are moved to the device).
        metric, direction: the metric's name and ``minimize`` / ``maximize``.
        loss: ``loss(model, batch) -> scalar tensor``; default cross-entropy on
            ``(inputs, labels)``.
        evaluate: ``evaluate(model, val) -> float``; default classification accuracy.
        kind: ``analytic``, ``convex``, ``vision``, ``sequence`` or ``sparse``, which picks
            the optimizers' presets for that kind of task; None (the default) when it is none
            of these or unknown: no presets, and the kind shows as ``-``.
        budget, batch_size, eval_every, target, summary, data: as on
            :class:`~tuner.task.Task` (``batch_size=None`` trains on the full batch).
    """
    return FunctionTask(**declaration)
