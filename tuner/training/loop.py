"""One training run: (task, optimizer, hyperparameters, seed, options) -> a RunResult.

:func:`train` is the only entry point. It never raises once training has started: a loss that
blows up ends the run as ``diverged``, a callback can stop it as ``pruned``, and any other
exception makes it ``failed`` with a one-line ``error`` that says where it happened in the user's
code (:func:`tuner.task.failures.describe_failure`). Bad arguments (an unknown task or
optimizer, a hyperparameter outside its range, an impossible option, too few examples for the
batch size) raise a :class:`~tuner.errors.TunerError` before the first step is taken.

The device, the batch order and the optimizer step come from :mod:`tuner.training.steps`, which
lr-find and the conformance kit share. The loop is written for low overhead: the data stays on the
device as tensors and batches are drawn by indexing with a seeded permutation (no DataLoader);
the loss is read back once per step on the CPU, where that costs no device synchronisation, and
once every few steps on a GPU.
"""

from __future__ import annotations

import functools
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner.plugin.objective import EvaluationCounts
from tuner.task.failures import describe_failure
from tuner.training.options import (
    PRECISIONS,
    SCHEDULES,
    TrainOptions,
    TrainOptionsError,
    make_options,
)
from tuner.training.roles import role_groups
from tuner.training.steps import StepError, batches, optimizer_step, resolve_device

__all__ = [
    "PRECISIONS", "SCHEDULES", "STATUSES", "CurvePoint", "Pruned", "RunResult", "TrainOptions",
    "TrainOptionsError", "make_options", "resolve_device", "train",
]

if TYPE_CHECKING:
    import torch

    from tuner.plugin.optimizer import OptimizerPlugin
    from tuner.task.contract import Problem, Task

STATUSES = ("complete", "diverged", "pruned", "failed")

# Steps between two read-backs of the loss (divergence check, mean training loss), by device
# type. On the CPU it costs nothing to read every step; on a GPU each read-back synchronises.
LOSS_READBACK_EVERY = {"cpu": 1}
LOSS_READBACK_DEFAULT = 8


@dataclass
class CurvePoint:
    """One evaluation: where the run was and how it was doing.

    ``train_loss`` is the mean training loss over the steps since the previous evaluation,
    ``lr`` the learning rate (of the first parameter group) used by the last step, and
    ``seconds`` the wall time since training started (setup excluded, evaluations included).
    """

    step: int
    train_loss: float
    metric: float
    lr: float
    seconds: float


@dataclass
class RunResult:
    """Everything one run measured. ``status`` is one of :data:`STATUSES`.

    ``final_metric`` is the metric at the last evaluation, ``best_metric`` the best one over the
    run (in the task's direction). A diverged run keeps the curve up to the divergence and has
    ``final_metric`` None. Time-to-target is None when the target was never reached.

    ``peak_memory_bytes`` is, on CUDA, the peak of memory allocated by tensors during the run
    (``torch.cuda.max_memory_allocated`` after a reset). On the CPU it is the peak resident set
    size of the whole process during the run (Linux ``VmHWM``, reset at the start of the run
    through ``/proc/self/clear_refs``; elsewhere the process's lifetime peak from ``getrusage``):
    cheap and honest, but it includes the interpreter and torch themselves, so compare optimizers'
    memory with ``optimizer_state_bytes``. ``param_count`` and ``param_bytes`` are the number and
    the bytes (``numel * element_size``) of the trained parameters: the optimizer state as a
    multiple of the parameters is ``optimizer_state_bytes / param_bytes``.

    ``trajectory`` is the path of the model's point, start included, for tasks that record one
    (2-D test functions). ``options`` are the training options actually used (the task's defaults
    filled in), ``stopped_early`` tells whether early stopping ended the run.

    ``function_evals``, ``gradient_evals`` and ``hessian_evals`` count, over the whole run, the
    forward passes of the training loss, the backward passes, and the dense Hessians: the loop
    counts them at every call (:class:`tuner.plugin.objective.EvaluationCounts`), so a method that
    evaluates several times per step (a line search, L-BFGS's inner iterations) is charged for
    each. A full-batch first-order run makes one of each per step (``accumulate`` per step on
    mini-batches). Evaluations of the metric are not counted.

    ``task_params`` are the task's parameter values (:mod:`tuner.task.params`), ``dtype`` the
    parameters' dtype (``float64``; ``float32`` under ``bf16``/``fp16`` autocast, which
    ``options["precision"]`` records) and ``examples_seen`` the training examples that went into
    the gradients (batch size x accumulation x steps; the training set x steps on a full-batch
    task): the facts that advice across model sizes and batch sizes reads.

    ``lr_meaning`` is what the optimizer's ``lr`` is (its plugin's ``lr_meaning``: a step size,
    a multiplier, or a named convention), so that the advice compares lrs only like with like.

    ``batch`` is the number of runs trained together in one vectorised run
    (:func:`tuner.training.batched.training.train_batched`; also ``options["batch"]``): above 1,
    ``wall_seconds``, ``peak_memory_bytes`` and the curve's ``seconds`` are the whole batch's,
    shared by its runs, and the advice leaves them out of time and memory figures.
    """

    task: str
    optimizer: str
    params: dict[str, Any]
    seed: int
    status: str
    final_metric: float | None
    best_metric: float | None
    curve: list[CurvePoint] = field(default_factory=list)
    steps: int = 0
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    wall_seconds: float = 0.0
    peak_memory_bytes: int | None = None
    optimizer_state_bytes: int = 0
    param_count: int = 0
    param_bytes: int = 0
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    trajectory: list[tuple[float, float]] | None = None
    stopped_early: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    function_evals: int = 0
    gradient_evals: int = 0
    hessian_evals: int = 0
    task_params: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    examples_seen: int = 0
    batch: int = 1
    lr_meaning: str = "step size"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Pruned(Exception):
    """Raise from a callback to stop the run with status ``pruned`` (returning True does too).

    ``optuna.TrialPruned`` raised from a callback is treated the same way.
    """


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
    run = _Run(task, optimizer, hyperparams, seed, options, callback)
    return run.execute()


def _autocast(loss_of: Callable[[Any], Any], device_type: str, precision: str) -> Callable:
    """``loss_of`` with its forward pass and loss under autocast (``bf16`` or ``fp16``); the
    backward pass runs outside, as torch recommends."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def loss(batch: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            value = loss_of(batch)
        return value.float()

    return loss


def _to_double(data: Any) -> Any:
    """``data`` with every floating tensor in it (tuples, lists, dicts) in float64."""
    import torch

    if isinstance(data, torch.Tensor):
        return data.double() if data.is_floating_point() else data
    if isinstance(data, (tuple, list)):
        return type(data)(_to_double(item) for item in data)
    if isinstance(data, dict):
        return {key: _to_double(value) for key, value in data.items()}
    return data


def _in_double(problem: Problem) -> Problem:
    """The problem in float64: the model, the training tensors and the validation data."""
    problem.model.double()
    return replace(problem, train=_to_double(problem.train), val=_to_double(problem.val))


def _is_pruning(error: BaseException) -> bool:
    if isinstance(error, Pruned):
        return True
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(error, optuna.TrialPruned)


class _Diverged(Exception):
    """Internal: the loss blew up at ``step``."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


def _import_lazily_loaded_modules() -> None:
    """Import what torch imports on the first optimizer it builds (``torch._dynamo``, about 2 s),
    so that a process's first run is not charged for it."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # an exotic torch build without it: nothing to warm up
        pass


class _CpuPeakMemory:
    """Peak resident memory of this process over a stretch of time, as cheaply as possible."""

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.linux = True
        except OSError:
            self.linux = False

    def peak(self) -> int | None:
        if self.linux:
            try:
                with open("/proc/self/status") as handle:
                    for line in handle:
                        if line.startswith("VmHWM:"):
                            return int(line.split()[1]) * 1024
            except OSError:
                pass
        try:
            import resource
        except ImportError:
            return None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class _Measurement:
    """The wall time and peak memory of a stretch of training on ``device``, started at
    construction (after the lazily loaded modules are imported and the thread count set).

    The peak is ``torch.cuda.max_memory_allocated`` on CUDA, after a reset; on the CPU the
    process's peak resident set (:class:`_CpuPeakMemory`)."""

    def __init__(self, device: torch.device, threads: int | None) -> None:
        import torch

        _import_lazily_loaded_modules()
        if threads:
            torch.set_num_threads(threads)
        self.device, self.cuda = device, device.type == "cuda"
        self.memory = _CpuPeakMemory()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        else:
            self.memory.start()
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def peak(self) -> int | None:
        if self.cuda:
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        return self.memory.peak()


class _Run:
    """The state of one training run; :meth:`execute` fills in the result."""

    def __init__(
        self,
        task: Task,
        plugin: OptimizerPlugin,
        hyperparams: dict[str, Any],
        seed: int,
        options: TrainOptions,
        callback: Callable[[CurvePoint], bool | None] | None,
    ) -> None:
        import torch

        from tuner.version import __version__

        self.task, self.plugin, self.seed, self.callback = task, plugin, seed, callback
        self.hyperparams = hyperparams
        self.options = options
        self.optimizer: Any = None
        self.done = 0  # optimizer steps taken so far
        self._per_step = 0  # training examples per step, known once the task is built
        self._positions: list[torch.Tensor] = []
        self._stop = False
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
        self.counts = EvaluationCounts()
        used = asdict(options)
        used.update(budget=self.budget, eval_every=self.eval_every, batch_size=self.batch_size,
                    device=str(self.device))
        self.result = RunResult(
            task=task.name, optimizer=plugin.name, params=dict(hyperparams), seed=seed,
            status="failed", final_metric=None, best_metric=None, device=str(self.device),
            versions={"torch": torch.__version__, "python": platform.python_version(),
                      "tuner": __version__},
            options=used, task_params=dict(getattr(task, "task_params", {}) or {}),
            dtype="float64" if options.precision == "float64" else "float32",
            lr_meaning=plugin.lr_meaning,
        )
        if getattr(task, "code_hash", None):  # a task by reference: the code this run ran
            self.result.versions["task_code"] = str(task.code_hash)

    def _check_precision(self) -> None:
        """Refuse, before training, a precision that cannot work here or with this optimizer."""
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

    # -- the run --------------------------------------------------------------------------

    def execute(self) -> RunResult:
        import torch

        result = self.result
        measured = _Measurement(self.device, self.options.threads)
        try:
            self._train()
            result.status = "complete"
        except _Diverged as diverged:
            result.status = "diverged"
            result.steps = diverged.step
            result.final_metric = None
        except (TrainOptionsError, StepError):  # bad options, found once training began
            raise
        except Exception as error:  # any failure inside a run is a result, not a crash
            result.steps = self.done
            if _is_pruning(error):
                result.status = "pruned"
            else:
                result.status = "failed"
                result.error = describe_failure(error)
        finally:
            result.function_evals = self.counts.function
            result.gradient_evals = self.counts.gradient
            result.hessian_evals = self.counts.hessian
            result.examples_seen = self.done * self._per_step
            result.wall_seconds = measured.seconds()
            result.peak_memory_bytes = measured.peak()
            if self.optimizer is not None:
                from tuner.plugin.optimizer import optimizer_state_bytes

                try:
                    result.optimizer_state_bytes = optimizer_state_bytes(self.optimizer)
                except Exception:  # an exotic state layout must not lose the result
                    result.optimizer_state_bytes = 0
            if self._positions:
                result.trajectory = [
                    (float(x), float(y)) for x, y in torch.stack(self._positions).tolist()
                ]
        return result

    def _train(self) -> None:
        import torch

        task, options, result = self.task, self.options, self.result
        torch.manual_seed(self.seed)
        double = options.precision == "float64"
        problem = task.build(self.seed, self.device)
        if double:
            problem = _in_double(problem)
        model = problem.model.to(self.device)
        model.train()
        parameters = [p for p in model.parameters() if p.requires_grad]
        result.param_count = sum(p.numel() for p in parameters)
        result.param_bytes = sum(p.numel() * p.element_size() for p in parameters)
        self._check_size(result.param_count)
        groups = role_groups(task, self.plugin, model, self._groups(model))
        optimizer = self.optimizer = self.plugin.create(groups, self.hyperparams)
        per_step_schedule, plateau = self._schedules(optimizer)
        warmup = options.warmup
        order = self._batches(problem)
        if double and problem.dataset is not None:
            order = map(_to_double, order)
        self._per_step = (self.batch_size or problem.train_size) * options.accumulate
        scaler = None
        if options.precision == "fp16":
            scaler = torch.amp.GradScaler(self.device.type)
        clip_norm = options.clip_norm
        trajectory = task.records_trajectory
        self._positions = []
        if trajectory:
            self._positions.append(task.position(model).detach().clone())
        loss_of = functools.partial(task.loss, model)  # takes what ``order`` yields
        if options.precision in ("bf16", "fp16"):
            loss_of = _autocast(loss_of, self.device.type, options.precision)
        needs_closure = self.plugin.needs_closure
        flat_loss = self.plugin.wants_flat_loss
        counts = self.counts
        readback_every = LOSS_READBACK_EVERY.get(self.device.type, LOSS_READBACK_DEFAULT)
        read_each_step = readback_every == 1
        pending: list[torch.Tensor] = []
        threshold = options.divergence_threshold or task.divergence_threshold
        self._threshold = threshold
        loss_sum, loss_count = 0.0, 0
        self._best = None
        self._stale = 0
        budget, eval_every = self.budget, self.eval_every
        self._start = time.perf_counter()

        for step in range(budget):
            loss = optimizer_step(optimizer, loss_of, next(order), needs_closure=needs_closure,
                                  clip_norm=clip_norm, parameters=parameters,
                                  flat_loss=flat_loss, counts=counts, scaler=scaler)
            done = self.done = step + 1
            evaluating = done % eval_every == 0 or done == budget
            if evaluating:
                lr = float(optimizer.param_groups[0]["lr"])
            if per_step_schedule is not None and (plateau is None or step < warmup):
                per_step_schedule.step()
            if trajectory:
                self._positions.append(task.position(model).detach().clone())
            if read_each_step:
                value = loss.item()
                if threshold is None:
                    threshold = self._threshold_from(value, step)
                if not value <= threshold:  # also catches NaN
                    raise _Diverged(done)
                loss_sum += value
                loss_count += 1
            else:
                pending.append(loss)
                if evaluating or len(pending) >= readback_every:
                    total, count = self._check_losses(pending, done - len(pending))
                    loss_sum, loss_count, pending = loss_sum + total, loss_count + count, []
            if evaluating:
                self._evaluate(model, problem, optimizer, done, lr, loss_sum / max(loss_count, 1))
                loss_sum, loss_count = 0.0, 0
                if plateau is not None and step >= warmup:
                    plateau.step(result.curve[-1].metric)
                if self._stop:
                    break
        result.steps = done

    def _groups(self, model) -> list[dict[str, Any]]:
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

    def _check_size(self, param_count: int) -> None:
        """Refuse a model larger than the optimizer's declared limit (a dense Hessian)."""
        limit = self.plugin.max_params
        if limit is not None and param_count > limit:
            raise TrainOptionsError(
                f"optimizer {self.plugin.name!r} handles at most {limit:,} parameters, and "
                f"task {self.task.name!r} has {param_count:,}"
            )

    def _threshold_from(self, first: float, step: int) -> float:
        """The divergence threshold from the first loss (a non-finite one is divergence)."""
        if not math.isfinite(first):
            raise _Diverged(step + 1)
        self._threshold = self.options.divergence_factor * max(abs(first), 1.0)
        return self._threshold

    def _check_losses(self, pending: list, first_step: int) -> tuple[float, int]:
        """Read back a few steps' losses at once; raise _Diverged at the first out of bounds.

        Returns their sum and count, for the mean training loss.
        """
        import torch

        values = torch.stack(pending).tolist()
        if self._threshold is None:
            self._threshold_from(values[0], first_step)
        threshold = self._threshold
        for offset, value in enumerate(values):
            if not value <= threshold:  # also catches NaN
                raise _Diverged(first_step + offset + 1)
        return sum(values), len(values)

    def _evaluate(
        self, model, problem: Problem, optimizer, step: int, lr: float, train_loss: float
    ) -> None:
        """Evaluate, append a curve point, update the bests, decide on stopping."""
        import torch

        from tuner.plugin.optimizer import eval_mode, train_mode

        task, result = self.task, self.result
        eval_mode(optimizer)
        model.eval()
        try:
            with torch.no_grad():
                metric = float(task.evaluate(model, problem))
        finally:
            model.train()
            train_mode(optimizer)
        point = CurvePoint(step=step, train_loss=train_loss, metric=metric, lr=lr,
                           seconds=time.perf_counter() - self._start)
        result.curve.append(point)
        result.steps = step
        if not math.isfinite(metric):
            raise _Diverged(step)
        result.final_metric = metric
        if result.steps_to_target is None and task.reached(metric):
            result.steps_to_target, result.seconds_to_target = step, point.seconds
        if task.better(metric, self._best, self.options.min_delta):
            self._stale = 0
        else:
            self._stale += 1
        if task.better(metric, self._best):
            self._best = metric
        result.best_metric = self._best
        if self.options.patience is not None and self._stale >= self.options.patience:
            result.stopped_early = True
            self._stop = True
        if self.callback is not None and self.callback(point):
            raise Pruned(f"pruned at step {step}")

    # -- helpers --------------------------------------------------------------------------

    def _schedules(self, optimizer) -> tuple[Any, Any]:
        """The per-step scheduler (warmup and schedule composed) and the plateau scheduler."""
        from torch.optim import lr_scheduler

        options = self.options
        warmup, schedule = options.warmup, options.schedule
        after = max(self.budget - warmup, 1)
        main = None
        plateau = None
        if schedule == "cosine":
            # eta_min is absolute, the same for every group: the floor of the run's lr
            main = lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=after,
                eta_min=options.floor * float(optimizer.param_groups[0]["lr"]),
            )
        elif schedule == "linear":
            main = lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=options.floor,
                                         total_iters=after)
        elif schedule == "step":
            main = lr_scheduler.StepLR(optimizer, step_size=options.step_size or
                                       max(after // 3, 1), gamma=options.gamma)
        elif schedule == "plateau":
            plateau = lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max" if self.task.direction == "maximize" else "min",
                factor=options.gamma, patience=options.plateau_patience,
            )
        if not warmup:
            return main, plateau
        ramp = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup + 1),
                                     end_factor=1.0, total_iters=warmup)
        if main is None:
            return ramp, plateau
        return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup]), plateau

    def _batches(self, problem: Problem) -> Any:
        """The steps' batches: :func:`tuner.training.steps.batches` for this run's seed and
        sizes."""
        return batches(problem, self.batch_size, self.seed, self.options.accumulate,
                       task=self.task.name)
