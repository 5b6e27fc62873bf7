"""The learning-rate range test: where does the loss fall fastest as the learning rate grows?

Smith (2017, "Cyclical Learning Rates for Training Neural Networks") and fastai's ``lr_find``:
start from a fresh model, raise the learning rate exponentially at every step from ``start`` to
``end``, and record the training loss. The loss is smoothed with an exponential moving average
whose start-up bias is corrected (``avg / (1 - beta**(i+1))``); the test stops once the smoothed
loss exceeds ``divergence`` times the best smoothed loss seen (the run has blown up) or becomes
non-finite. The suggested learning rate is where the smoothed loss falls most steeply against
``log10(lr)``, searched between the first few points (still noisy) and the minimum of the
smoothed loss (past it the loss is already rising). ``min_loss_lr / 10`` is reported beside it,
the other rule of thumb.

:func:`range_test` is the algorithm on any ``step(lr) -> loss`` function; :func:`lr_find` runs it
on a task's model and data with a registered optimizer.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError

if TYPE_CHECKING:
    from tuner.plugin.optimizer import OptimizerPlugin
    from tuner.task.contract import Task


class LrFindError(TunerError, ValueError):
    """Bad arguments for the range test (a start above the end, too few steps)."""


@dataclass
class LrFindResult:
    """The range test's curve and suggestions.

    Attributes:
        lrs: the learning rate of every step that was taken.
        losses: the raw training loss at each of those steps.
        smoothed: the bias-corrected exponential moving average of ``losses``.
        suggested_lr: the learning rate at the steepest descent of the smoothed loss; ``None``
            when the curve is too short to tell.
        min_loss_lr: the learning rate at the lowest smoothed loss.
        diverged_at: the learning rate at which the test stopped because the loss blew up, or
            ``None`` when it ran to ``end``.
        threads: the torch threads the test stepped with (chosen as a training run's are).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float | None
    min_loss_lr: float | None
    diverged_at: float | None
    start: float
    end: float
    steps: int
    task: str = ""
    optimizer: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    threads: int = 1

    @property
    def min_loss_lr_over_10(self) -> float | None:
        return None if self.min_loss_lr is None else self.min_loss_lr / 10

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["min_loss_lr_over_10"] = self.min_loss_lr_over_10
        return data


def lr_schedule(start: float, end: float, steps: int) -> list[float]:
    """``steps`` learning rates growing geometrically from ``start`` to ``end`` (both included)."""
    if not (start > 0 and end > start):
        raise LrFindError(f"need 0 < start < end, got start={start:g}, end={end:g}")
    if steps < 2:
        raise LrFindError(f"need at least 2 steps, got {steps}")
    ratio = math.log(end / start)
    return [start * math.exp(ratio * i / (steps - 1)) for i in range(steps)]


def smooth_losses(losses: list[float], beta: float = 0.98) -> list[float]:
    """The bias-corrected exponential moving average of ``losses`` (fastai's smoothing)."""
    average, smoothed = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** (i + 1)))
    return smoothed


def suggest_lr(
    lrs: list[float], smoothed: list[float], skip_start: int | None = None
) -> float | None:
    """The learning rate where ``smoothed`` falls most steeply against ``log10(lr)``.

    Only the points from ``skip_start`` (default: 10% of the curve, at most 10) to the minimum of
    the smoothed loss are searched; returns ``None`` with fewer than 3 points there.
    """
    if not lrs:
        return None
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    if skip_start is None:
        skip_start = min(10, len(lrs) // 10)
    first = min(skip_start, max(lowest - 2, 0))
    window = range(first, lowest + 1)
    if len(window) < 3:
        return None
    xs = [math.log10(lrs[i]) for i in window]
    ys = [smoothed[i] for i in window]
    slopes = []
    for k in range(len(xs)):  # central differences inside, one-sided at the ends
        left, right = max(k - 1, 0), min(k + 1, len(xs) - 1)
        slopes.append((ys[right] - ys[left]) / (xs[right] - xs[left]))
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    if slopes[steepest] >= 0:
        return None
    return lrs[first + steepest]


def range_test(
    step: Callable[[float], float],
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
    divergence: float = 4.0,
    threads: int | None = None,
) -> LrFindResult:
    """Run the range test on ``step(lr) -> training loss`` (one optimizer step at that lr).

    Stops early when the smoothed loss exceeds ``divergence`` times its best value or a loss is
    not finite; the step that blew up is not part of the returned curve.
    """
    schedule = lr_schedule(start, end, steps)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, diverged_at = 0.0, math.inf, None
    for i, lr in enumerate(schedule):
        loss = float(step(lr))
        if not math.isfinite(loss):
            diverged_at = lr
            break
        average = beta * average + (1 - beta) * loss
        value = average / (1 - beta ** (i + 1))
        if i > 0 and value > divergence * best:
            diverged_at = lr
            break
        best = min(best, value)
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(value)
    min_loss_lr = lrs[min(range(len(smoothed)), key=smoothed.__getitem__)] if lrs else None
    return LrFindResult(
        lrs=lrs, losses=losses, smoothed=smoothed,
        suggested_lr=suggest_lr(lrs, smoothed), min_loss_lr=min_loss_lr,
        diverged_at=diverged_at, start=start, end=end, steps=steps,
    )


def lr_find(
    task: str | Task,
    optimizer: str | OptimizerPlugin,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int | None = None,
    beta: float = 0.98,
    divergence: float = 4.0,
    threads: int | None = None,
) -> LrFindResult:
    """The range test of ``optimizer`` on ``task``'s model and data (a fresh model, one seed).

    ``params`` fixes the optimizer's other hyperparameters (defaults: the plugin's recommended
    values); ``lr`` is overwritten at every step. The model, the device, the batches and the
    optimizer step are those of a training run with the same seed (:mod:`tuner.training.steps`):
    the test sees the batches the runs see, in the same order, on as many threads
    (``threads``, else chosen from the first step's cost: :mod:`tuner.training.threads`).
    """
    import torch

    from tuner.plugin.optimizer import train_mode
    from tuner.plugin.registry import get_registry
    from tuner.training.roles import role_groups
    from tuner.training.steps import batches, optimizer_step, resolve_device
    from tuner.training.threads import RunThreads

    task_plugin = get_registry().task(task) if isinstance(task, str) else task
    plugin = get_registry().optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    if "lr" not in plugin.space:
        raise LrFindError(f"optimizer {plugin.name!r} has no 'lr' hyperparameter to sweep")
    if batch_size is not None and batch_size < 1:
        raise LrFindError(f"batch size must be at least 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise LrFindError(f"threads must be at least 1, got {threads}")
    schedule_start = lr_schedule(start, end, steps)[0]
    lr_param = plugin.space["lr"]
    given = {**(params or {}), "lr": min(max(schedule_start, lr_param.low), lr_param.high)}
    values = plugin.space.complete(given, owner=plugin.name, fallback=plugin.space.recommended())

    where = resolve_device(device)
    torch.manual_seed(seed)
    problem = task_plugin.build(seed, where)
    model = problem.model.to(where)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    built = plugin.create(role_groups(task_plugin, plugin, model, [{"params": parameters}]),
                          values)
    train_mode(built)
    size = batch_size if batch_size is not None else task_plugin.batch_size
    order = batches(problem, size, seed, task=task_plugin.name)
    loss_of = functools.partial(task_plugin.loss, model)

    run_threads = RunThreads(threads, None, where)
    taken = 0

    def step(lr: float) -> float:
        nonlocal taken
        for group in built.param_groups:
            group["lr"] = lr
        with run_threads.first_step() if taken == 0 else contextlib.nullcontext():
            loss = optimizer_step(built, loss_of, next(order),
                                  needs_closure=plugin.needs_closure, parameters=parameters)
        taken += 1
        return float(loss)

    with run_threads:
        result = range_test(step, start=start, end=end, steps=steps, beta=beta,
                            divergence=divergence)
    result.task, result.optimizer = task_plugin.name, plugin.name
    result.threads = run_threads.used
    result.params = {k: v for k, v in values.items() if k != "lr"}
    return result
