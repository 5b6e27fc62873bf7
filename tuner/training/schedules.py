"""The learning-rate schedulers of one run, built from its training options:
:func:`lr_schedulers`.

The single loop builds them on the run's optimizer; the batched loop builds the very same ones,
per configuration, on a stand-in optimizer that holds that configuration's lr, and scales each
slice's step by their lr. One function for both keeps a batched run's schedule equal to its run
alone. All are ``torch.optim.lr_scheduler`` schedulers (torch is imported inside).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.training.options import TrainOptions

__all__ = ["lr_schedulers"]


def lr_schedulers(optimizer: Any, options: TrainOptions, budget: int, direction: str
                  ) -> tuple[Any, Any]:
    """The per-step scheduler and the plateau scheduler of a run (either may be None).

    Args:
        optimizer: the ``torch.optim`` optimizer whose lr they drive; its first group's lr at
            construction is the run's lr (the cosine floor is a fraction of it).
        options: the run's ``schedule``, ``warmup``, ``floor``, ``step_size``, ``gamma`` and
            ``plateau_patience``.
        budget: the run's steps; the schedule runs over those after the warm-up.
        direction: the task's metric direction (``minimize`` or ``maximize``), for ``plateau``.

    Returns:
        ``(per_step, plateau)``: the warm-up and the schedule composed into one scheduler to
        step after every optimizer step (during the warm-up only, when there is a plateau
        scheduler), and the ``ReduceLROnPlateau`` to step with each evaluation's metric after
        the warm-up.
    """
    from torch.optim import lr_scheduler

    warmup, schedule = options.warmup, options.schedule
    after = max(budget - warmup, 1)
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
            optimizer, mode="max" if direction == "maximize" else "min",
            factor=options.gamma, patience=options.plateau_patience,
        )
    if not warmup:
        return main, plateau
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup + 1),
                                 end_factor=1.0, total_iters=warmup)
    if main is None:
        return ramp, plateau
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup]), plateau
