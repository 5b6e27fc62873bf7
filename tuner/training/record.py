"""What one training run accumulates and decides while it trains: :class:`RunRecord`.

A loop (the single one, :mod:`tuner.training.loop`, or the batched one,
:mod:`tuner.training.batched.training`, with one record per configuration) takes the steps; the
record keeps what they produce and makes the decisions that do not depend on how the steps were
taken, so a run alone and the same run in a batch end the same way:

- the divergence check (:meth:`RunRecord.check_loss`): a training loss above the threshold, or
  not a number, ends the run as ``diverged``; the threshold is the option's, else the task's,
  else ``divergence_factor`` times the first loss (at least 1.0 as the base);
- each evaluation (:meth:`RunRecord.evaluate`): a :class:`~tuner.training.result.CurvePoint`,
  the best metric so far, time-to-target, early stopping (``patience`` evaluations without an
  improvement of more than ``min_delta``: ``result.stopped_early``) and the caller's callback,
  which may prune the run;
- the model's trajectory (:meth:`RunRecord.record_position`) and the evaluation counts;
- how the run ended (:meth:`RunRecord.end`, :meth:`RunRecord.end_on` for an exception:
  :class:`Diverged`, a pruning (:func:`is_pruning`) or a failure) and its whole-run figures
  (:meth:`RunRecord.close`).

The record raises :class:`Diverged` and :class:`Pruned` from inside the step or the evaluation
that found them; the loop catches them and calls :meth:`RunRecord.end_on`.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuner.plugin.objective import EvaluationCounts
from tuner.task.failures import describe_failure
from tuner.training.result import CurvePoint, RunResult

if TYPE_CHECKING:
    import torch

    from tuner.task.contract import Problem
    from tuner.training.settings import RunSettings

__all__ = ["Diverged", "Pruned", "RunRecord", "is_pruning"]


class Pruned(Exception):
    """Raise from a callback to stop the run with status ``pruned`` (returning True does too).

    ``optuna.TrialPruned`` raised from a callback is treated the same way.
    """


class Diverged(Exception):
    """The run's loss blew up at ``step`` (counting steps from 1): the run ends ``diverged``."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


def is_pruning(error: BaseException) -> bool:
    """Whether ``error`` prunes the run: :class:`Pruned`, or ``optuna.TrialPruned`` when Optuna
    is loaded (checked without importing it)."""
    if isinstance(error, Pruned):
        return True
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(error, optuna.TrialPruned)


class RunRecord:
    """The record of one run with ``settings``; ``callback`` sees each new curve point.

    Attributes:
        settings: the run's :class:`~tuner.training.settings.RunSettings`.
        result: the :class:`~tuner.training.result.RunResult` being filled in (status
            ``failed`` until :meth:`end` says otherwise).
        counts: the loss, gradient and Hessian evaluations of the steps (the loop's step
            functions count into it).
        threshold: the training loss above which the run diverges; None until the first loss
            sets it, when neither the options nor the task give one.
        stale: evaluations since the metric last improved by more than ``min_delta``.
        positions: the model's point after each step, the start first (trajectory tasks).
        started: ``time.perf_counter()`` when training began (:meth:`start`).
    """

    def __init__(self, settings: RunSettings,
                 callback: Callable[[CurvePoint], bool | None] | None = None) -> None:
        import torch

        from tuner.version import __version__

        self.settings, self.callback = settings, callback
        task, options = settings.task, settings.options
        self.counts = EvaluationCounts()
        self.result = RunResult(
            task=task.name, optimizer=settings.plugin.name, params=dict(settings.hyperparams),
            seed=settings.seed, status="failed", final_metric=None, best_metric=None,
            device=str(settings.device),
            versions={"torch": torch.__version__, "python": platform.python_version(),
                      "tuner": __version__},
            options=settings.used_options(),
            task_params=dict(getattr(task, "task_params", {}) or {}),
            dtype="float64" if options.precision == "float64" else "float32",
            lr_meaning=settings.plugin.lr_meaning,
        )
        if getattr(task, "code_hash", None):  # a task by reference: the code this run ran
            self.result.versions["task_code"] = str(task.code_hash)
        self.threshold: float | None = (options.divergence_threshold
                                        or task.divergence_threshold)
        self.stale = 0
        self.positions: list[torch.Tensor] = []
        self.started = time.perf_counter()  # until the loop says when training began

    def start(self, at: float) -> None:
        """Training began at ``at`` (``time.perf_counter()``): the curve's seconds count from
        it (a batch gives all its runs the same moment)."""
        self.started = at

    def record_position(self, model: torch.nn.Module) -> None:
        """Append the model's current point to the trajectory (a task that records one)."""
        self.positions.append(self.settings.task.position(model).detach().clone())

    def check_loss(self, value: float, step: int) -> None:
        """Raise :class:`Diverged` if the training loss ``value`` of step ``step`` (counting
        from 0) is above the threshold or not a number; the first loss sets the threshold
        when none was given (a non-finite first loss is divergence)."""
        if self.threshold is None:
            if not math.isfinite(value):
                raise Diverged(step + 1)
            self.threshold = self.settings.options.divergence_factor * max(abs(value), 1.0)
        if not value <= self.threshold:  # also catches NaN
            raise Diverged(step + 1)

    def evaluate(self, model: torch.nn.Module, problem: Problem, optimizer: Any, step: int,
                 lr: float, train_loss: float) -> None:
        """Evaluate ``model`` after ``step`` steps, append the curve point, update the best
        metric, time-to-target and early stopping, and call the callback.

        ``optimizer`` is switched to its evaluation weights meanwhile (Schedule-Free; None when
        the caller switches it). Raises :class:`Diverged` on a metric that is not finite and
        :class:`Pruned` when the callback returns True (or whatever the callback raises).
        """
        import torch

        from tuner.plugin.optimizer import eval_mode, train_mode

        task, options, result = self.settings.task, self.settings.options, self.result
        eval_mode(optimizer)
        model.eval()
        try:
            with torch.no_grad():
                metric = float(task.evaluate(model, problem))
        finally:
            model.train()
            train_mode(optimizer)
        point = CurvePoint(step=step, train_loss=train_loss, metric=metric, lr=lr,
                           seconds=time.perf_counter() - self.started)
        result.curve.append(point)
        result.steps = step
        if not math.isfinite(metric):
            raise Diverged(step)
        result.final_metric = metric
        if result.steps_to_target is None and task.reached(metric):
            result.steps_to_target, result.seconds_to_target = step, point.seconds
        if task.better(metric, result.best_metric, options.min_delta):
            self.stale = 0
        else:
            self.stale += 1
        if task.better(metric, result.best_metric):
            result.best_metric = metric
        if options.patience is not None and self.stale >= options.patience:
            result.stopped_early = True
        if self.callback is not None and self.callback(point):
            raise Pruned(f"pruned at step {step}")

    def end(self, status: str, steps: int, error: str | None = None) -> None:
        """The run ended with ``status`` after ``steps`` steps (a diverged run has no final
        metric); ``error`` is a failure's one line."""
        result = self.result
        result.status, result.steps = status, steps
        if status == "diverged":
            result.final_metric = None
        if error is not None:
            result.error = error

    def end_on(self, error: BaseException, steps: int) -> None:
        """The run ended on ``error`` after ``steps`` steps: ``diverged`` at the step a
        :class:`Diverged` names, ``pruned`` (:func:`is_pruning`), or else ``failed`` with
        where it happened in the user's code."""
        if isinstance(error, Diverged):
            self.end("diverged", error.step)
        elif is_pruning(error):
            self.end("pruned", steps)
        else:
            self.end("failed", steps, describe_failure(error))

    def close(self, wall_seconds: float, peak_memory_bytes: int | None,
              optimizer_state_bytes: int) -> RunResult:
        """Write the whole run's figures into the result and return it: the evaluation
        counts, the time and peak memory measured (:class:`~tuner.training.measurement.
        Measurement`), the optimizer state and the trajectory."""
        result = self.result
        result.function_evals = self.counts.function
        result.gradient_evals = self.counts.gradient
        result.hessian_evals = self.counts.hessian
        result.wall_seconds = wall_seconds
        result.peak_memory_bytes = peak_memory_bytes
        result.optimizer_state_bytes = optimizer_state_bytes
        if self.positions:
            import torch

            result.trajectory = [
                (float(x), float(y)) for x, y in torch.stack(self.positions).tolist()
            ]
        return result
