"""The driver's rules, as pure functions: which slot next, what a slot trains, how a trial ends.

Nothing here touches a database, Optuna or torch, so each rule is tested on plain values.

**Outcomes.** A trial trains its configuration once per seed. A seed that diverges ends the
trial as ``diverged`` (told to Optuna as COMPLETE with the worst value: failing it would hide
the region from the sampler, which would keep proposing learning rates that blow up); one that
is pruned or fails ends it as ``pruned`` or ``failed``; when every seed completes, the trial is
``complete`` with the mean of the seeds' final metric.

**Slots.** An optimizer has N trial slots (:meth:`~tuner.study.spec.StudySpec.trials_for`), one
when its whole space is fixed. Slot ``s`` trains the study's ``s``-th initial configuration (the
warm starts, then the recommended one) if there is one, a grid point for the grid sampler, else
a configuration drawn for that slot alone; a retry trains what the slot's earlier attempt
trained. Its seed slots (-1, -2, ...: ``tuner study extend``) each train their own
configuration on their own seeds, after its trial slots. A slot is given up after too many
attempts (see :func:`tuner.store.studies.slot_given_up`).

**Every choice tried.** A categorical dimension of an optimizer's study space (a tuned training
option such as ``schedule=constant,cosine``, or a categorical hyperparameter of the optimizer
such as RMSprop's ``centered``) has each of its choices tried in the first trials: the first
sampled slots are pinned, one choice each, to the choices that no initial configuration takes,
in their declared order, while the sampler draws the rest of the configuration as usual (its
seed is the slot's, so a study is as reproducible as before). With an optimizer's recommended
configuration as slot 0, a dimension of ``k`` choices has every choice tried within its first
``k`` slots. Conditional categoricals (``when=``) are left to the sampler: whether they are
active is only known once the rest is drawn. Grid studies enumerate the choices themselves.
A slot is given up after too many attempts (see
:func:`tuner.store.studies.slot_given_up`); the attempts made before a slot was reopened
(``--retry-given-up``) do not count.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner.plugin.space import Categorical
from tuner.store.studies import FINISHED, slot_given_up
from tuner.study.spec import StudySpec


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def outcome_after(
    status: str, final: float | None, finals: Sequence[float], last: bool
) -> tuple[str, float | None] | None:
    """The trial's outcome and value once a seed's run ends with ``status`` and ``final``,
    given the finals of the seeds before it; None while more seeds are to run."""
    if status in ("pruned", "diverged", "failed"):
        return status, mean(finals)
    if final is None or not math.isfinite(final):
        return "diverged", None
    if last:
        return "complete", mean([*finals, final])
    return None


def report_step(seed_index: int, budget: int, step: int) -> int:
    """The step at which an evaluation is reported to a curve pruner: seed by seed, so trials
    are compared at equal training progress (``seed_index * (budget + 1) + step``)."""
    return seed_index * (budget + 1) + step


@dataclass(frozen=True)
class SlotAttempt:
    """What the slot logic needs of an earlier attempt at a slot."""

    optimizer: str
    slot: int
    status: str
    params: dict[str, Any]
    counted: bool = True  # False: made before the slot was reopened


def free_slots(
    spec: StudySpec, attempts: Sequence[SlotAttempt], failed_runs: Counter,
    only: str | None = None, trial_slots_only: bool = False,
) -> list[tuple[str, int]]:
    """The slots a worker may claim, as (optimizer, slot), in the order to run them: trial slot
    by trial slot across optimizers, so every optimizer advances at the same pace, then the
    seed slots (``only``: the slots of that optimizer; ``trial_slots_only``: no seed slots)."""
    held = {(a.optimizer, a.slot) for a in attempts if a.status != "failed"}
    tries = Counter((a.optimizer, a.slot) for a in attempts if a.counted)
    optimizers = [o for o in spec.optimizers if only is None or o == only]
    order = sorted(
        ((o, s) for o in optimizers for s in spec.slots(o)
         if s >= 0 or not trial_slots_only),
        key=lambda key: (key[1] < 0, abs(key[1]), optimizers.index(key[0])),
    )
    return [key for key in order
            if key not in held and not slot_given_up(tries[key], failed_runs[key])]


def settled(spec: StudySpec, attempts: Sequence[SlotAttempt], failed_runs: Counter) -> bool:
    """Whether every slot is finished or given up: nothing is left to run."""
    finished = {(a.optimizer, a.slot) for a in attempts if a.status in FINISHED}
    tries = Counter((a.optimizer, a.slot) for a in attempts
                    if a.status == "failed" and a.counted)
    return all(
        (o, s) in finished or slot_given_up(tries[(o, s)], failed_runs[(o, s)])
        for o in spec.optimizers for s in spec.slots(o)
    )


def choices_to_spread(space: Any) -> dict[str, tuple]:
    """The categorical dimensions of a study space whose choices the first trials spread over:
    unconditional, with two choices or more."""
    return {p.name: tuple(p.choices) for p in space
            if isinstance(p, Categorical) and p.when is None and len(p.choices) > 1}


def untried_choices(
    choices: Mapping[str, Sequence[Any]], initial: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """Per dimension, the choices that no initial configuration takes, in declared order."""
    untried = {}
    for name, options in choices.items():
        taken = [config["params"].get(name) for config in initial if name in config["params"]]
        untried[name] = [choice for choice in options if choice not in taken]
    return untried


def pinned_choices(
    choices: Mapping[str, Sequence[Any]], initial: Sequence[Mapping[str, Any]], slot: int
) -> dict[str, Any]:
    """The choices pinned in sampled slot ``slot``: the ``i``-th sampled slot (``slot`` minus
    the initial configurations) takes the ``i``-th untried choice of each dimension that has
    one left."""
    index = slot - len(initial)
    if index < 0:
        return {}
    return {name: left[index] for name, left in untried_choices(choices, initial).items()
            if index < len(left)}


def choices_left_out(
    choices: Mapping[str, Sequence[Any]], initial: Sequence[Mapping[str, Any]], trials: int
) -> dict[str, list[Any]]:
    """Per dimension, the choices that ``trials`` slots are too few to try for sure (the
    sampler may still draw them); empty when every choice gets a slot."""
    first = list(initial[:trials])
    room = trials - len(first)
    left_out = {name: left[room:] for name, left in untried_choices(choices, first).items()}
    return {name: left for name, left in left_out.items() if left}


@dataclass(frozen=True)
class SlotPlan:
    """What a slot trains: ``params`` fixed (a retry, an initial configuration, a grid point),
    or None to draw them for this slot, with the values of ``pinned`` (its choices to try, see
    :func:`pinned_choices`) fixed; ``origin`` is recorded with the trial."""

    params: dict[str, Any] | None
    origin: str
    pinned: dict[str, Any] = field(default_factory=dict)


def plan_slot(
    spec: StudySpec, optimizer: str, slot: int, earlier: Sequence[SlotAttempt],
    grid: Any = None, choices: Mapping[str, Sequence[Any]] | None = None,
) -> SlotPlan:
    """The configuration of a slot's next attempt.

    ``earlier`` are the slot's previous attempts (a retry keeps their configuration);
    ``grid(index)`` gives the grid point of a sampled slot when the sampler is ``grid``;
    ``choices`` are the categorical dimensions whose choices the first sampled slots try
    (:func:`choices_to_spread`). A seed slot trains its own configuration.
    """
    if slot < 0:
        return SlotPlan(dict(spec.seed_slot(optimizer, slot)["params"]), "more_seeds")
    retry = next((a for a in reversed(earlier) if a.params), None)
    initial = spec.initial_configs.get(optimizer) or []
    if retry is not None:
        origin = initial[slot]["origin"] if slot < len(initial) else "sampled"
        return SlotPlan(dict(retry.params), origin)
    if slot < len(initial):
        return SlotPlan(dict(initial[slot]["params"]), initial[slot]["origin"])
    if spec.sampler == "grid" and grid is not None:
        return SlotPlan(grid(slot - len(initial)), "sampled")
    return SlotPlan(None, "sampled", pinned_choices(choices or {}, initial, slot))


STOP_PRECEDENCE = ("interrupted", "stopped", "timeout", "waiting")
"""How a run of several workers stopped, when they disagree: the first of these that any of them
reports."""


def how_it_stopped(status: str, stops: Sequence[str], timeout: float | None) -> str:
    """How a run of several workers ended (what a
    :class:`~tuner.driver.worker.WorkerReport` calls ``stopped``), from the study's ``status``
    and each worker's own reason to stop, ``stops`` (empty: unknown).

    ``finished`` when every slot is settled; else the workers' reason; with none known,
    ``stopped`` for a study asked to stop, ``timeout`` only when a ``timeout`` was given, and
    ``unfinished`` when the workers ended for no reason known (they failed or were killed).
    """
    if status in ("finished", "incomplete"):
        return "finished"
    for reason in STOP_PRECEDENCE:
        if reason in stops:
            return reason
    if status == "stopping":
        return "stopped"
    if timeout is not None:
        return "timeout"
    return "stopped" if status == "stopped" and not stops else "unfinished"
