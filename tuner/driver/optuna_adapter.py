"""Everything tuner asks of Optuna, in one place: the only module that touches its internals.

tuner uses Optuna for what it is good at (TPE, QMC, pruners, and its tables, which its own
tools read), and keeps the claims, seeds and outcomes in its own tables. Where Optuna's public
API does not fit a worker that claims slots in the database, this module reaches inside it:

* :func:`new_trial` creates a trial through ``Study._storage.create_new_trial`` (the caching
  wrapper the study reads through), with ``fixed_params`` in its system attributes for a
  configuration decided by tuner (a warm start, the recommended one, a retry, a grid point),
  and clears ``Study._thread_local.cached_all_trials`` so the sampler sees the newest trials;
* :func:`tell` uses ``optuna.study._tell._tell_with_warning``, which is ``Study.tell`` without
  its read-back of the finished trial (six queries per trial that tuner does not use);
* :class:`_SlotQMCSampler` overrides ``QMCSampler._find_sample_id``: the point of the sequence
  is the slot's, not a counter shared by racing workers (which hands one point to two slots);
* :func:`fail_trial` and :func:`settle_trial` write a trial's state through
  ``Study._storage.set_trial_state_values`` (a trial id is ``Trial._trial_id``).

Every call that reaches Optuna's storage goes through :func:`tuner.store.retry.retrying`, as
tuner's own statements do: transient errors are retried, and a worker rides out an outage.

``tests/test_optuna_contract.py`` checks each of these behaviours against the installed Optuna,
and ``pyproject.toml`` pins Optuna to the range those tests passed on: an upgrade that changes
one of them fails a test instead of changing claims or retries in silence.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tuner.store.models import utcnow
from tuner.store.retry import retrying

if TYPE_CHECKING:
    import optuna

    from tuner.store import Store


def study_name(study: str, optimizer: str) -> str:
    """The Optuna study that holds one optimizer's trials of a tuner study."""
    return f"tuner/{study}/{optimizer}"


def quiet() -> None:
    """Optuna's log at WARNING, and no warnings about experimental features."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage(store: Store) -> optuna.storages.BaseStorage:
    """Optuna's storage on the store's database (its connections closed by :func:`close`)."""
    quiet()
    return store.optuna_storage()


def close(storage: Any) -> None:
    """Close the pooled connections of Optuna's storage: a command that is done with it leaves
    no connection open (on SQLite, an open one keeps the store's write-ahead log in use)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


# -- studies ------------------------------------------------------------------------------------


def create_studies(
    storage: Any, study: str, optimizers: Sequence[str], direction: str,
    attrs: Mapping[str, Any],
) -> None:
    """Create (or find) the Optuna study of each optimizer; ``attrs`` become user attributes."""
    import optuna

    for optimizer in optimizers:
        created = optuna.create_study(
            study_name=study_name(study, optimizer), storage=storage, direction=direction,
            load_if_exists=True,
        )
        for key, value in {**attrs, "optimizer": optimizer}.items():
            created.set_user_attr(key, value)


def orphan_studies(storage: Any, study: str) -> list[str]:
    """The Optuna studies named for a tuner study (``tuner/<study>/...``)."""
    import optuna

    prefix = study_name(study, "")
    return [name for name in optuna.get_all_study_names(storage) if name.startswith(prefix)]


def delete_studies(storage: Any, names: Sequence[str]) -> None:
    """Delete Optuna studies by name; a missing one is skipped."""
    import optuna

    for name in names:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass


def load_study(
    storage: Any, study: str, optimizer: str, direction: str, pruner: Any
) -> optuna.Study:
    """The Optuna study of one optimizer, created if a killed ``study create`` left it out."""
    import optuna

    return retrying(lambda: optuna.create_study(
        study_name=study_name(study, optimizer), storage=storage, direction=direction,
        pruner=pruner, load_if_exists=True,
    ))


# -- samplers and pruners -----------------------------------------------------------------------


def slot_seed(seed: int, optimizer: str, slot: int) -> int:
    """The seed of the sampler that draws one slot's configuration: distinct per slot, and per
    optimizer (two optimizers whose spaces share parameter names must not draw the same)."""
    return (seed * 100_003 + slot + zlib.crc32(optimizer.encode())) % 2**32


def _qmc_class() -> type:
    import optuna

    class _SlotQMCSampler(optuna.samplers.QMCSampler):
        """QMC whose point is the slot's (``sample_id``), not a shared counter's."""

        sample_id = 0

        def _find_sample_id(self, study: Any, search_space: Any) -> int:
            return self.sample_id

    return _SlotQMCSampler


def make_sampler(kind: str, seed: int, optimizer: str, slot: int, trials: int) -> Any:
    """The sampler that draws the configuration of ``slot``.

    TPE and random are seeded per slot (:func:`slot_seed`), QMC takes the slot's point of one
    scrambled sequence; every slot thus gets its own draw, whichever worker makes it. Grid
    points are not sampled here: they are fixed configurations (:mod:`tuner.driver.grid`).
    """
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=slot_seed(seed, optimizer, slot))
    if kind == "qmc":
        sampler = _qmc_class()(
            scramble=True, seed=seed, warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
            # the first trials, before QMC knows the space, are drawn by this one: per slot too
            independent_sampler=optuna.samplers.RandomSampler(
                seed=slot_seed(seed, optimizer, slot)
            ),
        )
        sampler.sample_id = slot
        return sampler
    return optuna.samplers.TPESampler(
        seed=slot_seed(seed, optimizer, slot), n_startup_trials=max(2, min(10, trials // 3)),
        constant_liar=True,
    )


def make_pruner(kind: str, budget: int, seeds: int, trials: int) -> Any:
    """The pruner; :mod:`tuner.driver.trial` says what each one compares."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=max(2, min(5, trials // 4)), n_warmup_steps=budget // 4,
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, budget // 8), max_resource=seeds * (budget + 1),
            reduction_factor=3,
        )
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    return optuna.pruners.NopPruner()


# -- trials -------------------------------------------------------------------------------------


def new_trial(
    study: optuna.Study,
    *,
    sampler: Any = None,
    started: datetime | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> optuna.Trial:
    """A new RUNNING trial: sampled by ``sampler``, or with ``fixed_params`` (then
    ``suggest_*`` returns those values); started at ``started`` (the database's time when the
    caller has it: the sweep of left-over trials compares it with the database's)."""
    import optuna
    from optuna.trial import FrozenTrial, TrialState

    if sampler is not None:
        study.sampler = sampler
    template = None
    if fixed_params is not None or user_attrs:
        template = FrozenTrial(
            number=-1, state=TrialState.RUNNING, value=None,
            datetime_start=started or utcnow(),
            datetime_complete=None, params={}, distributions={},
            user_attrs=dict(user_attrs or {}),
            system_attrs={"fixed_params": dict(fixed_params)} if fixed_params is not None
            else {},
            intermediate_values={}, trial_id=-1,
        )
    study._thread_local.cached_all_trials = None
    trial_id = retrying(lambda: study._storage.create_new_trial(study._study_id,
                                                                template_trial=template))
    return retrying(lambda: optuna.Trial(study, trial_id))


def trial_id(trial: optuna.Trial) -> int:
    """The storage id of a trial (unique across studies, unlike its number)."""
    return int(trial._trial_id)


def tell(study: optuna.Study, trial: optuna.Trial, outcome: str, value: float | None,
         direction: str) -> None:
    """Tell Optuna how a trial ended: complete with its value; diverged as COMPLETE with the
    worst value (so the sampler learns the region is bad); pruned; failed."""
    from optuna.trial import TrialState

    state, told = TrialState.FAIL, None
    if outcome == "complete":
        state, told = TrialState.COMPLETE, value
    elif outcome == "diverged":
        retrying(lambda: trial.set_user_attr("diverged", True))
        state, told = TrialState.COMPLETE, worst_value(direction)
    elif outcome == "pruned":
        state = TrialState.PRUNED
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:  # pragma: no cover - the contract test fails first
        retrying(lambda: study.tell(trial, told, state=state))
        return
    retrying(lambda: _tell_with_warning(study=study, trial=trial, value_or_values=told,
                                        state=state))


def worst_value(direction: str) -> float:
    """The value a diverged trial is told with: worse than any real result."""
    return math.inf if direction == "minimize" else -math.inf


def fail_trial(study: optuna.Study, trial_id: int, note: str) -> None:
    """Mark a trial FAIL with a note (``tuner_failed``), unless it is already finished."""
    import optuna
    from optuna.trial import TrialState

    try:
        retrying(lambda: study._storage.set_trial_user_attr(trial_id, "tuner_failed", note))
        retrying(lambda: study._storage.set_trial_state_values(trial_id, TrialState.FAIL))
    except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
        pass


def settle_trial(
    study: optuna.Study, trial_id: int, status: str | None, value: float | None, direction: str
) -> None:
    """Finish a trial a dead worker left RUNNING with what its row says (None: no row)."""
    import optuna
    from optuna.trial import TrialState

    state, values = TrialState.FAIL, None
    if status == "complete" and value is not None:
        state, values = TrialState.COMPLETE, [value]
    elif status == "diverged":
        state, values = TrialState.COMPLETE, [worst_value(direction)]
    elif status == "pruned":
        state = TrialState.PRUNED
    try:
        retrying(lambda: study._storage.set_trial_state_values(trial_id, state, values))
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def running_trials(study: optuna.Study) -> list[tuple[int, datetime | None]]:
    """(trial id, start) of the study's RUNNING trials."""
    from optuna.trial import TrialState

    return [
        (t._trial_id, t.datetime_start)
        for t in retrying(lambda: study.get_trials(deepcopy=False,
                                                   states=(TrialState.RUNNING,)))
    ]


def report(trial: optuna.Trial, value: float, step: int) -> bool:
    """Report an intermediate value; whether the pruner says to stop."""
    retrying(lambda: trial.report(value, step))
    return retrying(trial.should_prune)
