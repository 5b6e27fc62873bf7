"""One training run: (task, optimizer, hyperparameters, seed, options) -> a RunResult.

:func:`train` is the only entry point. It never raises once training has started: a loss that
blows up ends the run as ``diverged``, a callback can stop it as ``pruned``, and any other
exception makes it ``failed`` with a one-line ``error`` that says where it happened in the user's
code (:func:`tuner.task.failures.describe_failure`). Bad arguments (an unknown task or
optimizer, a hyperparameter outside its range, an impossible option, too few examples for the
batch size) raise a :class:`~tuner.errors.TunerError` before the first step is taken.

This module is the loop alone; what it shares with the batched loop
(:mod:`tuner.training.batched.training`) are public parts, each in its module: the run's
settings and their checks (:mod:`tuner.training.settings`), its bookkeeping: curve, bests,
early stopping, divergence, trajectory, how it ended (:mod:`tuner.training.record`), its
measurement (:mod:`tuner.training.measurement`), precision (:mod:`tuner.training.precision`)
and learning-rate schedulers (:mod:`tuner.training.schedules`). The device, the batch order and
the optimizer step come from :mod:`tuner.training.steps`, which lr-find and the conformance kit
share. The loop is written for low overhead: the data stays on the device as tensors and
batches are drawn by indexing with a seeded permutation (no DataLoader); the loss is read back
once per step on the CPU, where that costs no device synchronisation, and once every few steps
on a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tuner.training.measurement import Measurement
from tuner.training.options import (
    PRECISIONS,
    SCHEDULES,
    TrainOptions,
    TrainOptionsError,
    make_options,
)
from tuner.training.precision import autocast, in_double, to_double
from tuner.training.record import Pruned, RunRecord
from tuner.training.result import STATUSES, CurvePoint, RunResult
from tuner.training.roles import role_groups
from tuner.training.schedules import lr_schedulers
from tuner.training.settings import RunSettings
from tuner.training.steps import StepError, optimizer_step, resolve_device
from tuner.training.threads import RunThreads

__all__ = [
    "PRECISIONS", "SCHEDULES", "STATUSES", "CurvePoint", "Pruned", "RunResult", "TrainOptions",
    "TrainOptionsError", "make_options", "resolve_device", "train",
]

if TYPE_CHECKING:
    import torch

    from tuner.plugin.optimizer import OptimizerPlugin
    from tuner.task.contract import Task

# Steps between two read-backs of the loss (divergence check, mean training loss), by device
# type. On the CPU it costs nothing to read every step; on a GPU each read-back synchronises.
LOSS_READBACK_EVERY = {"cpu": 1}
LOSS_READBACK_DEFAULT = 8

_NO_CONTEXT = contextlib.nullcontext()


def train(
    task: str | Task,
    optimizer: str | OptimizerPlugin,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    options: TrainOptions | None = None,
    callback: Callable[[CurvePoint], bool | None] | None = None,
    **option_values: Any,
) -> RunResult:
    """Train ``task`` with ``optimizer`` once and measure it.

    Args:
        task: a registered task's name, or a :class:`~tuner.task.Task`.
        optimizer: a registered optimizer's name, or an
            :class:`~tuner.plugin.optimizer.OptimizerPlugin`.
        params: the optimizer's hyperparameters; the rest take their defaults.
        seed: fixes the data split, the initial weights and the batch order.
        options: a :class:`TrainOptions`; keyword arguments (``schedule="cosine"``) replace its
            fields.
        callback: called with each new :class:`CurvePoint`; returning True (or raising
            :class:`Pruned`) stops the run with status ``pruned``.

    Returns:
        The :class:`RunResult`, whatever happened during training.

    Raises:
        TunerError: before training, for an unknown name, an invalid hyperparameter or an
            option that cannot work.
    """
    from tuner.plugin.registry import get_registry

    if isinstance(task, str):
        task = get_registry().task(task)
    if isinstance(optimizer, str):
        optimizer = get_registry().optimizer(optimizer)
    options = make_options(options, **option_values)
    hyperparams = optimizer.space.complete(params or {}, owner=optimizer.name)
    settings = RunSettings(task, optimizer, hyperparams, seed, options)
    return _Run(settings, RunRecord(settings, callback)).execute()


class _Run:
    """One run's loop over its :class:`RunSettings`, filling in its :class:`RunRecord`."""

    def __init__(self, settings: RunSettings, record: RunRecord) -> None:
        self.settings, self.record = settings, record
        self.optimizer: Any = None
        self.done = 0  # optimizer steps taken so far
        self.per_step = 0  # training examples per step, known once the task is built

    def execute(self) -> RunResult:
        """Train under the run's torch threads (:mod:`tuner.training.threads`), and record
        the count it trained with."""
        with RunThreads(self.settings.options.threads, self.settings.options.cores,
                        self.settings.device) as threads:
            self._measured(threads)
        self.record.result.options["threads"] = threads.used
        return self.record.result

    def _measured(self, threads: RunThreads) -> None:
        """Train, measuring the time and memory; whatever happens the result is filled in."""
        record = self.record
        measured = Measurement(self.settings.device)
        try:
            self._train(threads)
            record.end("complete", self.done)
        except (TrainOptionsError, StepError):  # bad options, found once training began
            raise
        except Exception as error:  # any failure inside a run is a result, not a crash
            record.end_on(error, self.done)
        finally:
            record.result.examples_seen = self.done * self.per_step
            state_bytes = 0
            if self.optimizer is not None:
                from tuner.plugin.optimizer import optimizer_state_bytes

                try:
                    state_bytes = optimizer_state_bytes(self.optimizer)
                except Exception:  # an exotic state layout must not lose the result
                    state_bytes = 0
            record.close(measured.seconds(), measured.peak(), state_bytes)

    def _train(self, threads: RunThreads) -> None:
        import torch

        settings, record = self.settings, self.record
        task, options, result = settings.task, settings.options, record.result
        torch.manual_seed(settings.seed)
        double = options.precision == "float64"
        problem = task.build(settings.seed, settings.device)
        if double:
            problem = in_double(problem)
        model = problem.model.to(settings.device)
        model.train()
        parameters = [p for p in model.parameters() if p.requires_grad]
        result.param_count = sum(p.numel() for p in parameters)
        result.param_bytes = sum(p.numel() * p.element_size() for p in parameters)
        settings.check_size(result.param_count)
        groups = role_groups(task, settings.plugin, model, settings.param_groups(model))
        optimizer = self.optimizer = settings.plugin.create(groups, settings.hyperparams)
        per_step_schedule, plateau = lr_schedulers(optimizer, options, settings.budget,
                                                   task.direction)
        warmup = options.warmup
        order = settings.batches(problem)
        if double and problem.dataset is not None:
            order = map(to_double, order)
        self.per_step = settings.examples_per_step(problem)
        scaler = None
        if options.precision == "fp16":
            scaler = torch.amp.GradScaler(settings.device.type)
        clip_norm = options.clip_norm
        trajectory = task.records_trajectory
        if trajectory:
            record.record_position(model)
        loss_of = functools.partial(task.loss, model)  # takes what ``order`` yields
        if options.precision in ("bf16", "fp16"):
            loss_of = autocast(loss_of, settings.device.type, options.precision)
        needs_closure = settings.plugin.needs_closure
        flat_loss = settings.plugin.wants_flat_loss
        counts = record.counts
        readback_every = LOSS_READBACK_EVERY.get(settings.device.type, LOSS_READBACK_DEFAULT)
        read_each_step = readback_every == 1
        pending: list[torch.Tensor] = []
        loss_sum, loss_count = 0.0, 0
        budget, eval_every = settings.budget, settings.eval_every
        record.start(time.perf_counter())

        first_step = threads.first_step()
        for step in range(budget):
            with first_step if step == 0 else _NO_CONTEXT:
                loss = optimizer_step(optimizer, loss_of, next(order),
                                      needs_closure=needs_closure, clip_norm=clip_norm,
                                      parameters=parameters, flat_loss=flat_loss, counts=counts,
                                      scaler=scaler)
            done = self.done = step + 1
            evaluating = done % eval_every == 0 or done == budget
            if evaluating:
                lr = float(optimizer.param_groups[0]["lr"])
            if per_step_schedule is not None and (plateau is None or step < warmup):
                per_step_schedule.step()
            if trajectory:
                record.record_position(model)
            if read_each_step:
                value = loss.item()
                record.check_loss(value, step)
                loss_sum += value
                loss_count += 1
            else:
                pending.append(loss)
                if evaluating or len(pending) >= readback_every:
                    values = torch.stack(pending).tolist()
                    first = done - len(values)
                    for offset, value in enumerate(values):
                        record.check_loss(value, first + offset)
                    loss_sum += sum(values)
                    loss_count += len(values)
                    pending = []
            if evaluating:
                record.evaluate(model, problem, optimizer, done, lr, loss_sum / max(loss_count, 1))
                loss_sum, loss_count = 0.0, 0
                if plateau is not None and step >= warmup:
                    plateau.step(result.curve[-1].metric)
                if result.stopped_early:
                    break
