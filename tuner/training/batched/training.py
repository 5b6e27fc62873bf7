"""The batched training loop: K configurations of one optimizer on one seed, trained at once.

:func:`train_batched` returns the K results that :func:`tuner.training.train` would give one
configuration at a time, from one vectorised run:

- the task is built once under ``torch.manual_seed(seed)``, as :func:`~tuner.training.train`
  builds it, so every configuration starts from the same weights; the model's parameters are
  stacked K times (:func:`torch.func.stack_module_state`), each a leaf of shape ``(K, *S)``;
- each step draws the seed's next batch (:func:`tuner.training.steps.batches`), shares it between
  the K models, and computes the K losses with :func:`torch.func.vmap` over
  :func:`torch.func.functional_call` of the task's own ``loss``; ``losses.sum().backward()``
  fills every slice's gradient with its own loss's gradient;
- gradient clipping takes the global norm of each configuration's own slice; each
  configuration's warm-up and schedule run on a small stand-in ``torch.optim`` optimizer with
  that configuration's lr (the very schedulers an unbatched run builds), whose lr, divided by
  the configuration's, goes into the batched optimizer's ``lr_scale`` before each step;
- every evaluation copies slice k into the model and calls the task's ``evaluate``, k by k,
  through configuration k's :class:`~tuner.training.record.RunRecord`, the bookkeeping an
  unbatched run keeps (curve, bests, early stopping, divergence, the callback).

Each configuration gets what an unbatched run gets before its first step: its
:class:`~tuner.training.settings.RunSettings` (the same checks, parameter groups and batch
order), its schedulers (:func:`~tuner.training.schedules.lr_schedulers`), its precision
(:mod:`tuner.training.precision`) and its measurement
(:class:`~tuner.training.measurement.Measurement`, one for the batch).

A configuration that diverges, is pruned by its callback, fails in its evaluation or stops
early, stops: its ``lr_scale`` is set to 0 and its result is frozen, while the others go on.
Nothing crosses slices (the loss sum's gradient, the clipping norms and the optimizer steps are
per configuration), so a slice that went NaN does not touch the others.

How close a batched run is to its run alone, by optimizer family (measured on this CPU; the
tests check the first two): the parameters after 20 steps within rtol 1e-5 for every
optimizer with a batched step, and the final metric of a digits-mlp run equal (within 1e-6);
over long runs, rounding differences of the vectorised gradients (about 1e-8) grow: after
2,000 steps of logreg the final loss is within a relative 1e-6 for the SGD, adaptive and Adam
families and within 1e-3 for the sign-based ones (signSGD, Signum, Lion, Tiger), whose updates
turn a rounding difference near zero into a full step.

What the K runs share is marked: ``RunResult.batch`` (and ``options["batch"]``) is K, and
``wall_seconds``, ``peak_memory_bytes`` and every ``seconds`` of the curve are those of the
whole batch; ``optimizer_state_bytes`` is one configuration's share.

Runs that cannot be batched are trained one by one with :func:`~tuner.training.train`, with one
note per reason and process (:func:`unbatched_reason` says why): an optimizer without a batched
step (``OptimizerPlugin.build_batched`` is None, or it needs a closure or the flat loss), a task
that declares itself ``unbatchable``, fp16 (its gradient scaler steps a ``torch.optim``
optimizer), or a model whose first vectorised step fails (data-dependent control flow, an
operation without a vmap rule).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tuner.errors import describe_exception
from tuner.training.measurement import Measurement
from tuner.training.options import TrainOptionsError
from tuner.training.precision import autocast, in_double, to_double
from tuner.training.record import Diverged, RunRecord
from tuner.training.schedules import lr_schedulers
from tuner.training.settings import RunSettings
from tuner.training.steps import StepError
from tuner.training.threads import RunThreads

if TYPE_CHECKING:
    import torch

    from tuner.plugin.optimizer import OptimizerPlugin
    from tuner.task.contract import Task
    from tuner.training.options import TrainOptions
    from tuner.training.result import CurvePoint, RunResult

__all__ = ["SHARED_OPTIONS", "note_once", "train_batched", "unbatched_reason"]

log = logging.getLogger(__name__)

_noted: set[str] = set()

_unvectorisable: dict[tuple[str, str], str] = {}
"""(task, optimizer) pairs whose first vectorised step failed in this process, and why."""


def note_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process sees it."""
    if message not in _noted:
        _noted.add(message)
        log.warning("%s", message)


def unbatched_reason(task: Task, plugin: OptimizerPlugin, options: TrainOptions | None = None
                     ) -> str | None:
    """Why runs of ``plugin`` on ``task`` with ``options`` cannot be batched; None if they can.

    One line, for the note said once: the optimizer has no batched step, the task is
    unbatchable, or the precision needs a ``torch.optim`` optimizer (fp16's gradient scaler).
    """
    if getattr(plugin, "build_batched", None) is None or plugin.needs_closure or getattr(
            plugin, "wants_flat_loss", False):
        return f"optimizer {plugin.name!r} has no batched step: its runs are trained one by one"
    reason = getattr(task, "unbatchable", None) or _unvectorisable.get((task.name, plugin.name))
    if reason:
        return f"task {task.name!r} cannot be batched ({reason}): its runs are trained one by one"
    if options is not None and getattr(options, "precision", "float32") == "fp16":
        return "fp16 runs are not batched (the gradient scaler steps a torch.optim optimizer)"
    return None


SHARED_OPTIONS = ("budget", "eval_every", "batch_size", "accumulate", "precision", "device",
                  "threads", "cores", "decay_exclude")
"""The training options that must be equal within a batch: they shape the shared steps (the
batches, their number, the evaluations, the dtype, the parameter groups). The others
(warm-up, schedule, clipping, early stopping, divergence limits) may differ per configuration."""


def train_batched(
    task: str | Task,
    plugin: str | OptimizerPlugin,
    configs: Sequence[Mapping[str, Any]],
    seed: int,
    *,
    options: TrainOptions | Sequence[TrainOptions] | None = None,
    callbacks: Sequence[Callable[[CurvePoint], bool | None] | None] | None = None,
) -> list[RunResult]:
    """Train each configuration of ``configs`` on ``seed``, all at once where they can be.

    Args:
        task: a registered task's name, or a :class:`~tuner.task.Task`.
        plugin: a registered optimizer's name, or an
            :class:`~tuner.plugin.optimizer.OptimizerPlugin`.
        configs: K hyperparameter configurations (the rest take their defaults).
        seed: the seed of every run: the data split, the initial weights, the batch order.
        options: the :class:`~tuner.training.TrainOptions` of every run, or one per
            configuration.
        callbacks: one per configuration (or None), as ``train``'s ``callback``: called with
            each of that run's curve points; True (or :class:`~tuner.training.Pruned`) prunes it.

    Configurations share a batch when their
    :func:`~tuner.training.batched.optimizers.batch_signature` (``nesterov`` on or off, ...) and
    their :data:`SHARED_OPTIONS` are equal; each such group is one batch.

    Returns:
        K results, in the order of ``configs``; each is what ``train(task, plugin, config,
        seed, options=options, callback=callback)`` returns, except for the shared time and
        memory figures (``batch`` says how many runs shared them).

    Raises:
        TunerError: before training, as ``train`` does (an unknown name, an invalid
            hyperparameter, an option that cannot work), or when ``options`` or ``callbacks``
            do not match ``configs``.
    """
    from tuner.plugin.registry import get_registry
    from tuner.training.batched.optimizers import BatchedError, batch_signature
    from tuner.training.options import make_options

    if isinstance(task, str):
        task = get_registry().task(task)
    if isinstance(plugin, str):
        plugin = get_registry().optimizer(plugin)
    count = len(configs)
    if options is None or not isinstance(options, Sequence):
        options = [options] * count
    if callbacks is None:
        callbacks = [None] * count
    for name, given in (("options", options), ("callbacks", callbacks)):
        if len(given) != count:
            raise BatchedError(f"{count} configurations but {len(given)} {name}: give one "
                               "per configuration")
    every = [make_options(o) for o in options]
    hyperparams = [plugin.space.complete(c or {}, owner=plugin.name) for c in configs]
    groups: dict[tuple, list[int]] = {}
    for index, (hp, these) in enumerate(zip(hyperparams, every, strict=True)):
        shared = tuple(getattr(these, name, None) for name in SHARED_OPTIONS)
        groups.setdefault((batch_signature(plugin, hp), shared), []).append(index)
    results: list[Any] = [None] * count
    for members in groups.values():
        runs = [(hyperparams[i], every[i], callbacks[i]) for i in members]
        reason = unbatched_reason(task, plugin, every[members[0]])
        if reason is not None:
            note_once(reason)
        if reason is not None or len(members) == 1:
            trained = _one_by_one(task, plugin, seed, runs)
        else:
            trained = _train_group(task, plugin, seed, runs)
        for index, result in zip(members, trained, strict=True):
            results[index] = result
    return results


def _one_by_one(task, plugin, seed, runs) -> list[RunResult]:
    from tuner.training.loop import train

    return [train(task, plugin, hp, seed, options=options, callback=callback)
            for hp, options, callback in runs]


def _train_group(task, plugin, seed, runs) -> list[RunResult]:
    """One batch of (hyperparameters, options, callback); one by one if it cannot vectorise."""
    # One settings and one record per configuration: the same checks before training, the same
    # result, schedules and evaluation bookkeeping as ``train`` uses.
    records = [RunRecord(RunSettings(task, plugin, hp, seed, options), callback)
               for hp, options, callback in runs]
    try:
        return _Batch(task, plugin, records, seed).execute()
    except _Unvectorisable as error:
        _unvectorisable[(task.name, plugin.name)] = f"its first vectorised step failed: {error}"
        note_once(unbatched_reason(task, plugin) or str(error))
        return _one_by_one(task, plugin, seed, runs)


class _Unvectorisable(Exception):
    """The first vectorised step failed: the model cannot be batched (the message says why)."""


def _loss_module(task: Task, model: torch.nn.Module) -> torch.nn.Module:
    """``task.loss(model, batch)`` as a module, so that ``functional_call`` can put one
    configuration's slice in place of the model's parameters while the task's own loss runs."""
    import torch

    class TaskLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: Any) -> torch.Tensor:
            return task.loss(self.model, batch)

    return TaskLoss()


class _Batch:
    """The state of one batched run; :meth:`execute` fills in every configuration's record."""

    def __init__(self, task: Task, plugin: OptimizerPlugin, runs: list[RunRecord], seed: int
                 ) -> None:
        self.task, self.plugin, self.runs, self.seed = task, plugin, runs, seed
        self.options = runs[0].settings.options  # its SHARED_OPTIONS are every run's
        self.size = len(runs)
        self.active = [True] * self.size
        self.training = list(range(self.size))  # the runs still training, in order
        self.done = 0  # steps taken by the batch
        self.parts = 1  # forward and backward passes per step (accumulate)
        self.per_step = 0  # training examples per step
        self.optimizer: Any = None
        self.device = runs[0].settings.device
        self._lr_scale_stale = True
        self._slices: list[tuple[Any, Any]] = []

    # -- the run --------------------------------------------------------------------------

    def execute(self) -> list[RunResult]:
        """Train the batch under its torch threads (:mod:`tuner.training.threads`: its
        vectorised step's cost chooses them), and record on each run the count it trained
        with."""
        with RunThreads(self.options.threads, self.options.cores, self.device) as threads:
            self._measured(threads)
        for run in self.runs:
            run.result.options["threads"] = threads.used
        return [run.result for run in self.runs]

    def _measured(self, threads: RunThreads) -> None:
        """Train, measuring the time and memory; whatever happens the results are filled in."""
        measured = Measurement(self.device)
        try:
            self._train(threads)
        except (_Unvectorisable, TrainOptionsError, StepError):
            raise
        except Exception as error:  # the shared step failed: every run still training fails
            for k in list(self.training):
                self._finish(k, error)
        finally:
            wall, peak = measured.seconds(), measured.peak()
            state = 0
            if self.optimizer is not None:
                try:
                    state = int(self.optimizer.state_bytes()) // self.size
                except Exception:  # an exotic state layout must not lose the results
                    state = 0
            for run in self.runs:
                run.result.batch = self.size
                run.result.options["batch"] = self.size
                run.close(wall, peak, state)

    def _train(self, threads: RunThreads) -> None:
        import torch
        from torch.func import functional_call, stack_module_state, vmap

        from tuner.plugin.optimizer import eval_mode, train_mode
        from tuner.training.batched.optimizers import stack_hyperparams
        from tuner.training.loop import LOSS_READBACK_DEFAULT, LOSS_READBACK_EVERY

        task, options, runs, size = self.task, self.options, self.runs, self.size
        first = runs[0].settings
        torch.manual_seed(self.seed)
        double = options.precision == "float64"
        problem = task.build(self.seed, self.device)
        if double:
            problem = in_double(problem)
        model = problem.model.to(self.device)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        for run in runs:
            run.result.param_count = sum(p.numel() for p in trainable)
            run.result.param_bytes = sum(p.numel() * p.element_size() for p in trainable)
            run.settings.check_size(run.result.param_count)

        wrapper = _loss_module(task, model)
        params, buffers = stack_module_state([wrapper] * size)
        stacked_of = {id(p): params[f"model.{name}"] for name, p in model.named_parameters()}
        self._slices = [(p, params[f"model.{name}"]) for name, p in model.named_parameters()]
        self._slices += [(b, buffers[f"model.{name}"]) for name, b in model.named_buffers()]
        groups = [{**group, "params": [stacked_of[id(p)] for p in group["params"]]}
                  for group in first.param_groups(model)]
        leaves = [p for group in groups for p in group["params"]]
        hp = stack_hyperparams([run.settings.hyperparams for run in runs], self.device)
        try:
            optimizer = self.optimizer = self.plugin.build_batched(groups, hp)
        except Exception as error:  # parameters its batched step does not take
            raise _Unvectorisable(describe_exception(error)) from error
        schedules = [_Schedule(run.settings) for run in runs]
        self._scheduled = any(s.per_step is not None or s.plateau is not None for s in schedules)
        order = first.batches(problem)
        if double and problem.dataset is not None:
            order = map(to_double, order)
        self.per_step = first.examples_per_step(problem)
        self.parts = options.accumulate if first.batch_size is not None else 1
        clip_norms = None
        clip_norm_of = [run.settings.options.clip_norm for run in runs]
        if any(clip_norm is not None for clip_norm in clip_norm_of):
            clip_norms = torch.tensor(
                [math.inf if clip_norm is None else clip_norm for clip_norm in clip_norm_of],
                dtype=leaves[0].dtype, device=self.device)
        trajectory = task.records_trajectory
        if trajectory:
            for run in runs:
                run.record_position(model)

        def loss_of_one(p: dict, b: dict, batch: Any) -> torch.Tensor:
            return functional_call(wrapper, (p, b), (batch,))

        vectorised = vmap(loss_of_one, in_dims=(0, 0, None), randomness="same")

        def losses_of(batch: Any) -> torch.Tensor:
            return vectorised(params, buffers, batch)

        if options.precision == "bf16":
            losses_of = autocast(losses_of, self.device.type, options.precision)

        readback_every = LOSS_READBACK_EVERY.get(self.device.type, LOSS_READBACK_DEFAULT)
        pending: list[torch.Tensor] = []
        loss_sums = [0.0] * size
        loss_counts = [0] * size
        lrs = [0.0] * size
        budget, eval_every = first.budget, first.eval_every
        start = time.perf_counter()
        for run in runs:
            run.start(start)

        for step in range(budget):
            batch = next(order)
            self._write_lr_scale(schedules)
            if step == 0:  # the model's first vectorised step: no batching rule, no batch
                try:
                    with _without_vmap_fallback(), threads.first_step():
                        losses = self._step(optimizer, losses_of, batch, leaves, clip_norms)
                except (StepError, _Unvectorisable):
                    raise
                except Exception as error:
                    raise _Unvectorisable(describe_exception(error)) from error
            else:
                losses = self._step(optimizer, losses_of, batch, leaves, clip_norms)
            done = self.done = step + 1
            evaluating = done % eval_every == 0 or done == budget
            if self._scheduled or evaluating:
                for k in self.training:
                    schedule = schedules[k]
                    if evaluating:
                        lrs[k] = schedule.lr
                    if schedule.per_step is not None and (
                            schedule.plateau is None or step < runs[k].settings.options.warmup):
                        schedule.per_step.step()
                        self._lr_scale_stale = True
            if trajectory:
                for k in self.training:
                    self._load(k)
                    runs[k].record_position(model)
            pending.append(losses)
            if evaluating or len(pending) >= readback_every:
                self._read_losses(pending, done - len(pending), loss_sums, loss_counts)
                pending = []
            if evaluating:
                eval_mode(optimizer)
                try:
                    for k in list(self.training):
                        self._evaluate(k, model, problem, done, lrs[k],
                                       loss_sums[k] / max(loss_counts[k], 1), schedules[k],
                                       step >= runs[k].settings.options.warmup)
                        loss_sums[k], loss_counts[k] = 0.0, 0
                finally:
                    train_mode(optimizer)
            if not self.training:
                break
        for k in list(self.training):
            self._finish(k)

    # -- parts of a step ------------------------------------------------------------------

    def _step(self, optimizer, losses_of, batch, leaves, clip_norms) -> torch.Tensor:
        """Zero the gradients, the K losses and their backward pass (accumulated over a list of
        batches), per-configuration clipping, and the batched step; returns the K losses."""
        optimizer.zero_grad()
        if isinstance(batch, list):
            count = len(batch)
            total: Any = 0.0
            for part in batch:
                losses = losses_of(part)
                (losses / count).sum().backward()
                total = total + losses.detach()
            losses = total / count
        else:
            losses = losses_of(batch)
            losses.sum().backward()
            losses = losses.detach()
        if clip_norms is not None:
            _clip_each(leaves, clip_norms)
        optimizer.step()
        return losses

    def _write_lr_scale(self, schedules) -> None:
        """Set the batched optimizer's ``lr_scale``: each run's scheduled lr over its lr, 0 for
        the runs that stopped."""
        if not self._lr_scale_stale:
            return
        import torch

        scales = [schedule.factor if on else 0.0
                  for schedule, on in zip(schedules, self.active, strict=True)]
        lr_scale = self.optimizer.lr_scale
        lr_scale.copy_(torch.tensor(scales, dtype=lr_scale.dtype, device=lr_scale.device))
        self._lr_scale_stale = self._scheduled

    def _read_losses(self, pending, first_step, loss_sums, loss_counts) -> None:
        """Read back a few steps' losses of every run still training: the divergence check
        (the first out of bounds ends that run as diverged) and the sums for the mean loss."""
        import torch

        rows = (torch.stack(pending) if len(pending) > 1 else pending[0].unsqueeze(0)).tolist()
        for k in list(self.training):
            run = self.runs[k]
            try:
                for offset, row in enumerate(rows):
                    run.check_loss(row[k], first_step + offset)
            except Diverged as diverged:
                self._finish(k, diverged)
                continue
            loss_sums[k] += sum(row[k] for row in rows)
            loss_counts[k] += len(rows)

    def _evaluate(self, k, model, problem, done, lr, train_loss, schedule, after_warmup
                  ) -> None:
        """Evaluate run k on its slice, through its record (as an unbatched run evaluates)."""
        run = self.runs[k]
        self._load(k)
        try:
            run.evaluate(model, problem, None, done, lr, train_loss)
        except Exception as error:  # diverged, pruned by its callback, or failed
            self._finish(k, error)
            return
        plateau = schedule.plateau
        if plateau is not None and after_warmup:
            plateau.step(run.result.curve[-1].metric)
            self._lr_scale_stale = True
        if run.result.stopped_early:
            self._finish(k)

    def _load(self, k: int) -> None:
        """Copy configuration k's slice into the model (parameters and buffers)."""
        import torch

        with torch.no_grad():
            for tensor, stacked in self._slices:
                tensor.copy_(stacked[k])

    def _finish(self, k: int, error: Exception | None = None) -> None:
        """End run k, complete or on ``error`` (:meth:`~tuner.training.record.RunRecord.end_on`
        says how): its status and figures are frozen, its slice no longer moves. It took part
        in every step so far (on a GPU, past a divergence too): its counts say so."""
        run = self.runs[k]
        run.counts.function = run.counts.gradient = self.done * self.parts
        run.result.examples_seen = self.done * self.per_step
        if error is None:
            run.end("complete", self.done)
        else:
            run.end_on(error, self.done)
        self.active[k] = False
        self.training.remove(k)
        self._lr_scale_stale = True


class _Schedule:
    """One run's warm-up and schedule: the very schedulers an unbatched run builds
    (:func:`~tuner.training.schedules.lr_schedulers`), on a stand-in optimizer that holds the
    run's lr and nothing else."""

    def __init__(self, settings: RunSettings) -> None:
        import torch

        self.base = float(settings.hyperparams.get("lr", 1.0))
        self.holder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=self.base)
        self.per_step, self.plateau = lr_schedulers(self.holder, settings.options,
                                                    settings.budget, settings.task.direction)
        self.holder.step()  # no gradient: moves nothing; the schedulers expect a step first

    @property
    def lr(self) -> float:
        """The lr of the run's next step (what ``param_groups[0]["lr"]`` reads unbatched)."""
        return float(self.holder.param_groups[0]["lr"])

    @property
    def factor(self) -> float:
        """The schedule's factor of the next step: its lr over the run's."""
        return self.lr / self.base if self.base else 1.0


@contextmanager
def _without_vmap_fallback() -> Iterator[None]:
    """Make vmap raise on an operation that has no batching rule, instead of running it K
    times in a loop with a warning: such a model trains more slowly batched than one by one
    (charlm's attention, the embedding bag). Where torch lacks the switch, nothing changes."""
    import torch

    functorch = getattr(torch._C, "_functorch", None)
    enabled = getattr(functorch, "_is_vmap_fallback_enabled", None)
    switch = getattr(functorch, "_set_vmap_fallback_enabled", None)
    if enabled is None or switch is None:
        yield
        return
    before = enabled()
    switch(False)
    try:
        yield
    finally:
        switch(before)


def _clip_each(leaves: list[torch.Tensor], clip_norms: torch.Tensor) -> None:
    """``torch.nn.utils.clip_grad_norm_`` for each configuration: the global L2 norm over its own
    slice of every gradient, and the same coefficient (``max_norm / (norm + 1e-6)``, at most 1;
    an unclipped configuration's max_norm is infinite, so its gradient is multiplied by 1)."""
    import torch

    grads = [p.grad for p in leaves if p.grad is not None]
    if not grads:
        return
    size = clip_norms.shape[0]
    norms = torch.stack([g.reshape(size, -1).norm(dim=1) for g in grads], dim=1)
    coefficient = (clip_norms / (norms.norm(dim=1) + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(coefficient.view(size, *([1] * (grad.dim() - 1))))


