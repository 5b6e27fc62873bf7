"""The training layer: one run of (task, optimizer, hyperparameters, seed) -> a result.

- :mod:`~tuner.training.loop`: :func:`train`, the single run.
- :mod:`~tuner.training.result`: what a run reports (:class:`RunResult`, :class:`CurvePoint`).
- What the single and the batched loop share, each a public part: a run's settings, resolved and
  checked before training (:mod:`~tuner.training.settings`); what it accumulates and decides
  while it trains (:mod:`~tuner.training.record`: curve, bests, early stopping, divergence,
  :class:`Pruned`); its time and memory (:mod:`~tuner.training.measurement`); its precision
  (:mod:`~tuner.training.precision`) and its learning-rate schedulers
  (:mod:`~tuner.training.schedules`).
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
    **dict.fromkeys(["train", "LOSS_READBACK_EVERY", "LOSS_READBACK_DEFAULT"], "loop"),
    **dict.fromkeys(["RunResult", "CurvePoint", "STATUSES"], "result"),
    "Pruned": "record",
    **dict.fromkeys(["TrainOptions", "TrainOptionsError", "make_options", "PRECISIONS",
                     "SCHEDULES"], "options"),
    **dict.fromkeys(["StepError", "batches", "optimizer_step", "resolve_device"], "steps"),
})

