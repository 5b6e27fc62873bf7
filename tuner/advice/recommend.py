"""The recommendation for a task (``tuner advise``): one or two sentences and their evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.advice.formatting import format_lr, format_metric, format_spread, join_names
from tuner.advice.ranking import TaskRanking, rank_task
from tuner.advice.source import open_for_reading
from tuner.advice.stats import Tolerance, parse_memory_budget, tied_within_noise

if TYPE_CHECKING:
    from tuner.store import Store


@dataclass
class Advice:
    """The recommendation for a task in one or two sentences, and the evidence behind it.

    ``ranking`` is the ranking the advice was drawn from: within the memory budget when one was
    given. ``left_out`` names the optimizers that have results but no configuration within it.
    """

    task: str
    text: str
    optimizer: str | None
    params: dict[str, Any]
    lr: float | None
    good_lr: tuple[float, float] | None
    mean: float | None
    std: float | None
    seeds: int
    trials: int
    tied_with: list[str]
    memory_budget: float | None
    left_out: list[str]
    ranking: TaskRanking
    training: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "advice": self.text, "optimizer": self.optimizer,
            "params": self.params, "training": self.training, "lr": self.lr,
            "good_lr": list(self.good_lr) if self.good_lr else None,
            "mean": self.mean, "std": self.std, "seeds": self.seeds, "trials": self.trials,
            "tied_with": self.tied_with, "memory_budget": self.memory_budget,
            "left_out_by_memory_budget": self.left_out, "ranking": self.ranking.to_dict(),
        }


def advise(
    task: str,
    db: str | Store | None = None,
    memory_budget: str | float | None = None,
    tolerance: str | float | Tolerance | None = None,
) -> Advice:
    """The recommendation for ``task`` (``tuner advise``), optionally within a memory budget.

    ``memory_budget`` (``"1n"``, ``"2n"``, ...) judges every configuration by its measured
    optimizer state (``optimizer_state_bytes / param_bytes`` of its runs): each optimizer is
    represented by its best configuration within the budget, and an optimizer with none (a
    tuned RMSprop with momentum and centering measures 3n) is left out.
    """
    budget = parse_memory_budget(memory_budget)
    store, opened = open_for_reading(db)
    try:
        everything = rank_task(task, db=store, tolerance=tolerance)
        ranking = everything if budget is None else rank_task(
            task, db=store, tolerance=tolerance, memory_budget=budget
        )
    finally:
        if opened:
            store.dispose()
    fitting = {s.optimizer for s in ranking.optimizers if s.mean is not None}
    left_out = [s.optimizer for s in everything.optimizers
                if s.mean is not None and s.optimizer not in fitting]
    candidates = [s for s in ranking.optimizers if s.mean is not None]
    metric = ranking.metric
    if not candidates:
        why = (
            f"within a memory budget of {budget:g}n" if budget is not None and left_out
            else "that completed without diverging"
        )
        return Advice(
            task=task, text=f"On {task}, no measured optimizer {why}; run a study first.",
            optimizer=None, params={}, lr=None, good_lr=None, mean=None, std=None, seeds=0,
            trials=0, tied_with=[], memory_budget=budget, left_out=left_out, ranking=ranking,
        )
    top = candidates[0]
    tied = [
        s.optimizer for s in candidates[1:]
        if tied_within_noise(top.mean, top.standard_error, s.mean, s.standard_error)
    ]
    text = f"On {task}, use {top.optimizer}"
    if top.lr is not None:
        text += f" with lr {format_lr(top.lr)}"
        if top.good_lr and top.good_lr[0] < top.good_lr[1]:
            text += f" (good range {format_lr(top.good_lr[0])}..{format_lr(top.good_lr[1])})"
    seeds = f"{top.seeds} seed" + ("s" if top.seeds != 1 else "")
    text += (
        f": {format_metric(top.mean, metric)} ± {format_spread(top.std, metric)} {metric} "
        f"over {seeds}, {top.trials} trials"
    )
    if tied:
        verb = "is" if len(tied) == 1 else "are"
        text += f"; {join_names(tied)} {verb} tied within noise."
    elif len(candidates) > 1:
        second = candidates[1]
        if top.seeds < 2 or second.seeds < 2:
            text += f"; next is {second.optimizer} (too few seeds to judge the noise)."
        else:
            relative = (
                f" ({second.gap_relative * 100:.1f}%)" if second.gap_relative is not None else ""
            )
            text += (
                f"; it beats the next, {second.optimizer}, by "
                f"{format_spread(second.gap, metric)}{relative}."
            )
    else:
        text += "."
    if budget is not None and left_out:
        text += f" Left out by the {budget:g}n memory budget: {join_names(left_out)}."
    return Advice(
        task=task, text=text, optimizer=top.optimizer, params=top.params, lr=top.lr,
        good_lr=top.good_lr, mean=top.mean, std=top.std, seeds=top.seeds, trials=top.trials,
        tied_with=tied, memory_budget=budget, left_out=left_out, ranking=ranking,
        training=top.training,
    )
