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

**Seed slots** (``tuner study extend``) train a configuration the study measured on seeds it does
not have yet; they are never pruned (a pruned seed would be a missing observation of the very
configuration they are there to measure).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tuner.driver import optuna_adapter
from tuner.driver.claiming import Claim
from tuner.driver.context import StudyContext
from tuner.driver.policy import mean, outcome_after, report_step
from tuner.store.claims import record_and_close, reuse_runs
from tuner.store.config_key import protocol_key
from tuner.store.models import params_hash
from tuner.study.training import run_plan, tuned

LOST = "lost"
"""The outcome of a trial reaped while it ran: the reaper has failed its records already, and
nothing of this attempt's was stored after that (:func:`tuner.store.claims.record_and_close`)."""


def run_trial(
    context: StudyContext, claim: Claim, lost: threading.Event
) -> tuple[str, float | None, bool | None]:
    """Train the claimed configuration on every seed; returns (outcome, value, closed):
    ``closed`` says whether the trial row was closed with its last run (None: not yet)."""
    from tuner.training.loop import train

    trial = TrialSeeds(context, claim, lost)
    for index, seed in enumerate(trial.seeds):
        if trial.reuses(index):
            trial.replay(index)
        else:
            result = train(context.task, trial.plugin, trial.hyperparams, seed,
                           **trial.options, callback=trial.callback(index))
            trial.record(index, result)
        if trial.ended is not None:
            return trial.ended
    return "complete", mean(trial.finals), None


class TrialSeeds:
    """One claimed trial on its way through the study's seeds, one seed at a time:
    :func:`run_trial` takes one through them; a batch (:mod:`tuner.driver.batch`) takes
    several together, training their runs of each seed at once.

    ``ended`` is None while seeds are left to run, then the trial's (outcome, value, closed).
    """

    def __init__(self, context: StudyContext, claim: Claim, lost: threading.Event) -> None:
        spec = context.spec
        self.context, self.claim, self.lost = context, claim, lost
        self.budget = context.budget
        self.seeds = list(claim.seeds)
        self.prunable = not claim.adds_seeds
        self.curve_mode = self.prunable and spec.pruner in ("median", "hyperband")
        self.plugin = context.plugins[claim.optimizer]
        self.hyperparams = {k: v for k, v in claim.params.items() if k in self.plugin.space}
        self.plan = run_plan(spec.training, claim.params, budget=self.budget,
                             eval_every=context.task.eval_every,
                             task_batch_size=context.task.batch_size,
                             schedule=spec.schedule, budget_unit=spec.budget_unit)
        # the training options of its runs: the plan's, and how the worker uses the CPU
        self.options = {**self.plan.options, **context.run_options}
        self.reused = reuse_runs(context.store, claim.row_id, claim.earlier,
                                 params_hash(self.hyperparams), self.seeds,
                                 options={k: v for k, v in claim.params.items()
                                          if k in tuned(spec.training)})
        self.finals: list[float] = []
        self.ended: tuple[str, float | None, bool | None] | None = None

    def reuses(self, index: int) -> bool:
        """Whether an earlier attempt at the slot finished seed ``index`` already."""
        return self.seeds[index] in self.reused

    def replay(self, index: int) -> None:
        """Take seed ``index`` from the earlier attempt: its curve to the pruner, its outcome."""
        run = self.reused[self.seeds[index]]
        if self.curve_mode:
            for step, metric in run.curve:
                if metric is not None and math.isfinite(metric):
                    self.claim.trial.report(metric, report_step(
                        index, self.budget, min(round(step * self.plan.scale), self.budget)))
        last = index + 1 == len(self.seeds)
        self._after_seed(index, outcome_after(run.status, run.final_metric, self.finals, last),
                         run.final_metric, None)

    def callback(self, index: int) -> Callable[[Any], bool]:
        """The callback of seed ``index``'s run (pruning, and stopping a reaped trial)."""
        return _on_evaluation(self.claim, index, self.budget, self.curve_mode, self.lost,
                              self.plan.scale)

    def record(self, index: int, result: Any) -> None:
        """Store seed ``index``'s run (closing the trial row with it when it ends the trial)."""
        if self.lost.is_set():
            self.ended = (LOST, None, None)
            return
        outcome = outcome_after(result.status, result.final_metric, self.finals,
                                index + 1 == len(self.seeds))
        closed = record_and_close(
            self.context.store, self.claim.row_id, result,
            plugin_version=self.plugin.version or None,
            space_hash=self.context.fingerprints[self.claim.optimizer], closing=outcome,
            protocol=study_protocol(self.context.spec.training, result.options or {},
                                  self.context.spec.budget, self.context.spec.budget_unit),
        )
        if closed is False:  # reaped while it trained: the run was not stored
            self.ended = (LOST, None, None)
            return
        self._after_seed(index, outcome, result.final_metric, closed)

    def _after_seed(self, index: int, outcome: tuple[str, float | None] | None,
                    final: float | None, closed: bool | None) -> None:
        """Seed ``index`` ended with ``outcome`` (None: more seeds to run): end the trial, or
        keep its final for the mean (and the wilcoxon pruner)."""
        last = index + 1 == len(self.seeds)
        if outcome is not None and outcome[0] != "complete":
            self.ended = (*outcome, closed)
            return
        self.finals.append(float(final or 0.0))  # finite here: outcome_after checked it
        if self.prunable and self.context.spec.pruner == "wilcoxon":
            # every seed's final is reported; the last is not pruned
            if optuna_adapter.report(self.claim.trial, self.finals[-1], index) and not last:
                self.ended = ("pruned", mean(self.finals), None)
                return
        if outcome is not None:
            self.ended = (*outcome, closed)  # the last seed: complete


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


def study_protocol(
    training: Mapping[str, Any], options: Mapping[str, Any], study_budget: int | None,
    budget_unit: str = "examples",
) -> dict[str, Any]:
    """The protocol one run of a study was trained under (:func:`tuner.store.config_key.
    protocol_key`): with a tuned batch size and equal examples, the study's budget as given
    (``study_budget``, None for the task's own) in examples; else the run's budget in steps;
    and the result-changing options the study fixed (the tuned ones are left out)."""
    names = set(tuned(training))
    if "batch_size" in names and budget_unit == "examples":
        return protocol_key(study_budget, "examples", options, names)
    return protocol_key(options.get("budget"), "steps", options, names)
