"""Whether a task itself is broken: every run of it diverged before its first finite evaluation.

A study whose every run is NaN from the start has not learned that every learning rate is bad;
it has learned that the task's loss or data is. The rule, decided here once, for a study
(``tuner study run`` and ``study show``) and for a task across the store (``tuner best`` and
``advise``):

* the runs weighed are those that ended with a result: complete, pruned or diverged (a failed
  run raised an exception, and its slot is reported as given up instead);
* such a run *diverged at its first evaluation* when it is ``diverged`` and its curve holds no
  finite metric: its training loss blew up before the first evaluation (it has no curve point),
  or that evaluation was itself not finite (the store keeps NaN and infinities as null);
* the task is *broken* when every run weighed diverged at its first evaluation, and either they
  span two configurations or more, or every one of them ended at step 1 with no evaluation. The
  loss of step 1 is the initial model's, computed before the optimizer has changed anything, so
  no learning rate can make it NaN; a single configuration that blows up later may just have
  too large a learning rate.

Reads of runs and curve points only: no task plugin, no torch, no Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, exists, func, select

from tuner.store.models import CurveRow, Run
from tuner.store.target import Target, reading

RESULT_STATUSES = ("complete", "pruned", "diverged")
"""The run statuses the rule weighs (a failed run has no result)."""


@dataclass(frozen=True)
class BrokenTask:
    """The evidence that a task is broken: its weighed ``runs`` and their ``configurations``;
    ``loss_steps`` the (first, last) step at which the runs without an evaluation diverged,
    ``metric_steps`` the (first, last) step of the runs whose first evaluation was not finite
    (None when there are none of that kind)."""

    task: str
    metric: str
    runs: int
    configurations: int
    loss_steps: tuple[int, int] | None
    metric_steps: tuple[int, int] | None

    def message(self) -> str:
        """The one line that says so, e.g. ``every run of task 'x' diverged at its first
        evaluation (loss not finite at step 1) for all 6 configurations: the task itself is
        broken (check its loss and data), not the learning rate``."""
        causes = []
        if self.loss_steps is not None:
            verb = "not finite" if self.loss_steps == (1, 1) else "diverged"
            causes.append(f"loss {verb} at {_steps_text(self.loss_steps)}")
        if self.metric_steps is not None:
            causes.append(f"{self.metric} not finite at {_steps_text(self.metric_steps)}")
        scope = (f"all {self.configurations} configurations" if self.configurations > 1
                 else "the one configuration tried")
        return (
            f"every run of task {self.task!r} diverged at its first evaluation "
            f"({'; '.join(causes)}) for {scope}: the task itself is broken (check its loss and "
            "data), not the learning rate"
        )


def _steps_text(steps: tuple[int, int]) -> str:
    first, last = steps
    return f"step {first}" if first == last else f"steps {first}-{last}"


def broken_task(
    target: Target, task: str, metric: str, *, study_id: int | None = None
) -> BrokenTask | None:
    """The evidence that ``task`` is broken (the rule of this module), from its runs in study
    ``study_id``, or in the whole store when None; None when it is not."""
    weighed = Run.status.in_(RESULT_STATUSES)
    scope = and_(Run.study_id == study_id, weighed) if study_id is not None else and_(
        Run.task == task, weighed)
    with reading(target) as reader:
        runs, diverged, configurations = reader.execute(
            select(func.count(), func.count(case((Run.status == "diverged", 1))),
                   func.count(func.distinct(Run.config_hash)))
            .where(scope)
        ).one()
        if not runs or diverged < runs:
            return None
        finite = reader.scalar(select(exists().where(
            CurveRow.run_id == Run.id, CurveRow.metric.is_not(None), scope)))
        if finite:
            return None
        evaluated = exists().where(CurveRow.run_id == Run.id).label("evaluated")
        each = select(Run.steps.label("steps"), evaluated).where(scope).subquery()
        kinds = reader.execute(
            select(each.c.evaluated, func.min(each.c.steps), func.max(each.c.steps))
            .group_by(each.c.evaluated)
        ).all()
    steps = {bool(kind): (int(first), int(last)) for kind, first, last in kinds}
    found = BrokenTask(task, metric, int(runs), max(int(configurations), 1),
                       steps.get(False), steps.get(True))
    lr_independent = found.loss_steps == (1, 1) and found.metric_steps is None
    return found if found.configurations > 1 or lr_independent else None
