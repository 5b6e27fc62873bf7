"""One run's settings, resolved and checked before its first step: :class:`RunSettings`.

:class:`~tuner.training.options.TrainOptions` are what the caller asked for; a run's settings are
those options applied to one (task, optimizer, hyperparameters, seed): the task's defaults
filled in (budget, evaluation interval, batch size), the device resolved, and every combination
that cannot work refused with a :class:`~tuner.training.options.TrainOptionsError` before any
training. They also say how the run's parameters are grouped for the optimizer and in which
order its batches come. The single loop builds one per run and the batched loop one per
configuration, so a configuration is refused, grouped and fed in a batch exactly as alone.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tuner.training.options import TrainOptions, TrainOptionsError
from tuner.training.steps import batches, resolve_device

if TYPE_CHECKING:
    import torch

    from tuner.plugin.optimizer import OptimizerPlugin
    from tuner.task.contract import Problem, Task

__all__ = ["RunSettings"]


class RunSettings:
    """The settings of one run of ``plugin`` with ``hyperparams`` on ``task`` and ``seed``.

    Attributes:
        task, plugin, hyperparams, seed, options: as given (the hyperparameters complete).
        device: the ``torch.device`` the run trains on.
        budget: optimizer steps (the option, or the task's default).
        eval_every: steps between two evaluations (the option, or the task's default).
        batch_size: examples per gradient before accumulation, or None for the full batch.

    Raises:
        TrainOptionsError: at construction, for options this task or optimizer cannot take.
        StepError: at construction, for a device that is not there.
    """

    def __init__(self, task: Task, plugin: OptimizerPlugin, hyperparams: dict[str, Any],
                 seed: int, options: TrainOptions) -> None:
        self.task, self.plugin, self.hyperparams, self.seed = task, plugin, hyperparams, seed
        self.options = options
        self.device = resolve_device(options.device)
        self.budget = options.budget or task.budget
        self.eval_every = options.eval_every or task.eval_every
        self.batch_size = options.batch_size or task.batch_size
        if self.batch_size is None and options.accumulate > 1:
            raise TrainOptionsError(
                f"task {task.name!r} trains on the full batch; gradient accumulation needs "
                "mini-batches (set a batch size)"
            )
        if plugin.full_batch_only and self.batch_size is not None:
            raise TrainOptionsError(
                f"optimizer {plugin.name!r} only works on full batches, and task {task.name!r} "
                f"trains on mini-batches of {self.batch_size}"
            )
        if plugin.wants_flat_loss and options.clip_norm is not None:
            raise TrainOptionsError(
                f"optimizer {plugin.name!r} searches along its own directions on the loss "
                "itself; gradient clipping (clip_norm) does not apply to it"
            )
        self._check_precision()

    def _check_precision(self) -> None:
        """Refuse a precision that cannot work here or with this optimizer."""
        precision, plugin = self.options.precision, self.plugin
        if precision == "fp16" and self.device.type != "cuda":
            raise TrainOptionsError(
                "precision fp16 needs CUDA (a gradient scaler on a GPU); on the CPU use bf16"
            )
        if precision in ("bf16", "fp16") and plugin.wants_flat_loss:
            raise TrainOptionsError(
                f"optimizer {plugin.name!r} searches on the loss itself; mixed precision "
                f"({precision}) does not apply to it: use float32 or float64"
            )
        if precision == "fp16" and plugin.needs_closure:
            raise TrainOptionsError(
                f"optimizer {plugin.name!r} re-evaluates the loss inside its step; fp16 with a "
                "gradient scaler does not apply to it: use bf16, float32 or float64"
            )

    def used_options(self) -> dict[str, Any]:
        """The options actually used, the task's defaults filled in (``RunResult.options``)."""
        used = asdict(self.options)
        used.update(budget=self.budget, eval_every=self.eval_every, batch_size=self.batch_size,
                    device=str(self.device))
        return used

    def check_size(self, param_count: int) -> None:
        """Refuse a model larger than the optimizer's declared limit (a dense Hessian)."""
        limit = self.plugin.max_params
        if limit is not None and param_count > limit:
            raise TrainOptionsError(
                f"optimizer {self.plugin.name!r} handles at most {limit:,} parameters, and "
                f"task {self.task.name!r} has {param_count:,}"
            )

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: one, or with ``decay_exclude`` (and an optimizer
        that decays) the biases and normalisation parameters (< 2 dimensions) in a second group
        with ``weight_decay`` 0."""
        parameters = [p for p in model.parameters() if p.requires_grad]
        if not (self.options.decay_exclude and "weight_decay" in self.plugin.space):
            return [{"params": parameters}]
        decayed = [p for p in parameters if p.dim() >= 2]
        excluded = [p for p in parameters if p.dim() < 2]
        groups = [{"params": decayed}] if decayed else []
        if excluded:
            groups.append({"params": excluded, "weight_decay": 0.0})
        return groups

    def batches(self, problem: Problem) -> Any:
        """The steps' batches: :func:`tuner.training.steps.batches` for this run's seed and
        sizes."""
        return batches(problem, self.batch_size, self.seed, self.options.accumulate,
                       task=self.task.name)

    def examples_per_step(self, problem: Problem) -> int:
        """Training examples that go into one optimizer step (``RunResult.examples_seen``)."""
        return (self.batch_size or problem.train_size) * self.options.accumulate
