"""Running a batch of claimed trials of one optimizer: their runs of each seed trained at once.

With ``--batch K`` a worker claims up to K slots of one optimizer (each by the usual protocol:
:mod:`tuner.driver.claiming`) and takes their trials through the study's seeds together: for
each seed, the trials still going replay the runs an earlier attempt finished, and train the
others in one vectorised run (:func:`tuner.training.batched.training.train_batched`), which gives
each configuration the run it would have had alone. Each run is recorded, pruned and counted as
:mod:`tuner.driver.trial` does for one trial (the same :class:`~tuner.driver.trial.TrialSeeds`),
and each trial is settled as soon as it ends, while the others go on.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence

from tuner.driver.claiming import Claim
from tuner.driver.context import StudyContext
from tuner.driver.create import CRASH_ENV
from tuner.driver.policy import mean
from tuner.driver.trial import TrialSeeds

Ended = tuple[str, float | None, bool | None]
"""A trial's (outcome, value, closed), as :func:`tuner.driver.trial.run_trial` returns it."""


def run_batch(
    context: StudyContext,
    claims: Sequence[Claim],
    losts: Sequence[threading.Event],
    on_end: Callable[[Claim, Ended], None],
) -> None:
    """Train the claimed trials (one optimizer) through every seed, each seed's runs as one
    batch; ``on_end(claim, ended)`` is called once per trial, as soon as it ends."""
    from tuner.training.batched.training import train_batched
    from tuner.training.options import make_options

    trials = [TrialSeeds(context, claim, lost)
              for claim, lost in zip(claims, losts, strict=True)]
    plugin = trials[0].plugin
    told: set[int] = set()
    seeds = trials[0].seeds  # the study's: a batch holds trial slots only
    for index, seed in enumerate(seeds):
        going = [trial for trial in trials if trial.ended is None]
        if not going:
            break
        training = []
        for trial in going:
            if trial.reuses(index):
                trial.replay(index)
            else:
                training.append(trial)
        if training:
            results = train_batched(
                context.task, plugin, [trial.hyperparams for trial in training], seed,
                options=[make_options(**trial.options) for trial in training],
                callbacks=[trial.callback(index) for trial in training],
            )
            for trial, result in zip(training, results, strict=True):
                trial.record(index, result)
        for trial in going:
            if trial.ended is not None:
                told.add(id(trial))
                on_end(trial.claim, trial.ended)
        if index + 1 < len(seeds):
            _crash_point("batch-seed")
    for trial in trials:
        if id(trial) not in told:  # no seeds at all
            on_end(trial.claim, trial.ended or ("complete", mean(trial.finals), None))


def _crash_point(step: str) -> None:
    """Fault injection for the kill tests (``TUNER_CRASH_AT=batch-seed``): the worker kills
    itself between two seeds of a batch, with runs recorded and trials still held."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
