"""The task plugin contract: a reference model and its data, on which optimizers are measured."""

from __future__ import annotations

from typing import Any, ClassVar

KINDS = ("convex", "vision", "sequence", "sparse")
DIRECTIONS = ("minimize", "maximize")


class Task:
    """A reference training problem: data, a model, a loss and a metric.

    Subclass it and set the class attributes below; register an instance from a
    ``register_tasks`` hook. The training loop (:func:`tuner.training.train`) drives it: the same
    seed must give the same data split, the same initial weights and the same batch order.

    Attributes:
        name: lower-case name used on the command line.
        summary: one line for ``tuner tasks list``.
        kind: one of ``convex``, ``vision``, ``sequence``, ``sparse``.
        data: where the data comes from: ``generated``, or the shipped file and its licence.
        metric: name of the reported metric (``val_accuracy``, ``val_bpc``, ``loss``).
        direction: ``minimize`` or ``maximize`` for the metric.
        target: the metric value that counts as reached, for time-to-target.
        budget: default number of optimizer steps of one run.
        eval_every: steps between evaluations (each one adds a point to the curve).
        batch_size: default batch size; ``None`` for full-batch tasks.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[str]
    data: ClassVar[str] = "generated"
    metric: ClassVar[str]
    direction: ClassVar[str]
    target: ClassVar[float]
    budget: ClassVar[int]
    eval_every: ClassVar[int]
    batch_size: ClassVar[int | None] = None

    plugin: str = ""
    version: str = ""

    def describe(self) -> dict[str, Any]:
        """The declared attributes, JSON-ready."""
        keys = ("name", "summary", "kind", "data", "metric", "direction", "target", "budget",
                "eval_every", "batch_size")
        return {key: getattr(self, key) for key in keys}

    def problems(self) -> list[str]:
        """What is wrong with the declaration, for the plugin loader's one-line error."""
        found = []
        for key in ("name", "summary", "metric", "target", "budget", "eval_every"):
            if not hasattr(self, key):
                found.append(f"missing attribute {key!r}")
        if getattr(self, "kind", None) not in KINDS:
            found.append(f"kind must be one of {', '.join(KINDS)}")
        if getattr(self, "direction", None) not in DIRECTIONS:
            found.append(f"direction must be one of {', '.join(DIRECTIONS)}")
        if isinstance(getattr(self, "budget", None), int) and self.budget <= 0:
            found.append("budget must be positive")
        return found
