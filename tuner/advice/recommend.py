"""The recommendation for a task (``tuner advise``): one or two sentences and their evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.advice.formatting import format_lr, format_metric, format_spread, join_names
from tuner.advice.lr_meaning import named
from tuner.advice.ranking import TaskRanking, rank_task, what_would_settle
from tuner.advice.source import open_for_reading
from tuner.advice.stats import AdviceError, Tolerance, parse_memory_budget

if TYPE_CHECKING:
    from tuner.advice.importance import Importance
    from tuner.store import Store

RATIOS_IN_TEXT = 3
"""How many other optimizers' lr ratios the advice sentence names (the next best ones)."""


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
    prefer: str = "quality"
    p_best: float | None = None
    pareto: list[str] | None = None
    defaults_vs_tuning: dict[str, Any] | None = None
    importance: Importance | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "advice": self.text, "optimizer": self.optimizer,
            "params": self.params, "training": self.training, "lr": self.lr,
            "good_lr": list(self.good_lr) if self.good_lr else None,
            "mean": self.mean, "std": self.std, "seeds": self.seeds, "trials": self.trials,
            "tied_with": self.tied_with, "memory_budget": self.memory_budget,
            "left_out_by_memory_budget": self.left_out, "prefer": self.prefer,
            "p_best": self.p_best, "pareto": self.pareto,
            "defaults_vs_tuning": self.defaults_vs_tuning,
            "importance": self.importance.to_dict() if self.importance else None,
            "ranking": self.ranking.to_dict(),
        }


def advise(
    task: str,
    db: str | Store | None = None,
    memory_budget: str | float | None = None,
    tolerance: str | float | Tolerance | None = None,
    prefer: str = "quality",
    budget: int | None = None,
    study: str | None = None,
    trials_budget: int | None = None,
    where: dict[str, Any] | None = None,
) -> Advice:
    """The recommendation for ``task`` (``tuner advise``), optionally within a memory budget.

    ``memory_budget`` (``"1n"``, ``"2n"``, ...) judges every configuration by its measured
    optimizer state (``optimizer_state_bytes / param_bytes`` of its runs): each optimizer is
    represented by its best configuration within the budget, and an optimizer with none (a
    tuned RMSprop with momentum and centering measures 3n) is left out.

    ``prefer`` (``quality``, the default, ``speed`` or ``memory``) picks the recommended
    optimizer within the Pareto set over the three (:mod:`tuner.advice.pareto`). The text names
    the winner's P(best) and says "too few runs" (and what would settle it: more trials, more
    seeds) when it is under 0.9 (:mod:`tuner.advice.bootstrap`), and each other optimizer's lr
    ratio. ``budget``, ``study``, ``trials_budget`` and ``where`` choose what is ranked as in
    :func:`tuner.advice.rank_task`; the text names the protocol ranked and the others measured.

    ``where`` (``{"batch_size": (16, 64)}``) draws all of it from the runs trained with those
    training options, as :func:`~tuner.advice.ranking.rank_task` does.
    """
    from tuner.advice.defaults import defaults_against_tuning
    from tuner.advice.importance import importance
    from tuner.advice.pareto import PREFERENCES
    from tuner.study.training import describe_where

    if prefer not in PREFERENCES:
        raise AdviceError(f"cannot prefer {prefer!r}: use one of {', '.join(PREFERENCES)}")
    state_budget = parse_memory_budget(memory_budget)
    chosen = {"budget": budget, "study": study, "trials_budget": trials_budget, "where": where}
    store, opened = open_for_reading(db)
    try:
        everything = rank_task(task, db=store, tolerance=tolerance, **chosen)
        ranking = everything if state_budget is None else rank_task(
            task, db=store, tolerance=tolerance, memory_budget=state_budget, **chosen
        )
        defaults = defaults_against_tuning(store, ranking)
        what_matters = importance(ranking.task, [candidates_first(ranking)], db=store,
                                  scope=ranking.scope, where=ranking.where)[0]
    finally:
        if opened:
            store.dispose()
    fitting = {s.optimizer for s in ranking.optimizers if s.mean is not None}
    left_out = [s.optimizer for s in everything.optimizers
                if s.mean is not None and s.optimizer not in fitting]
    candidates = [s for s in ranking.optimizers if s.mean is not None]
    metric = ranking.metric
    protocol = ranking.protocol_text()  # named when other protocols could be confused with it
    on = f"On {task}" + (f" ({protocol})" if ranking.other_protocols else "")
    if ranking.where:
        on += f" (runs with {describe_where(ranking.where)})"
    if not candidates:
        why = (
            f"within a memory budget of {state_budget:g}n"
            if state_budget is not None and left_out
            else "that completed without diverging"
        )
        text = f"{on}, no measured optimizer {why}; run a study first."
        if everything.task_problem is not None:
            text = everything.task_problem[0].upper() + everything.task_problem[1:] + "."
        return Advice(
            task=task, text=text,
            optimizer=None, params={}, lr=None, good_lr=None, mean=None, std=None, seeds=0,
            trials=0, tied_with=[], memory_budget=state_budget, left_out=left_out,
            ranking=ranking,
        )
    pareto = [s.optimizer for s in candidates if s.pareto]
    top = _preferred(candidates, prefer, ranking.direction)
    tied = [s.optimizer for s in candidates[1:] if top is candidates[0] and s.tied_with_winner]
    text = f"{on}, use {top.optimizer}"
    if prefer != "quality" and top is not candidates[0]:
        text = f"{on}, for {prefer}, use {top.optimizer}"
    if top.lr is not None:
        text += f" with lr {format_lr(top.lr)}{named(top.lr_meaning)}"
        if top.good_lr and top.good_lr[0] < top.good_lr[1]:
            text += f" (good range {format_lr(top.good_lr[0])}..{format_lr(top.good_lr[1])})"
    seeds = f"{top.seeds} seed" + ("s" if top.seeds != 1 else "")
    text += (
        f": {format_metric(top.mean, metric)} ± {format_spread(top.std, metric)} {metric} "
        f"over {seeds}, {top.trials} trial{'s' if top.trials != 1 else ''}"
    )
    text += _measured_how(top, metric)
    if top.p_best is not None and len(candidates) > 1:
        text += f", P(best) {top.p_best:.2f}"
    if top is not candidates[0]:
        text += "; " + _trade_off_clause(top, candidates[0], prefer, metric)
    elif tied:
        verb = "is" if len(tied) == 1 else "are"
        text += f"; {join_names(tied)} {verb} tied within noise."
    elif len(candidates) > 1:
        second = candidates[1]
        if second.tied_with_winner is None:
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
    ratios = [s.lr_ratio.sentence() for s in candidates[1:RATIOS_IN_TEXT + 1]
              if s.lr_ratio is not None]
    ratios += [f"{s.lr_left_out}: no lr ratio" for s in candidates[:RATIOS_IN_TEXT + 1]
               if s.lr_left_out and len(candidates) > 1]
    if ratios and prefer == "quality":
        text += " " + "; ".join(ratios) + "."
    certainty = what_would_settle(ranking)
    if certainty is not None and not certainty.settled and len(candidates) > 1:
        text += " " + too_few_runs_text(certainty)
    if ranking.budget_leaders:
        text += " " + budget_text(ranking.budget_leaders)
    if what_matters.shares and what_matters.optimizer == top.optimizer:
        sentence = what_matters.sentence()
        text += " " + sentence[0].upper() + sentence[1:] + "."
    default = defaults["defaults"].get(top.optimizer)
    if default is not None and default["default"] is not None and default["tuned"] is not None:
        text += (f" Untuned: at its default {top.optimizer} reaches "
                 f"{format_metric(default['default'], metric)} "
                 f"(tuned {format_metric(default['tuned'], metric)}).")
    elif default is not None and default["diverged"]:
        text += f" Untuned: {top.optimizer} diverges at its default."
    if state_budget is not None and left_out:
        text += f" Left out by the {state_budget:g}n memory budget: {join_names(left_out)}."
    if ranking.other_protocols:
        text += " " + ranking.others_text()[0].upper() + ranking.others_text()[1:] + "."
    return Advice(
        task=task, text=text, optimizer=top.optimizer, params=top.params, lr=top.lr,
        good_lr=top.good_lr, mean=top.mean, std=top.std, seeds=top.seeds, trials=top.trials,
        tied_with=tied, memory_budget=state_budget, left_out=left_out, ranking=ranking,
        training=top.training, prefer=prefer, p_best=top.p_best, pareto=pareto,
        defaults_vs_tuning=defaults, importance=what_matters,
    )


def candidates_first(ranking: TaskRanking) -> str:
    """The optimizer with the best result (or the first listed when none has one)."""
    winner = ranking.winner
    return winner.optimizer if winner is not None else (
        ranking.optimizers[0].optimizer if ranking.optimizers else "")


def _preferred(candidates: list, prefer: str, direction: str) -> Any:
    """The candidate the preference picks within the Pareto set (the winner for quality)."""
    from tuner.advice.pareto import preferred, trade_off

    points = [trade_off(s.optimizer, s.mean, s.steps_to_target, s.state_multiple, direction)
              for s in candidates]
    name = preferred(points, prefer)
    return next((s for s in candidates if s.optimizer == name), candidates[0])


def _trade_off_clause(top: Any, winner: Any, prefer: str, metric: str) -> str:
    """What the preferred optimizer gives up and gains against the best result."""
    if prefer == "speed":
        gain = (f"it reaches the target in {top.steps_to_target:.0f} steps"
                + (f" against {winner.steps_to_target:.0f} for {winner.optimizer}"
                   if winner.steps_to_target is not None else
                   f" ({winner.optimizer} does not)"))
    else:
        state = f"{top.state_multiple:.2g}n" if top.state_multiple is not None else "unmeasured"
        other = (f"{winner.state_multiple:.2g}n" if winner.state_multiple is not None
                 else "unmeasured")
        gain = f"its optimizer state is {state} against {other} for {winner.optimizer}"
    relative = f" ({top.gap_relative * 100:.1f}%)" if top.gap_relative is not None else ""
    return (f"{gain}, at a cost of {format_spread(top.gap, metric)}{relative} {metric} "
            f"below {winner.optimizer}'s best.")


def _measured_how(top: Any, metric: str) -> str:
    """How the winner's value was measured: the winner's-curse correction, and its replays."""
    text = ""
    if top.corrected is not None and format_metric(top.corrected, metric) != format_metric(
            top.mean, metric):
        text += (f" (about {format_metric(top.corrected, metric)} once the luck of picking the "
                 f"best of {top.outcomes} trials on the same seeds is taken out)")
    if top.replays:
        spread = format_spread(top.replay_std, metric)
        again = f"{top.replays} replay" + ("s" if top.replays != 1 else "")
        text += (f" ({again} of its seeds agree)" if top.replay_std == 0 else
                 f" ({again} of its seeds differ by ± {spread}: the runs are not deterministic)")
    return text


def too_few_runs_text(certainty: Any) -> str:
    """"Too few runs to name a winner ..." and what would settle it: more trials of the
    optimizers in contention, more seeds of their best configurations, or both."""
    if certainty.winner_p_best is None:
        return ("Too few runs to name a winner: one seed per configuration, so the noise is "
                "unknown; run two or more seeds.")
    text = (f"Too few runs to name a winner: P(best) {certainty.winner_p_best:.2f} < 0.9 "
            f"against {certainty.contender}")
    who = join_names(certainty.contention)
    trials = certainty.more_trials
    seeds = certainty.more_seeds
    if trials is not None and seeds is not None:
        way = (f"either {_count(trials, 'more trial')} of each of {who} or "
               f"{_count(seeds, 'more seed')} of each best configuration would settle it")
    elif trials is not None:
        way = f"{_count(trials, 'more trial')} of each of {who} would settle it"
    elif seeds is not None:
        way = f"{_count(seeds, 'more seed')} of each best configuration would settle it"
    elif certainty.together is not None:
        more, seeded = certainty.together
        way = (f"{_count(more, 'more trial')} of each of {who} and "
               f"{_count(seeded, 'more seed')} of each configuration together would settle it")
    else:
        from tuner.advice.bootstrap import MORE_SEEDS, MORE_TRIALS

        return (text + f"; not even {MORE_TRIALS[-1]:g} times the trials and "
                f"{MORE_SEEDS[-1]} more seeds would separate {who}: they may be equally good.")
    return text + f"; about {way} (if further runs find what these did)."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("s" if number != 1 else "")


def budget_text(leaders: Any) -> str:
    """``The answer depends on the tuning budget: with 1 trial, adam (P(best) 0.93); with 6
    trials, momentum (P(best) 0.91).``"""
    parts = [f"with {leader.trials} trial{'s' if leader.trials != 1 else ''}, "
             f"{leader.optimizer} (P(best) {leader.p_best:.2f})" for leader in leaders]
    return "The answer depends on the tuning budget: " + "; ".join(parts) + "."

