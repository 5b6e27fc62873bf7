"""The parts of training that every loop shares: the device, the batch order and one step.

:func:`tuner.training.train`, :func:`tuner.training.lr_find.lr_find` and the conformance kit
(:mod:`tuner.testing`) all use these, so a run, a learning-rate range test and a conformance
check see the same device, the same batches for a seed, and the same optimizer step:

- :func:`resolve_device`: ``auto``, ``cpu`` or ``cuda[:N]`` -> a ``torch.device``;
- :func:`batches`: an endless iterator over a problem's mini-batches, a seeded permutation per
  epoch with the last incomplete batch dropped (the whole training set for a full-batch task);
- :func:`optimizer_step`: zero the gradients, the loss and its backward pass (accumulated over a
  list of batches), gradient clipping, and the step, through a closure for the optimizers that
  need one (L-BFGS), or through a :class:`~tuner.plugin.objective.FlatObjective` (the loss as a
  function of the flat parameters) for those that want one (Newton, BFGS, conjugate gradient);
  every forward, backward and Hessian is counted in the caller's
  :class:`~tuner.plugin.objective.EvaluationCounts`.

torch is imported inside the functions: importing this module is free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.plugin.objective import EvaluationCounts, FlatObjective

if TYPE_CHECKING:
    import torch

    from tuner.task.contract import Problem


DEVICES = ("auto", "cpu", "cuda")
"""The device names :func:`resolve_device` takes (``cuda`` also as ``cuda:N``)."""


class StepError(TunerError, ValueError):
    """A device or a batch layout that cannot work (CUDA absent, too few examples)."""


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``auto``, ``cpu`` or ``cuda[:N]``; CUDA asked for but absent: error."""
    import torch

    if name.split(":")[0] not in DEVICES:
        raise StepError(f"unknown device {name!r}; choose from: auto, cpu, cuda[:N]")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StepError(f"device {name!r} asked for, but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:  # cuda:x
        raise StepError(f"unknown device {name!r}; choose from: auto, cpu, cuda[:N]") from None


def batches(
    problem: Problem, batch_size: int | None, seed: int, accumulate: int = 1, task: str = ""
) -> Iterator[Any]:
    """An endless iterator over the batches of ``problem``'s training data, one item per step.

    With ``batch_size`` None (a full-batch task) every item is ``problem.train`` itself. Else the
    examples are shuffled by a ``torch.Generator`` seeded with ``seed``, once per epoch, and cut
    into batches of ``batch_size`` (at most ``n // accumulate``), the last incomplete one
    dropped; each item is a tuple with every tensor of ``problem.train`` indexed by one batch,
    or, with ``accumulate`` > 1, a list of ``accumulate`` such tuples. The same seed gives the
    same order wherever the problem lives: the permutation is drawn on the CPU.

    Raises :class:`StepError` (on the first item) when there are too few examples.
    """
    import torch

    if batch_size is None:
        whole = problem.train
        while True:
            yield whole
    n = problem.train_size
    named = f"task {task!r}" if task else "the task"
    if n == 0:
        raise StepError(f"{named} has no training examples to draw batches from")
    size = min(batch_size, n // accumulate) if n >= accumulate else 0
    if size < 1:
        raise StepError(
            f"{named} has {n} training examples, fewer than accumulate={accumulate} batches"
        )
    per_step = size * accumulate
    steps_per_epoch = n // per_step
    generator = torch.Generator().manual_seed(seed)
    if problem.dataset is not None:
        yield from _dataset_batches(problem, n, size, accumulate, generator)
        return
    tensors = problem.train
    device = tensors[0].device
    while True:
        order = torch.randperm(n, generator=generator)
        order = order[: steps_per_epoch * per_step].to(device)
        if accumulate == 1:
            for index in order.view(steps_per_epoch, size):
                yield tuple([t[index] for t in tensors])
        else:
            for rows in order.view(steps_per_epoch, accumulate, size):
                yield [tuple([t[index] for t in tensors]) for index in rows]


def _dataset_batches(
    problem: Problem, n: int, size: int, accumulate: int, generator: torch.Generator
) -> Iterator[Any]:
    """:func:`batches` over a map-style Dataset: the same seeded permutation, and each batch
    reads only its own examples."""
    import torch
    from torch.utils.data import default_collate

    dataset, device = problem.dataset, next(problem.model.parameters()).device
    per_step = size * accumulate
    steps_per_epoch = n // per_step

    def batch(indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        items = default_collate([dataset[i] for i in indices.tolist()])
        fields = items if isinstance(items, (list, tuple)) else (items,)
        return tuple(field.to(device, non_blocking=True) for field in fields)

    while True:
        order = torch.randperm(n, generator=generator)[: steps_per_epoch * per_step]
        for rows in order.view(steps_per_epoch, accumulate, size):
            yield batch(rows[0]) if accumulate == 1 else [batch(index) for index in rows]


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    loss_of: Callable[[Any], torch.Tensor],
    batch: Any = None,
    *,
    needs_closure: bool = False,
    clip_norm: float | None = None,
    parameters: list[torch.Tensor] | None = None,
    flat_loss: bool | None = None,
    counts: EvaluationCounts | None = None,
    scaler: Any = None,
) -> torch.Tensor:
    """One optimizer step on ``batch``; returns the loss before the step (detached).

    Args:
        optimizer: the optimizer to step.
        loss_of: ``loss_of(batch) -> scalar tensor``, the forward pass (``task.loss`` bound to
            its model).
        batch: what ``loss_of`` takes; a *list* of batches accumulates their gradients into one
            step (each loss divided by their number) and returns their mean loss.
        needs_closure: the optimizer evaluates the loss itself, through ``step(closure)``
            (L-BFGS calls it several times per step).
        clip_norm: clip the gradients' global L2 norm to this before stepping.
        parameters: the parameters whose gradients are clipped (default: the optimizer's).
        flat_loss: give ``step`` a :class:`~tuner.plugin.objective.FlatObjective` over
            ``parameters`` (the plugin's ``wants_flat_loss``); None asks the optimizer object (its
            own ``wants_flat_loss`` attribute).
        counts: incremented at every forward pass (function), backward pass (gradient) and
            Hessian: one batch of an accumulated step counts as one of each; a flat objective
            counts each of its evaluations once.
        scaler: a ``torch.amp.GradScaler`` (fp16): the loss is scaled before the backward
            pass, the gradients unscaled before clipping, and the step taken through it.
    """
    counts = counts if counts is not None else EvaluationCounts()
    if flat_loss is None:
        flat_loss = bool(getattr(optimizer, "wants_flat_loss", False))
    if flat_loss:
        if parameters is None:
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
        first: list[torch.Tensor] = []
        loss_fn = _remember_first(lambda: _mean_loss(loss_of, batch), first)
        loss = optimizer.step(FlatObjective(parameters, loss_fn, counts))
        if loss is None:
            if not first:
                raise RuntimeError("a flat-loss optimizer's step() returned no loss and made "
                                   "no evaluation")
            loss = first[0]
        return loss.detach()
    if needs_closure:
        last: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = _loss_and_gradient(loss_of, batch, counts)
            if clip_norm is not None:
                _clip(optimizer, parameters, clip_norm)
            last.append(loss)
            return loss

        loss = optimizer.step(closure)
        return (last[0] if loss is None else loss).detach()
    optimizer.zero_grad(set_to_none=True)
    scale = scaler.scale if scaler is not None else None
    loss = _loss_and_gradient(loss_of, batch, counts, scale)
    if scaler is not None:
        scaler.unscale_(optimizer)
    if clip_norm is not None:
        _clip(optimizer, parameters, clip_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.detach()


def _loss_and_gradient(
    loss_of: Callable[[Any], torch.Tensor], batch: Any, counts: EvaluationCounts,
    scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    if not isinstance(batch, list):
        loss = loss_of(batch)
        counts.function += 1
        (scale(loss) if scale else loss).backward()
        counts.gradient += 1
        return loss
    count = len(batch)
    total: Any = 0.0
    for part in batch:
        loss = loss_of(part)
        counts.function += 1
        (scale(loss / count) if scale else loss / count).backward()
        counts.gradient += 1
        total = total + loss.detach()
    return total / count


def _mean_loss(loss_of: Callable[[Any], torch.Tensor], batch: Any) -> torch.Tensor:
    """The loss on ``batch`` (the mean over a list of batches)."""
    if not isinstance(batch, list):
        return loss_of(batch)
    return sum(loss_of(part) for part in batch) / len(batch)


def _remember_first(
    loss: Callable[[], torch.Tensor], first: list[torch.Tensor]
) -> Callable[[], torch.Tensor]:
    """``loss`` that keeps its first value: the loss before the step, for the caller."""

    def remembered() -> torch.Tensor:
        value = loss()
        if not first:
            first.append(value.detach())
        return value

    return remembered


def _clip(optimizer: Any, parameters: list | None, clip_norm: float) -> None:
    import torch

    if parameters is None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
