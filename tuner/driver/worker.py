"""A worker: a loop that claims slots of one study and runs them until none is left.

Any number of workers, in any number of processes on any number of hosts, may run the same
study against the same database; they coordinate only through their claims
(:mod:`tuner.driver.claiming`) and heartbeats (:mod:`tuner.driver.liveness`). The loop itself
is a few lines over those parts, :mod:`tuner.driver.trial` (running one trial),
:mod:`tuner.driver.batch` (with ``--batch K``: up to K trials of one optimizer trained
together) and :mod:`tuner.driver.policy` (the rules).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from tuner.driver import optuna_adapter
from tuner.driver.batch import Ended, run_batch
from tuner.driver.claiming import Claim, Claimer
from tuner.driver.context import StudyContext, open_context
from tuner.driver.liveness import Liveness
from tuner.driver.settings import WorkerSettings
from tuner.driver.trial import LOST, run_trial
from tuner.store import Store, StoreError, open_store
from tuner.store.claims import (
    close_trial,
    database_now,
    optuna_outcomes,
    release,
    slot_key,
)
from tuner.store.retry import riding_outages
from tuner.store.studies import set_status

log = logging.getLogger(__name__)


@dataclass
class WorkerReport:
    """What one worker did. ``stopped``: finished, interrupted, stopped (a stop was asked
    for), timeout, or waiting (nothing free to claim and ``wait_for_others`` off); for
    several workers together also unfinished (they ended for no reason known:
    :func:`tuner.driver.policy.how_it_stopped`). ``reopened``: the given-up slots reopened
    before the run (``retry_given_up``)."""

    trials: int = 0
    stopped: str = ""
    already_finished: bool = False
    reopened: list[str] = field(default_factory=list)


class Worker:
    """Claims slots of study ``name`` and runs them; ``on_trial`` is called after each."""

    def __init__(
        self,
        name: str,
        url: str | None = None,
        *,
        settings: WorkerSettings | None = None,
        timeout: float | None = None,
        on_trial: Callable[[], None] | None = None,
        wait_for_others: bool = True,
    ) -> None:
        self.name, self.url = name, url
        self.settings = settings or WorkerSettings.from_env()
        self.timeout, self.on_trial, self.wait_for_others = timeout, on_trial, wait_for_others

    def run(self) -> WorkerReport:
        """Claim and run trials until every slot is settled, a stop, Ctrl-C or the timeout.
        A database outage is ridden out for ``settings.outage_seconds``: the trial in hand
        trains on, and is recorded when the database is back if its claim still holds."""
        report = WorkerReport()
        store = open_store(self.url, create=False)
        try:
            with riding_outages(self.settings.outage_seconds):
                self._run_study(store, report)
        except KeyboardInterrupt:
            report.stopped = "interrupted"
        finally:
            store.dispose()
        return report

    def _run_study(self, store: Store, report: WorkerReport) -> None:
        context = open_context(store, self.name, self.settings)
        try:
            claimer = Claimer(context)
            sweep_optuna(context, self.settings)
            if claimer.settled():
                report.already_finished, report.stopped = True, "finished"
                return
            with Liveness(store, context.spec.id, self.settings) as liveness:
                set_status(store, context.spec.id, "running")  # attached first: never idle
                report.stopped = self._loop(context, claimer, liveness, report)
            if report.stopped == "finished":
                sweep_optuna(context, self.settings)
        finally:
            context.close()

    def _loop(
        self, context: StudyContext, claimer: Claimer, liveness: Liveness, report: WorkerReport
    ) -> str:
        started = time.monotonic()
        while True:
            if self.timeout is not None and time.monotonic() - started > self.timeout:
                return "timeout"
            if liveness.stop_requested.is_set():
                return "stopped"
            liveness.reap(lambda optimizer, trial_id: _fail_reaped(context, optimizer, trial_id))
            claims = self._claim(context, claimer)
            if not claims:
                if claimer.settled():
                    _mark_settled(context)
                    return "finished"
                if not self.wait_for_others:
                    return "waiting"
                # a stop request (seen by the heartbeat thread) ends the wait at once
                liveness.stop_requested.wait(min(self.settings.heartbeat_seconds, 2.0))
                continue
            if len(claims) == 1:
                self._run(context, claims[0], liveness)
            else:
                self._run_batch(context, claims, liveness)
            report.trials += len(claims)
            if self.on_trial is not None:
                self.on_trial()

    def _claim(self, context: StudyContext, claimer: Claimer) -> list[Claim]:
        """The next slot, or with a batch size above 1, up to that many of one optimizer (one
        slot when its runs cannot be batched: the optimizer or the task says why, once)."""
        size = self.settings.batch or context.spec.batch or 1
        if size == 1:
            claim = claimer.claim()
            return [] if claim is None else [claim]
        from tuner.training.batched.training import note_once, unbatched_reason

        def batchable(optimizer: str) -> bool:
            reason = unbatched_reason(context.task, context.plugins[optimizer])
            if reason is not None:
                note_once(reason)
            return reason is None

        return claimer.claim_batch(size, batchable)

    def _run(self, context: StudyContext, claim: Claim, liveness: Liveness) -> None:
        lost = liveness.watch(claim.row_id)
        try:
            ended = run_trial(context, claim, lost)
            liveness.check()
        except BaseException:  # Ctrl-C, or training refused its options: free the slot
            _give_back(context, claim)
            raise
        finally:
            liveness.unwatch()
        _settle(context, claim, ended)

    def _run_batch(self, context: StudyContext, claims: list[Claim], liveness: Liveness
                   ) -> None:
        losts = liveness.watch_all([claim.row_id for claim in claims])
        settled: set[int] = set()

        def on_end(claim: Claim, ended: Ended) -> None:
            liveness.check()
            settled.add(claim.row_id)
            _settle(context, claim, ended)

        try:
            run_batch(context, claims, losts, on_end)
        except BaseException:  # Ctrl-C, or training refused its options: free the slots
            for claim in claims:
                if claim.row_id not in settled:
                    _give_back(context, claim)
            raise
        finally:
            liveness.unwatch()


def _give_back(context: StudyContext, claim: Claim) -> None:
    """Free an interrupted trial's slot: its row and its Optuna trial are failed. When the
    database cannot take that (an outage past its bound, a full disk: the very error that
    ends the worker, which goes on), the slot is reaped after the grace period instead, as a
    killed worker's is."""
    try:
        release(context.store, claim.row_id)
        optuna_adapter.fail_trial(claim.study, optuna_adapter.trial_id(claim.trial),
                                  note="interrupted")
    except StoreError:
        pass


def _settle(context: StudyContext, claim: Claim, ended: Ended) -> None:
    """Close a trial that ended and tell Optuna its outcome, only while this attempt still
    holds it; a trial reaped meanwhile (the worker was paused, cut off or stranded) is someone
    else's: its result is dropped, in one line."""
    outcome, value, closed = ended
    if outcome != LOST and closed is None:
        # not closed with its last run (its seeds were reused, or wilcoxon pruned it)
        closed = close_trial(context.store, claim.row_id, outcome, value)
    if outcome == LOST or not closed:
        log.warning("trial %d (slot %s) was reassigned; result discarded", claim.row_id,
                    slot_key(claim.optimizer, claim.slot))
        return
    optuna_adapter.tell(claim.study, claim.trial, outcome, value, context.direction)


def _fail_reaped(context: StudyContext, optimizer: str, trial_id: int | None) -> None:
    if trial_id is not None and optimizer in context.studies:
        optuna_adapter.fail_trial(context.studies[optimizer], trial_id, note="reaped")


def _mark_settled(context: StudyContext) -> None:
    from tuner.store.studies import study_status

    set_status(context.store, context.spec.id, study_status(context.store, context.spec).status)


def sweep_optuna(context: StudyContext, settings: WorkerSettings) -> None:
    """Settle Optuna trials left RUNNING by a worker that died between two writes: one whose
    row is finished is told the row's outcome; one no live row holds is failed."""
    outcomes = optuna_outcomes(context.store, context.spec.id)
    cutoff = database_now(context.store) - timedelta(seconds=settings.grace_seconds)
    for study in context.studies.values():
        for trial_id, started in optuna_adapter.running_trials(study):
            status, value = outcomes.get(trial_id, (None, None))
            if status == "running":
                continue
            if status is None and started is not None and started.astimezone() > cutoff:
                continue  # just created; its claim may be on the way
            optuna_adapter.settle_trial(study, trial_id, status, value, context.direction)
