"""How to train, beyond the optimizer's hyperparameters: :class:`TrainOptions`, the
practitioner's knobs of one run, and their checks.

Apart from the loop (:mod:`tuner.training`, which re-exports them) so that study files and
their training options (:mod:`tuner.study.training`) read the names and defaults without the
loop. Imports nothing heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from tuner.errors import TunerError
from tuner.training.steps import DEVICES

__all__ = ["PRECISIONS", "SCHEDULES", "TrainOptions", "TrainOptionsError", "make_options"]

SCHEDULES = ("constant", "cosine", "linear", "step", "plateau")
PRECISIONS = ("float32", "float64", "bf16", "fp16")


class TrainOptionsError(TunerError, ValueError):
    """A training option that cannot work (an unknown schedule, a negative budget, ...)."""


@dataclass
class TrainOptions:
    """How to train, beyond the optimizer's hyperparameters: the practitioner's knobs.

    Attributes:
        schedule: learning-rate schedule after warmup: ``constant``, ``cosine`` (to 0 at the end
            of the budget), ``linear`` (decay to 0), ``step`` (times ``gamma`` every
            ``step_size`` steps) or ``plateau`` (times ``gamma`` when the metric has not improved
            for ``plateau_patience`` evaluations). All are torch.optim.lr_scheduler schedulers.
        warmup: steps of linear warmup: the lr of step ``s < warmup`` (counting from 0) is
            ``lr * (s + 1) / (warmup + 1)``; the schedule then runs over the remaining steps.
        step_size: steps between two decays of the ``step`` schedule (default: a third of the
            steps after warmup).
        gamma: the factor of each decay of the ``step`` and ``plateau`` schedules.
        plateau_patience: evaluations without improvement before ``plateau`` decays the lr.
        clip_norm: clip the gradients' global L2 norm to this value before each step.
        accumulate: accumulate the gradients of this many batches into one optimizer step
            (each batch's loss is divided by ``accumulate``, so ``k`` batches of ``b`` give the
            gradient of one batch of ``k * b``).
        patience: early stopping: stop after this many evaluations without an improvement of
            more than ``min_delta`` over the best metric.
        min_delta: the improvement that counts for early stopping.
        floor: the lr that the ``cosine`` and ``linear`` schedules end at, as a fraction of the
            run's lr (0: decay to 0).
        decay_exclude: weight decay is not applied to biases and normalisation parameters (the
            parameters with fewer than two dimensions): the optimizer receives two parameter
            groups, the second with ``weight_decay`` 0. Only for optimizers that have a
            ``weight_decay`` hyperparameter.
        precision: ``float32``; ``float64`` (the model and the data in double precision);
            ``bf16`` (forward pass and loss under bfloat16 autocast, weights and optimizer state
            in float32); ``fp16`` (float16 autocast with a gradient scaler, CUDA only).
        batch_size: override the task's batch size (examples per gradient, before
            accumulation); on a full-batch task it switches to mini-batches.
        budget: override the task's number of optimizer steps.
        eval_every: override the task's steps between evaluations.
        divergence_factor: a training loss above this multiple of the first step's loss (at
            least 1.0 is used as the base) ends the run as diverged.
        divergence_threshold: an absolute loss threshold instead (beats the task's own).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda`` (or ``cuda:N``).
        threads: torch's CPU threads for the run (``torch.set_num_threads``, put back after
            it); None: one, or more for a step large enough to gain from them, within
            ``cores`` (:mod:`tuner.training.threads`). The count used is recorded either way.
        cores: the CPU cores a run with ``threads`` None may spread over (None: those of this
            process less one, :func:`tuner.training.threads.cores_per_worker`); a local worker
            of a study gets its share.
    """

    schedule: str = "constant"
    warmup: int = 0
    step_size: int | None = None
    gamma: float = 0.1
    plateau_patience: int = 2
    clip_norm: float | None = None
    accumulate: int = 1
    patience: int | None = None
    min_delta: float = 0.0
    floor: float = 0.0
    decay_exclude: bool = False
    precision: str = "float32"
    batch_size: int | None = None
    budget: int | None = None
    eval_every: int | None = None
    divergence_factor: float = 1e3
    divergence_threshold: float | None = None
    device: str = "auto"
    threads: int | None = None
    cores: int | None = None

    def check(self) -> None:
        """Raise :class:`TrainOptionsError` naming the first option that cannot work."""
        if self.schedule not in SCHEDULES:
            raise TrainOptionsError(
                f"unknown schedule {self.schedule!r}; choose from: {', '.join(SCHEDULES)}"
            )
        device = self.device.split(":")[0]
        if device not in DEVICES:
            raise TrainOptionsError(
                f"unknown device {self.device!r}; choose from: {', '.join(DEVICES)}"
            )
        for name in ("warmup",):
            if getattr(self, name) < 0:
                raise TrainOptionsError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("step_size", "plateau_patience", "accumulate", "patience", "batch_size",
                     "budget", "eval_every", "threads", "cores"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise TrainOptionsError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("gamma", "clip_norm", "divergence_factor", "divergence_threshold"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise TrainOptionsError(f"{name} must be a positive number, got {value!r}")
        if self.min_delta < 0:
            raise TrainOptionsError(f"min_delta must be >= 0, got {self.min_delta!r}")
        if not (isinstance(self.floor, (int, float)) and 0.0 <= self.floor < 1.0):
            raise TrainOptionsError(f"floor must be in [0, 1), got {self.floor!r}")
        if not isinstance(self.decay_exclude, bool):
            raise TrainOptionsError(f"decay_exclude must be true or false, got "
                                    f"{self.decay_exclude!r}")
        if self.precision not in PRECISIONS:
            raise TrainOptionsError(
                f"unknown precision {self.precision!r}; choose from: {', '.join(PRECISIONS)}"
            )


def make_options(options: TrainOptions | None = None, **values: Any) -> TrainOptions:
    """``options`` (or the defaults) with ``values`` replacing fields; unknown names are errors."""
    known = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainOptionsError(
            f"unknown training option {unknown[0]!r}; the options are: {', '.join(sorted(known))}"
        )
    result = replace(options or TrainOptions(), **values)
    result.check()
    return result
