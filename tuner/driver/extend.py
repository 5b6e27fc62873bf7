"""Extending a study: more trials of some optimizers, new seeds of the configurations it measured,
and ``tuner study extend --until-settled``, which adds them round by round until the ranking of
the study's own runs names its winner with P(best) >= 0.9, or the trials reach a cap.

Every addition is written to the study (:func:`tuner.store.studies.extend_study`) before anything
runs, and then run as any slot is: claimed, heartbeated, recorded and counted once. So a killed
extend loses nothing: ``tuner study run NAME`` finishes the slots in flight, and ``tuner study
extend NAME --until-settled`` again first finishes them, then goes on from what the store holds
(the loop keeps no state of its own).

**A round.** Rank the study's own runs; stop when the ranking is settled, or when every optimizer
in contention has the cap of trials; else give each optimizer in contention ``more_trials`` more
trials (what the ranking says would settle it; ``round_size`` when given; else half the compared
trials, at least one), without passing the cap, and, when seeds are missing, a seed slot that
gives each one's best configuration ``more_seeds`` new seeds (else as many as the study has; at
most :data:`MAX_NEW_SEEDS`); run them. The sampler's and pruner's start-up settings derive from
the study's base trials and do not change.

**Equal trials.** A ranking compares optimizers at an equal number of trials k, by default the
fewest any of them has, so that an optimizer given more trials is not favoured. The loop gives
trials to the optimizers in contention alone, so it compares at the fewest any of *those* has
(:func:`rank_for_extension`): an optimizer out of contention is compared as if it had as many,
its further draws like the ones it made (what the ranking's remedies assume too).

**New seeds** of a configuration follow the study's seeds (``first_seed + seeds``, ...), skipping
every seed the store has a run of that configuration on and every seed a seed slot of the study
holds for it already: a new seed is a new observation, never a replay.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.driver.create import CRASH_ENV
from tuner.driver.settings import DriverError
from tuner.store import open_store
from tuner.store.studies import configuration_in_study, extend_study, get_study, study_status
from tuner.study.spec import LIMITS, StudySpec

if TYPE_CHECKING:
    from tuner.advice import Certainty, TaskRanking
    from tuner.driver.worker import WorkerReport
    from tuner.store import Store

MAX_NEW_SEEDS = 8
"""The most new seeds a round gives one configuration (the largest the ranking looks at)."""

DEFAULT_CAP_MULTIPLE = 8
"""Without ``max_trials``, the cap is this multiple of the study's trials: the largest multiple
of the compared trials at which the ranking looks for what would settle it."""

MOST_TRIALS = LIMITS["trials"][1]
MOST_SEED = LIMITS["first_seed"][1]


# -- adding trials ------------------------------------------------------------------------------


def check_trials(
    spec: StudySpec, trials: Any, optimizers: Sequence[str] | None
) -> dict[str, int]:
    """The trials to add per optimizer: ``trials`` more to each of ``optimizers`` (None: every
    optimizer of the study whose settings are not all fixed). Raises a one-line DriverError for
    a count that is not a positive whole number, an optimizer the study does not have, one
    whose every setting is fixed (more trials would repeat its one configuration), or a total
    beyond the most trials an optimizer may have."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise DriverError(f"trials must be a positive whole number, got {trials!r}")
    chosen = list(optimizers) if optimizers else [o for o in spec.optimizers
                                                  if o not in spec.fixed]
    for optimizer in chosen:
        if optimizer not in spec.optimizers:
            raise DriverError(
                f"study {spec.name!r} has no optimizer {optimizer!r}; its optimizers are: "
                f"{', '.join(spec.optimizers)}"
            )
        if optimizer in spec.fixed:
            raise DriverError(
                f"optimizer {optimizer!r} has every setting fixed in study {spec.name!r}: more "
                "trials would repeat its one configuration"
            )
    if not chosen:
        raise DriverError(
            f"every optimizer of study {spec.name!r} has every setting fixed: more trials "
            "would repeat their one configuration"
        )
    for optimizer in chosen:
        if spec.trials_for(optimizer) + trials > MOST_TRIALS:
            raise DriverError(
                f"{optimizer} would have {spec.trials_for(optimizer) + trials:,} trials; at "
                f"most {MOST_TRIALS:,} are allowed"
            )
    return {optimizer: trials for optimizer in dict.fromkeys(chosen)}


def parse_optimizers(value: str | Sequence[str] | None) -> list[str] | None:
    """``a,b`` (or a list of names) -> ``["a", "b"]``; None -> None (every optimizer)."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(name, str) for name in names):
        raise DriverError(f"--optimizers must be optimizer names, got {value!r}")
    cleaned = [name.strip() for name in names if name.strip()]
    if not cleaned:
        raise DriverError("--optimizers needs at least one optimizer name")
    return cleaned


def add_trials(
    name: str, url: str | None, trials: Any, optimizers: str | Sequence[str] | None = None
) -> tuple[StudySpec, dict[str, int]]:
    """Add ``trials`` trials to each of ``optimizers`` of study ``name`` (None: every one whose
    settings are not all fixed); returns the study as stored and the trials added per
    optimizer. Everything is checked before anything is written; nothing is run (``tuner study
    run`` runs them)."""
    store = open_store(url, create=False)
    try:
        spec = get_study(store, name)
        additions = check_trials(spec, trials, parse_optimizers(optimizers))
        return extend_study(store, name, additions, {}), additions
    finally:
        store.dispose()


def check_request(
    trials: Any, optimizers: Any, until_settled: bool, max_trials: Any, round_size: Any
) -> None:
    """The flags of ``tuner study extend`` go together: ``--trials N [--optimizers]``, or
    ``--until-settled [--max-trials N] [--round R]``; a one-line DriverError otherwise."""
    if until_settled and trials is not None:
        raise DriverError("give --trials N or --until-settled, not both")
    if not until_settled and trials is None:
        raise DriverError("give --trials N (more trials) or --until-settled (rounds until "
                          "the ranking is settled)")
    if until_settled and optimizers is not None:
        raise DriverError("--optimizers goes with --trials; --until-settled extends the "
                          "optimizers in contention")
    if not until_settled and (max_trials is not None or round_size is not None):
        raise DriverError("--max-trials and --round go with --until-settled")


def added_text(spec: StudySpec, additions: Mapping[str, int]) -> str:
    """``Added 2 trials to adam (now 5).`` for the optimizers of one extension."""
    parts = [f"{optimizer} (now {spec.trials_for(optimizer)})" for optimizer in additions]
    count = next(iter(additions.values()))
    return f"Added {_count(count, 'trial')} to {_join(parts)}."


# -- the loop ------------------------------------------------------------------------------------


@dataclass
class Standing:
    """Where a study's ranking stands: its leader, the leader's P(best) (None: the noise is
    unknown), the trials per optimizer compared at, and whether it is settled."""

    winner: str | None
    p_best: float | None
    trials: int
    settled: bool
    contender: str | None = None
    reason: str = ""

    def text(self) -> str:
        """``adam leads with P(best) 0.87 at 5 trials each``."""
        if self.winner is None:
            return "no optimizer has a result yet"
        if self.p_best is None:
            return f"{self.winner} leads ({self.reason})"
        return f"{self.winner} leads with P(best) {self.p_best:.2f} at {self.trials} trials each"


@dataclass
class RoundPlan:
    """What one round adds: ``trials[o]`` more trials of optimizer o, and ``seeds`` new seeds
    of the best configuration (its ``config_hash``) of each optimizer in ``configs``."""

    trials: dict[str, int]
    configs: dict[str, str] = field(default_factory=dict)
    seeds: int = 0


@dataclass
class Round:
    """One round as it ran: the trials added per optimizer, the new seeds given to each
    optimizer's best configuration, and where the ranking stood after it (None: it did not
    finish)."""

    trials: dict[str, int]
    seeds: dict[str, list[int]]
    after: Standing | None = None

    def text(self) -> str:
        """``3 more trials of adam and sgd, 2 more seeds of the best configurations of adam
        and sgd``."""
        parts = []
        by_count: dict[int, list[str]] = {}
        for optimizer, count in self.trials.items():
            by_count.setdefault(count, []).append(optimizer)
        for count, names in by_count.items():
            parts.append(f"{_count(count, 'more trial')} of {_join(names)}")
        if self.seeds:
            counts = {len(seeds) for seeds in self.seeds.values()}
            many = next(iter(counts)) if len(counts) == 1 else None
            what = _count(many, "more seed") if many else "more seeds"
            whose = ("the best configuration of " + _join(list(self.seeds)) if len(self.seeds) == 1
                     else f"the best configurations of {_join(list(self.seeds))}")
            parts.append(f"{what} of {whose}")
        return ", ".join(parts) or "nothing"


@dataclass
class ExtendReport:
    """What ``tuner study extend`` did. ``settled`` is None when no ranking was asked for
    (``--trials``); ``last`` is the ranking's standing at the end; ``cap`` the trials per
    optimizer the loop stopped at; ``stopped`` how the last run ended (``finished`` unless it
    was stopped or timed out)."""

    name: str
    rounds: list[Round] = field(default_factory=list)
    settled: bool | None = None
    last: Standing | None = None
    cap: int | None = None
    stopped: str = "finished"

    def summary(self) -> str:
        """``settled: adam, P(best) 0.93 after 12 trials each``, or how far it got."""
        last = self.last
        if self.stopped != "finished":
            return (f"stopped ({self.stopped}) after {_count(len(self.rounds), 'round')}; "
                    "run the same command again to go on")
        if last is None:
            return "extended by " + ("; ".join(r.text() for r in self.rounds) or "nothing")
        if self.settled:
            p = f", P(best) {last.p_best:.2f}" if last.p_best is not None else ""
            return f"settled: {last.winner}{p} after {last.trials} trials each"
        against = f" against {last.contender}" if last.contender else ""
        return f"not settled at the cap of {self.cap} trials: {last.text()}{against}"


def check_cap(spec: StudySpec, max_trials: Any, round_size: Any) -> int:
    """The cap of trials per optimizer of ``--until-settled``: ``max_trials``, by default
    :data:`DEFAULT_CAP_MULTIPLE` times the study's trials. Raises a one-line DriverError for a
    cap or a round that is not a positive whole number, or a cap below the trials an optimizer
    of the study already has."""
    for flag, value in (("--max-trials", max_trials), ("--round", round_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= MOST_TRIALS):
            raise DriverError(
                f"{flag} must be a whole number from 1 to {MOST_TRIALS:,}, got {value!r}")
    tunable = [o for o in spec.optimizers if o not in spec.fixed]
    most = max(tunable, key=spec.trials_for, default=None)
    if max_trials is None:
        have = spec.trials_for(most) if most else spec.trials
        return min(max(DEFAULT_CAP_MULTIPLE * spec.trials, have), MOST_TRIALS)
    if most is not None and max_trials < spec.trials_for(most):
        raise DriverError(
            f"--max-trials {max_trials} is below the {spec.trials_for(most)} trials {most} "
            f"already has in study {spec.name!r}"
        )
    return int(max_trials)


def rank_for_extension(spec: StudySpec, url: str | Store | None) -> TaskRanking:
    """The ranking of the study's own runs the loop goes by: at the fewest trials any
    optimizer in contention has (see the module docstring), which the loop keeps equal."""
    from tuner.advice import rank_task
    from tuner.advice.ranking import what_would_settle

    ranking = rank_task(spec.task, db=url, study=spec.name)
    certainty = ranking.certainty
    if certainty is None or certainty.settled or not certainty.contention:
        what_would_settle(ranking)
        return ranking
    fewest = min(s.outcomes for s in ranking.optimizers if s.optimizer in certainty.contention)
    if fewest > ranking.trials_compared:
        ranking = rank_task(spec.task, db=url, study=spec.name, trials_budget=fewest)
    what_would_settle(ranking)
    return ranking


def standing_of(ranking: TaskRanking) -> Standing:
    """Where ``ranking`` stands (:class:`Standing`)."""
    certainty = ranking.certainty
    winner = ranking.winner.optimizer if ranking.winner else None
    if certainty is None:
        return Standing(winner, None, ranking.trials_compared, False, None, "no results")
    return Standing(winner, certainty.winner_p_best, ranking.trials_compared,
                    certainty.settled, certainty.contender, certainty.reason)


def plan_round(
    spec: StudySpec, ranking: TaskRanking, cap: int, round_size: int | None = None
) -> RoundPlan | None:
    """What the next round adds (see the module docstring); None when the ranking is settled
    or every optimizer in contention has the cap of trials."""
    certainty = ranking.certainty
    if certainty is not None and certainty.settled:
        return None
    contention = _contention(spec, ranking, certainty)
    growing = [o for o in spec.optimizers  # in the study's order
               if o in contention and o not in spec.fixed and spec.trials_for(o) < cap]
    if not growing:
        return None
    size = round_size or _trials_to_settle(certainty) or max(1, math.ceil(
        ranking.trials_compared / 2))
    trials = {o: min(size, cap - spec.trials_for(o)) for o in growing}
    if certainty is None or "seeds" not in certainty.missing:
        return RoundPlan(trials)
    seeds = min(_seeds_to_settle(certainty) or spec.seeds, MAX_NEW_SEEDS)
    best = {s.optimizer: s for s in ranking.optimizers}
    configs = {o: best[o].config_hash for o in contention
               if o in best and best[o].mean is not None and best[o].config_hash}
    return RoundPlan(trials, configs, seeds)


def _contention(spec: StudySpec, ranking: TaskRanking, certainty: Certainty | None
                ) -> list[str]:
    """The study's optimizers in contention (every one when nothing is ranked yet)."""
    if certainty is None:
        return list(spec.optimizers)
    return [o for o in certainty.contention if o in spec.optimizers]


def _trials_to_settle(certainty: Certainty | None) -> int | None:
    if certainty is None:
        return None
    if certainty.more_trials is not None:
        return certainty.more_trials
    return certainty.together[0] if certainty.together else None


def _seeds_to_settle(certainty: Certainty) -> int | None:
    if certainty.more_seeds is not None:
        return certainty.more_seeds
    return certainty.together[1] if certainty.together else None


def new_seeds(spec: StudySpec, config_hash: str, taken: Iterable[int], count: int) -> list[int]:
    """``count`` seeds for a seed slot of configuration ``config_hash``: the first after the
    study's seeds that the configuration has no run on (``taken``) and that no seed slot of
    the study holds for it already."""
    used = set(taken)
    for slots in spec.seed_slots.values():
        for slot in slots:
            if slot.get("config_hash") == config_hash:
                used.update(int(seed) for seed in slot["seeds"])
    found: list[int] = []
    seed = spec.first_seed + spec.seeds
    while len(found) < count and seed <= MOST_SEED:
        if seed not in used:
            found.append(seed)
        seed += 1
    return found


def seed_slots(store: Store, spec: StudySpec, plan: RoundPlan
               ) -> dict[str, list[dict[str, Any]]]:
    """The seed slots of a round: per optimizer of ``plan.configs``, one slot training its
    best configuration (as the study's trials trained it) on ``plan.seeds`` new seeds."""
    slots: dict[str, list[dict[str, Any]]] = {}
    for optimizer, config_hash in plan.configs.items():
        params, taken = configuration_in_study(store, spec, optimizer, config_hash)
        seeds = new_seeds(spec, config_hash, taken, plan.seeds)
        if params is not None and seeds:
            slots[optimizer] = [{"params": params, "seeds": seeds, "config_hash": config_hash}]
    return slots


def add_round(url: str | None, spec: StudySpec, plan: RoundPlan) -> tuple[StudySpec, Round]:
    """Write one round's trials and seed slots to the study; returns it as stored and the
    round."""
    store = open_store(url, create=False)
    try:
        slots = seed_slots(store, spec, plan)
        stored = extend_study(store, spec.name, plan.trials, slots)
    finally:
        store.dispose()
    return stored, Round(dict(plan.trials),
                         {o: list(entries[0]["seeds"]) for o, entries in slots.items()})


def _pending(url: str | None, name: str) -> int:
    """How many slots of the study are neither finished nor given up."""
    store = open_store(url, create=False, readonly=True)
    try:
        status = study_status(store, name)
    finally:
        store.dispose()
    return sum(o.total + o.seed_slots_total - o.done - o.seed_slots_done - len(o.given_up)
               for o in status.optimizers)


def _read_spec(url: str | None, name: str) -> StudySpec:
    store = open_store(url, create=False, readonly=True)
    try:
        return get_study(store, name)
    finally:
        store.dispose()


def extend_until_settled(
    name: str,
    url: str | None,
    run: Callable[[], WorkerReport],
    *,
    max_trials: int | None = None,
    round_size: int | None = None,
    say: Callable[[str], None] | None = None,
) -> ExtendReport:
    """Add rounds of trials (and seeds) to study ``name`` until its ranking is settled or the
    optimizers in contention have ``max_trials`` trials each (see the module docstring).

    ``run()`` runs the study's pending slots to the end (``tuner study run``) and returns its
    :class:`~tuner.driver.WorkerReport`; a run that ends otherwise than finished (a stop, a
    timeout) ends the loop. ``say`` gets one line per round. Everything is checked before
    anything is written."""
    say = say or (lambda line: None)
    spec = _read_spec(url, name)
    cap = check_cap(spec, max_trials, round_size)
    report = ExtendReport(name, cap=cap)
    pending = _pending(url, name)
    if pending:
        say(f"Running the {_count(pending, 'slot')} of study {name!r} still to run first.")
        report.stopped = run().stopped or "finished"
        if report.stopped != "finished":
            return report
    while True:
        ranking = rank_for_extension(spec, url)
        report.last = standing_of(ranking)
        if report.rounds:
            report.rounds[-1].after = report.last
            say(f"Round {len(report.rounds)}: {report.rounds[-1].text()}; "
                f"{report.last.text()}.")
        plan = plan_round(spec, ranking, cap, round_size)
        if plan is None:
            report.settled = report.last.settled
            return report
        spec, added = add_round(url, spec, plan)
        report.rounds.append(added)
        _crash_point("extend-round")
        report.stopped = run().stopped or "finished"
        if report.stopped != "finished":
            return report
        spec = _read_spec(url, name)


def _crash_point(step: str) -> None:
    """Fault injection for the kill tests (``TUNER_CRASH_AT=extend-round``): the process kills
    itself once a round is written, before any of it ran."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("s" if number != 1 else "")


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
