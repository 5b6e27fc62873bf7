"""Running one claimed trial: its seeds, pruning, and recording each run.

**Pruning.** ``median`` and ``hyperband`` compare learning curves: every evaluation of every
seed is reported at :func:`~tuner.driver.policy.report_step`, so trials are compared seed by
seed at equal training progress, and Hyperband's resource is the number of steps trained so
far. ``wilcoxon`` is Optuna's pruner for per-instance results; here the instances are the seeds:
after each seed its final metric is reported at step ``seed_index``, and the trial is stopped
once a signed-rank test says it is worse than the best trial on the same seeds. With p = 0.1
that needs at least 4 seeds (with 3 paired seeds the smallest possible p-value is 0.125).

**Retries.** Seeds that an earlier attempt at the slot finished are moved to this attempt and
not trained again (:func:`tuner.store.claims.reuse_runs`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from tuner.driver import optuna_adapter
from tuner.driver.claiming import Claim
from tuner.driver.context import StudyContext
from tuner.driver.policy import mean, outcome_after, report_step
from tuner.store.claims import record_and_close, reuse_runs
from tuner.store.models import params_hash
from tuner.study_training import run_plan

LOST = "lost"
"""The outcome of a trial reaped while it ran: the reaper has failed its records already."""


def run_trial(
    context: StudyContext, claim: Claim, lost: threading.Event
) -> tuple[str, float | None, bool | None]:
    """Train the claimed configuration on every seed; returns (outcome, value, closed):
    ``closed`` says whether the trial row was closed with its last run (None: not yet)."""
    from tuner.training import train

    spec, budget = context.spec, context.budget
    curve_mode = spec.pruner in ("median", "hyperband")
    plugin = context.plugins[claim.optimizer]
    hyperparams = {k: v for k, v in claim.params.items() if k in plugin.space}
    plan = run_plan(spec.training, claim.params, budget=budget,
                    eval_every=context.task.eval_every, task_batch_size=context.task.batch_size,
                    schedule=spec.schedule, budget_unit=spec.budget_unit)
    reused = reuse_runs(context.store, claim.row_id, claim.earlier, params_hash(hyperparams),
                        spec.seed_list)
    finals: list[float] = []
    for index, seed in enumerate(spec.seed_list):
        last = index + 1 == spec.seeds
        closed = None
        if seed in reused:
            run = reused[seed]
            if curve_mode:
                for step, metric in run.curve:
                    if metric is not None and math.isfinite(metric):
                        claim.trial.report(
                            metric, report_step(index, budget, min(round(step * plan.scale),
                                                                   budget)))
            final = run.final_metric
            outcome = outcome_after(run.status, final, finals, last)
        else:
            result = train(
                context.task, plugin, hyperparams, seed, **plan.options,
                callback=_on_evaluation(claim, index, budget, curve_mode, lost, plan.scale),
            )
            if lost.is_set():
                return LOST, None, None
            final = result.final_metric
            outcome = outcome_after(result.status, final, finals, last)
            closed = record_and_close(
                context.store, claim.row_id, result, plugin_version=plugin.version or None,
                space_hash=context.fingerprints[claim.optimizer], closing=outcome,
            )
        if outcome is not None and outcome[0] != "complete":
            return (*outcome, closed)
        finals.append(float(final or 0.0))  # finite here: outcome_after checked it
        if spec.pruner == "wilcoxon":  # every seed's final is reported; the last is not pruned
            if optuna_adapter.report(claim.trial, finals[-1], index) and not last:
                return "pruned", mean(finals), None
        if outcome is not None:
            return (*outcome, closed)  # the last seed: complete
    return "complete", mean(finals), None


def _on_evaluation(
    claim: Claim, index: int, budget: int, curve_mode: bool, lost: threading.Event,
    scale: float = 1.0,
) -> Callable[[Any], bool]:
    """The run's callback: report each evaluation to a curve pruner, at the study's reference
    steps (a run at twice the reference batch size is at step ``2 s`` after ``s`` steps)."""

    def on_evaluation(point: Any) -> bool:
        if lost.is_set():
            return True
        if curve_mode and math.isfinite(point.metric):
            step = min(round(point.step * scale), budget)
            return optuna_adapter.report(claim.trial, point.metric,
                                         report_step(index, budget, step))
        return False

    return on_evaluation
