"""What one training run reports: :class:`RunResult`, its curve of :class:`CurvePoint`, and the
:data:`STATUSES` a run can end with.

Plain data with no behaviour, apart from the loops (:mod:`tuner.training.loop`, which
re-exports them, and :mod:`tuner.training.batched.training`) so that the run's bookkeeping
(:mod:`tuner.training.record`), the store and the advice read them without the loops. Imports
nothing heavy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["STATUSES", "CurvePoint", "RunResult"]

STATUSES = ("complete", "diverged", "pruned", "failed")


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
