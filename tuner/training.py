"""One training run: (task, optimizer, hyperparameters, seed, options) -> a RunResult.

(The training loop itself is being written; the result type below is the contract the driver and
the store rely on.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("complete", "diverged", "pruned", "failed")


@dataclass
class CurvePoint:
    """One evaluation: where the run was and how it was doing."""

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
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
