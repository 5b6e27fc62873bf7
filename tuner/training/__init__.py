"""The training layer: one run of (task, optimizer, hyperparameters, seed) -> a result.

- :mod:`~tuner.training.loop`: :func:`train`, the single run, and its :class:`RunResult`.
- :mod:`~tuner.training.steps`: the device, the batch order and the optimizer step, shared by the
  loop, lr-find and the conformance kit.
- :mod:`~tuner.training.options`: the training options (:class:`TrainOptions`).
- :mod:`~tuner.training.threads`: how many torch threads a run trains with.
- :mod:`~tuner.training.lr_find`: the learning-rate range test.
- :mod:`~tuner.training.batched`: K configurations of one optimizer trained in one vectorised run.

The names below are handed out on first use (importing this package imports no torch).
"""

from tuner._faces import lazy_face

__all__ = [
    "CurvePoint", "LOSS_READBACK_DEFAULT", "LOSS_READBACK_EVERY",
    "PRECISIONS", "Pruned", "RunResult", "SCHEDULES", "STATUSES", "StepError", "TrainOptions",
    "TrainOptionsError", "batches", "make_options", "optimizer_step",
    "resolve_device", "train",
]

__getattr__ = lazy_face(__name__, {
    **dict.fromkeys(["train", "RunResult", "CurvePoint", "Pruned", "STATUSES",
                     "LOSS_READBACK_EVERY", "LOSS_READBACK_DEFAULT"], "loop"),
    **dict.fromkeys(["TrainOptions", "TrainOptionsError", "make_options", "PRECISIONS",
                     "SCHEDULES"], "options"),
    **dict.fromkeys(["StepError", "batches", "optimizer_step", "resolve_device"], "steps"),
})

