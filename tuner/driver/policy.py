"""The driver's rules, as pure functions: which slot next, what a slot trains, how a trial ends.

Nothing here touches a database, Optuna or torch, so each rule is tested on plain values.

**Outcomes.** A trial trains its configuration once per seed. A seed that diverges ends the
trial as ``diverged`` (told to Optuna as COMPLETE with the worst value: failing it would hide
the region from the sampler, which would keep proposing learning rates that blow up); one that
is pruned or fails ends it as ``pruned`` or ``failed``; when every seed completes, the trial is
``complete`` with the mean of the seeds' final metric.

**Slots.** An optimizer has N trial slots (:meth:`~tuner.studyfile.StudySpec.trials_for`), one
when its whole space is fixed. Slot ``s`` trains the study's ``s``-th initial configuration (the
warm starts, then the recommended one) if there is one, a grid point for the grid sampler, else
a configuration drawn for that slot alone; a retry trains what the slot's earlier attempt
trained. Its seed slots (-1, -2, ...: ``tuner study extend``) each train their own
configuration on their own seeds, after its trial slots. A slot is given up after too many
attempts (see :func:`tuner.store.studies.slot_given_up`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuner.store.studies import FINISHED, slot_given_up
from tuner.studyfile import StudySpec


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


def free_slots(
    spec: StudySpec, attempts: Sequence[SlotAttempt], failed_runs: Counter,
    only: str | None = None, trial_slots_only: bool = False,
) -> list[tuple[str, int]]:
    """The slots a worker may claim, as (optimizer, slot), in the order to run them: trial slot
    by trial slot across optimizers, so every optimizer advances at the same pace, then the
    seed slots (``only``: the slots of that optimizer; ``trial_slots_only``: no seed slots)."""
    held = {(a.optimizer, a.slot) for a in attempts if a.status != "failed"}
    tries = Counter((a.optimizer, a.slot) for a in attempts)
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
    tries = Counter((a.optimizer, a.slot) for a in attempts if a.status == "failed")
    return all(
        (o, s) in finished or slot_given_up(tries[(o, s)], failed_runs[(o, s)])
        for o in spec.optimizers for s in spec.slots(o)
    )


@dataclass(frozen=True)
class SlotPlan:
    """What a slot trains: ``params`` fixed (a retry, an initial configuration, a grid point),
    or None to draw them for this slot; ``origin`` is recorded with the trial."""

    params: dict[str, Any] | None
    origin: str


def plan_slot(
    spec: StudySpec, optimizer: str, slot: int, earlier: Sequence[SlotAttempt],
    grid: Any = None,
) -> SlotPlan:
    """The configuration of a slot's next attempt.

    ``earlier`` are the slot's previous attempts (a retry keeps their configuration);
    ``grid(index)`` gives the grid point of a sampled slot when the sampler is ``grid``. A seed
    slot trains its own configuration.
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
    return SlotPlan(None, "sampled")
