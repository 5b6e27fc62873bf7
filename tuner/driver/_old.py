"""The Optuna driver: create studies, run their trials in workers, reap dead workers, report.

One tuner study is one task x a list of optimizers x N trials per optimizer x K seeds. Each
optimizer gets its own Optuna study (``tuner/<study>/<optimizer>``) on the store's database, so
the sampler never starves one optimizer to feed another, and every optimizer gets exactly N
trials. A trial trains its configuration once per seed; its value is the mean of the seeds'
final metric, in the task's direction.

**Claims, not a coordinator.** A worker is a loop over the database: it claims one of an
optimizer's N *slots* by inserting its ``tuner_trials`` row with ``slot = s``. A partial unique
index (at most one trial that is not ``failed`` per study, optimizer and slot) makes the claim
atomic on SQLite and PostgreSQL alike: two workers never hold the same slot, and a finished slot
is never run again. While it trains, a worker's heartbeat thread touches ``heartbeat_at``; any
worker that finds a running trial whose heartbeat is older than the grace period *reaps* it
(marks it and its Optuna trial failed), which frees the slot for a retry. A retry keeps the
configuration (the Optuna trial is re-created with the same parameters) and the seeds that were
already recorded: a killed worker loses nothing it had committed.

**Diverged runs are results.** A trial with a diverged seed stops there and is told to Optuna
as COMPLETE with the worst value the metric can take (+inf when minimising, -inf when
maximising). Marking it FAIL would hide it from the samplers (TPE ignores failed trials) and
they would keep proposing the learning rates that blow up; a COMPLETE worst value teaches them
that the region is bad, and the trial counts towards the equal budget. A run that *fails* (an
exception inside training) is FAIL: it says nothing about the hyperparameters; the slot is
retried, up to :data:`MAX_FAILED_ATTEMPTS` times.

**Pruning.** ``median`` and ``hyperband`` compare learning curves: every evaluation of every
seed is reported at step ``seed_index * (budget + 1) + step``, so trials are compared seed by
seed at equal training progress, and Hyperband's resource is the number of steps trained so
far. ``wilcoxon`` is Optuna's pruner for per-instance results; here the instances are the seeds:
after each seed its final metric is reported at step ``seed_index``, and the trial is stopped
once a signed-rank test says it is worse than the best trial on the same seeds. With p = 0.1
that needs at least 4 seeds (with 3 paired seeds the smallest possible p-value is 0.125).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import statistics
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tuner.errors import TunerError
from tuner.store import (
    Run,
    Store,
    Study,
    Trial,
    create_study,
    get_study,
    open_store,
    params_hash,
    record_run,
    set_study_status,
)
from tuner.store.models import utcnow
from tuner.studyfile import StudySpec, apply_ranges

if TYPE_CHECKING:
    import optuna

    from tuner.task import Task
    from tuner.training import CurvePoint, RunResult

FINISHED = ("complete", "pruned", "diverged")
"""Trial statuses that fill a slot for good."""

MAX_FAILED_ATTEMPTS = 3
"""A slot whose trials failed (an exception in training) this many times is given up."""

MAX_ATTEMPTS = 10
"""A slot tried this many times in all (reaped, interrupted, failed) is given up."""

HEARTBEAT_ENV = "TUNER_HEARTBEAT_SECONDS"
GRACE_ENV = "TUNER_GRACE_SECONDS"


class DriverError(TunerError):
    """A study cannot be created or run as asked."""


@dataclass(frozen=True)
class WorkerSettings:
    """How often a worker proves it is alive, and how long a silent worker is waited for.

    ``grace_seconds`` must be comfortably longer than ``heartbeat_seconds`` (and than any clock
    difference between hosts: heartbeats are UTC timestamps written by the workers).
    """

    heartbeat_seconds: float = 10.0
    grace_seconds: float = 60.0

    @classmethod
    def from_env(cls, grace_seconds: float | None = None) -> WorkerSettings:
        """Defaults, overridden by ``$TUNER_HEARTBEAT_SECONDS`` / ``$TUNER_GRACE_SECONDS``."""
        heartbeat = float(os.environ.get(HEARTBEAT_ENV, cls.heartbeat_seconds))
        grace = grace_seconds or float(os.environ.get(GRACE_ENV, cls.grace_seconds))
        if heartbeat <= 0 or grace <= heartbeat:
            raise DriverError(
                f"the grace period ({grace:g} s) must be longer than the heartbeat interval "
                f"({heartbeat:g} s)"
            )
        return cls(heartbeat, grace)


def optuna_study_name(study: str, optimizer: str) -> str:
    """The Optuna study that holds one optimizer's trials of a tuner study."""
    return f"tuner/{study}/{optimizer}"


def worst_value(direction: str) -> float:
    """The value a diverged trial is told to Optuna with: worse than any real result."""
    return math.inf if direction == "minimize" else -math.inf


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# --------------------------------------------------------------------------------------------
# Study configuration, as stored


@dataclass
class StudyConfig:
    """A study as read back from ``tuner_studies``: everything a worker needs."""

    id: int
    name: str
    task: str
    optimizers: list[str]
    trials: int
    seeds: list[int]
    sampler: str
    pruner: str
    options: dict[str, Any]
    ranges: dict[str, dict[str, list[float]]]
    status: str

    @classmethod
    def from_row(cls, row: Study) -> StudyConfig:
        return cls(
            id=row.id, name=row.name, task=row.task, optimizers=list(row.optimizers),
            trials=row.trials_per_optimizer, seeds=[int(s) for s in row.seeds],
            sampler=row.sampler, pruner=row.pruner, options=dict(row.options or {}),
            ranges=dict(row.search_spaces or {}), status=row.status,
        )

    @property
    def sampler_seed(self) -> int:
        return int(self.options.get("seed") or 0)

    def task_plugin(self) -> Task:
        from tuner.plugins import get_registry

        return get_registry().task(self.task)

    def budget(self) -> int:
        """Optimizer steps per run: the study's budget, else the task's."""
        return int(self.options.get("budget") or self.task_plugin().budget)

    def space(self, optimizer: str) -> Any:
        from tuner.plugins import get_registry

        plugin = get_registry().optimizer(optimizer)
        return apply_ranges(plugin.space, self.ranges.get(optimizer, {}), optimizer)

    def optuna_name(self, optimizer: str) -> str:
        return optuna_study_name(self.name, optimizer)


def load_config(store: Store, name: str) -> StudyConfig:
    """The study called ``name`` (UnknownNameError listing the studies when there is none)."""
    return StudyConfig.from_row(get_study(store, name))


# --------------------------------------------------------------------------------------------
# Samplers and pruners


def grid_points(space: Any, trials: int) -> dict[str, list[Any]]:
    """A grid over ``space`` with about ``trials - 1`` points (the first trial is the
    recommended configuration, which is not on the grid).

    Categorical parameters take all their choices; numeric ones get points one at a time, the
    learning rate three times as readily as the others, while the grid stays within the budget.
    """
    from tuner.space import Categorical

    target = max(1, trials - 1)
    counts = {p.name: 1 for p in space if not isinstance(p, Categorical)}
    fixed = math.prod(len(p.choices) for p in space if isinstance(p, Categorical))
    weight = {name: 3.0 if name == "lr" else 1.0 for name in counts}

    def size(candidate: Mapping[str, int]) -> int:
        return fixed * math.prod(candidate.values())

    while counts:
        order = sorted(counts, key=lambda name: counts[name] / weight[name])
        for name in order:
            grown = {**counts, name: counts[name] + 1}
            if size(grown) <= target:
                counts = grown
                break
        else:
            break
    grid = {}
    for param in space:
        points = param.grid(counts.get(param.name, 1))
        grid[param.name] = list(dict.fromkeys(points))
    return grid


def make_sampler(
    config: StudyConfig, optimizer: str, slot: int = 0
) -> optuna.samplers.BaseSampler:
    """The sampler of one optimizer's study. TPE and random are seeded per optimizer and slot
    (reproducible with one worker, different across parallel workers, and different between
    optimizers whose spaces share parameter names, which would otherwise draw the same
    configurations); QMC and grid share one seed, which fixes their sequence and grid order for
    every worker."""
    import optuna

    seed = (config.sampler_seed * 100_003 + slot + zlib.crc32(optimizer.encode())) % 2**32
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "qmc":
        return optuna.samplers.QMCSampler(
            scramble=True, seed=config.sampler_seed, warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
        )
    if config.sampler == "grid":
        # One seed for every trial: GridSampler shuffles the grid with it, and a grid id must
        # mean the same point in every worker.
        grid = grid_points(config.space(optimizer), config.trials)
        return _GridSampler(grid, seed=config.sampler_seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(2, min(10, config.trials // 3)), constant_liar=True,
    )


def _grid_sampler_class() -> type:
    import optuna

    class SlotGridSampler(optuna.samplers.GridSampler):
        """GridSampler without its stop signal: at the end of the grid it calls
        ``study.stop()``, which only works inside ``study.optimize``; here the slots bound the
        number of trials (and a grid smaller than the budget is re-sampled)."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return SlotGridSampler


def _GridSampler(grid: dict[str, list[Any]], seed: int) -> Any:  # noqa: N802 - a class factory
    return _grid_sampler_class()(grid, seed=seed)


def make_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The pruner; see the module docstring for what each one compares."""
    import optuna

    budget = config.budget()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=max(2, min(5, config.trials // 4)), n_warmup_steps=budget // 4,
        )
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, budget // 8), max_resource=len(config.seeds) * (budget + 1),
            reduction_factor=3,
        )
    if config.pruner == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    return optuna.pruners.NopPruner()


# --------------------------------------------------------------------------------------------
# Creating, listing, deleting


def create(
    spec: StudySpec,
    url: str | None = None,
    warm_starts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> StudyConfig:
    """Write a checked study (:func:`tuner.studyfile.resolve`) and its Optuna studies.

    The first trial of each optimizer is its recommended configuration, enqueued in its Optuna
    study; with ``warm_starts`` (:func:`tuner.advice.warm_start_spec`) the best known
    configurations come first and the recommended one right after them.
    Raises DriverError, before anything is written, when the name is taken.
    """
    import optuna

    _quiet_optuna()
    task = _task(spec.task)
    spaces = {optimizer: spec.space(optimizer) for optimizer in spec.optimizers}
    store = open_store(url)
    try:
        storage = store.optuna_storage()
        with store.session() as session:
            taken = session.scalar(select(Study.id).where(Study.name == spec.name))
        existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        clash = [o for o in spec.optimizers if optuna_study_name(spec.name, o) in existing]
        if taken is not None or clash:
            raise DriverError(f"a study named {spec.name!r} already exists")
        options = spec.options() | {
            "space_hashes": {o: spaces[o].fingerprint() for o in spec.optimizers},
        }
        study_id = create_study(
            store, name=spec.name, task=spec.task, optimizers=spec.optimizers,
            trials_per_optimizer=spec.trials, seeds=list(range(spec.seeds)),
            sampler=spec.sampler, pruner=spec.pruner, options=options,
            search_spaces=spec.ranges,
        )
        made: list[str] = []
        try:
            for optimizer in spec.optimizers:
                name = optuna_study_name(spec.name, optimizer)
                study = optuna.create_study(
                    study_name=name, storage=storage, direction=task.direction
                )
                made.append(name)
                study.set_user_attr("tuner_study", spec.name)
                study.set_user_attr("task", spec.task)
                study.set_user_attr("optimizer", optimizer)
                study.set_user_attr("metric", task.metric)
                for params in (warm_starts or {}).get(optimizer, ()):  # best known first
                    study.enqueue_trial(dict(params), user_attrs={"warm_start": True})
                study.enqueue_trial(spaces[optimizer].recommended(),
                                    user_attrs={"recommended": True}, skip_if_exists=True)
        except BaseException:
            for name in made:
                with suppress(KeyError):
                    optuna.delete_study(study_name=name, storage=storage)
            with store.engine.begin() as connection:
                connection.execute(delete(Study).where(Study.id == study_id))
            raise
        return load_config(store, spec.name)
    finally:
        store.dispose()


def _task(name: str) -> Task:
    from tuner.plugins import get_registry

    return get_registry().task(name)


def delete_study(name: str, url: str | None = None) -> int:
    """Delete a study: its Optuna studies, then its rows (trials, runs, curves cascade).

    Returns the number of runs deleted. Optuna's studies go first: if this is interrupted, the
    tuner rows are still there and deleting again finishes the job.
    """
    import optuna

    _quiet_optuna()
    store = open_store(url, create=False)
    try:
        config = load_config(store, name)
        storage = store.optuna_storage()
        for optimizer in config.optimizers:
            with suppress(KeyError):
                optuna.delete_study(study_name=config.optuna_name(optimizer), storage=storage)
        with store.engine.begin() as connection:
            runs = connection.scalar(
                select(func.count()).select_from(Run).where(Run.study_id == config.id)
            )
            connection.execute(delete(Run).where(Run.study_id == config.id))
            connection.execute(delete(Trial).where(Trial.study_id == config.id))
            connection.execute(delete(Study).where(Study.id == config.id))
        return int(runs or 0)
    finally:
        store.dispose()


@dataclass
class OptimizerStatus:
    """One optimizer's progress in a study and its best trial so far."""

    optimizer: str
    done: int
    total: int
    running: int
    complete: int
    pruned: int
    diverged: int
    failed_attempts: int
    best_value: float | None
    best_params: dict[str, Any] | None
    best_trial: int | None
    best_seeds: int | None = None

    def describe(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StudyStatus:
    """What ``tuner study show`` prints."""

    config: StudyConfig
    metric: str
    direction: str
    status: str
    optimizers: list[OptimizerStatus] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(o.done for o in self.optimizers)

    @property
    def total(self) -> int:
        return sum(o.total for o in self.optimizers)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": c.name, "task": c.task, "metric": self.metric, "direction": self.direction,
            "status": self.status, "optimizers": c.optimizers, "trials_per_optimizer": c.trials,
            "seeds": len(c.seeds), "sampler": c.sampler, "pruner": c.pruner,
            "budget": c.options.get("budget"), "schedule": c.options.get("schedule"),
            "ranges": c.ranges, "trials_done": self.done, "trials_total": self.total,
            "per_optimizer": [o.describe() for o in self.optimizers],
        }


def study_status(store: Store, config: StudyConfig) -> StudyStatus:
    """Progress and best result per optimizer, from the trial rows alone (no Optuna calls)."""
    task = _task(config.task)
    with store.session() as session:
        rows = session.execute(
            select(Trial.optimizer, Trial.slot, Trial.status, Trial.value, Trial.params,
                   Trial.optuna_trial_number, Trial.id)
            .where(Trial.study_id == config.id, Trial.slot.is_not(None))
        ).all()
        seeds_per_trial = dict(
            session.execute(
                select(Run.trial_id, func.count()).where(Run.study_id == config.id)
                .group_by(Run.trial_id)
            ).all()
        )
    sign = 1.0 if task.direction == "minimize" else -1.0
    per: list[OptimizerStatus] = []
    for optimizer in config.optimizers:
        mine = [r for r in rows if r.optimizer == optimizer]
        counts = Counter(r.status for r in mine)
        scored = [r for r in mine if r.status == "complete" and r.value is not None]
        best = min(scored, key=lambda r: sign * r.value, default=None)
        per.append(OptimizerStatus(
            optimizer=optimizer, done=sum(counts[s] for s in FINISHED), total=config.trials,
            running=counts["running"], complete=counts["complete"], pruned=counts["pruned"],
            diverged=counts["diverged"], failed_attempts=counts["failed"],
            best_value=best.value if best else None, best_params=best.params if best else None,
            best_trial=best.optuna_trial_number if best else None,
            best_seeds=seeds_per_trial.get(best.id) if best else None,
        ))
    done = sum(o.done for o in per)
    total = config.trials * len(config.optimizers)
    if done >= total or _all_slots_settled(rows, config):
        status = "finished"
    elif any(o.running for o in per):
        status = "running"
    elif done:
        status = "stopped"
    else:
        status = "created"
    return StudyStatus(config, task.metric, task.direction, status, per)


def _all_slots_settled(rows: Any, config: StudyConfig) -> bool:
    """Every slot is finished or given up (too many failed attempts)."""
    finished = {(r.optimizer, r.slot) for r in rows if r.status in FINISHED}
    tries = Counter((r.optimizer, r.slot) for r in rows if r.status == "failed")
    return all(
        (o, s) in finished or tries[(o, s)] >= MAX_ATTEMPTS
        for o in config.optimizers for s in range(config.trials)
    )


def is_finished(name: str, url: str | None = None) -> bool:
    """Whether every slot of the study is finished (or given up)."""
    store = open_store(url, create=False)
    try:
        return study_status(store, load_config(store, name)).status == "finished"
    finally:
        store.dispose()


def list_studies(url: str | None = None) -> list[StudyStatus]:
    """Every study in the store with its progress."""
    store = open_store(url, create=False)
    try:
        with store.session() as session:
            rows = session.scalars(select(Study).order_by(Study.created_at, Study.id)).all()
        return [study_status(store, StudyConfig.from_row(row)) for row in rows]
    finally:
        store.dispose()


def export_rows(name: str, url: str | None = None) -> list[dict[str, Any]]:
    """One dict per run of the study, with the run's parameters flattened to ``param_<name>``."""
    store = open_store(url, create=False)
    try:
        config = load_config(store, name)
        with store.session() as session:
            rows = session.execute(
                select(Run, Trial.slot, Trial.optuna_trial_number, Trial.status, Trial.value)
                .join(Trial, Run.trial_id == Trial.id)
                .where(Run.study_id == config.id)
                .order_by(Trial.optimizer, Trial.slot, Trial.id, Run.seed)
            ).all()
    finally:
        store.dispose()
    names = sorted({key for row in rows for key in (row.Run.params or {})})
    out = []
    for run, slot, number, trial_status, trial_value in rows:
        record = {
            "study": config.name, "task": run.task, "optimizer": run.optimizer, "slot": slot,
            "trial": number, "trial_status": trial_status, "trial_value": trial_value,
            "seed": run.seed, "status": run.status, "final_metric": run.final_metric,
            "best_metric": run.best_metric, "steps": run.steps,
            "steps_to_target": run.steps_to_target, "seconds_to_target": run.seconds_to_target,
            "wall_seconds": run.wall_seconds, "peak_memory_bytes": run.peak_memory_bytes,
            "optimizer_state_bytes": run.optimizer_state_bytes, "device": run.device,
            "plugin_version": run.plugin_version, "space_hash": run.space_hash,
            "error": run.error,
        }
        record.update({f"param_{key}": (run.params or {}).get(key) for key in names})
        out.append(record)
    return out


# --------------------------------------------------------------------------------------------
# The worker


@dataclass
class Claim:
    """A slot this worker holds: its trial row, and the Optuna trial running it."""

    optimizer: str
    slot: int
    row_id: int
    trial: optuna.Trial
    study: optuna.Study
    retry_of: list[int]
    params: dict[str, Any]
    closed: bool | None = None
    """Whether the trial row was closed together with its last run (None: not yet)."""


@dataclass
class WorkerReport:
    """What one worker did."""

    trials: int = 0
    stopped: str = ""  # "", "finished", "interrupted", "timeout", "waiting"
    already_finished: bool = False


class Worker:
    """A loop that claims slots of one study and runs them until none is left.

    Any number of workers, in any number of processes on any number of hosts, may run the same
    study against the same database; they coordinate only through their claims (see the module
    docstring). ``on_trial`` is called after each trial this worker finishes.
    """

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
        self.name = name
        self.url = url
        self.settings = settings or WorkerSettings.from_env()
        self.timeout = timeout
        self.on_trial = on_trial
        self.wait_for_others = wait_for_others
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self._lost = threading.Event()
        # The trial the heartbeat thread keeps alive: (row id, that trial's lost flag), or None.
        self._beating: tuple[int, threading.Event] | None = None
        self._last_reap = -math.inf

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> WorkerReport:
        """Claim and run trials until every slot is finished (or the timeout passes)."""
        _quiet_optuna()
        report = WorkerReport()
        self.store = open_store(self.url, create=False)
        try:
            self.config = load_config(self.store, self.name)
            self.task = _task(self.config.task)
            self._check_spaces()
            self._prepare_optimizers()
            self.storage = self.store.optuna_storage()
            self.studies = {o: self._load_optuna_study(o) for o in self.config.optimizers}
            self._sweep_optuna()
            self._queued = {o: self._waiting_trials(o) for o in self.config.optimizers}
            if self._settled():
                report.already_finished = True
                report.stopped = "finished"
                return report
            set_study_status(self.store, self.config.id, "running")
            self._start_heartbeat()
            started = time.monotonic()
            while True:
                if self.timeout is not None and time.monotonic() - started > self.timeout:
                    report.stopped = "timeout"
                    break
                self._reap()
                claim = self._claim()
                if claim is None:
                    if self._settled():
                        report.stopped = "finished"
                        set_study_status(self.store, self.config.id, "finished")
                        self._sweep_optuna()
                        break
                    if not self.wait_for_others:
                        report.stopped = "waiting"
                        break
                    time.sleep(min(self.settings.heartbeat_seconds, 2.0))
                    continue
                try:
                    self._run_trial(claim)
                except KeyboardInterrupt:
                    self._release(claim)
                    report.stopped = "interrupted"
                    raise KeyboardInterrupt from None
                except BaseException:
                    self._release(claim)  # e.g. training refused its options: free the slot
                    raise
                report.trials += 1
                if self.on_trial is not None:
                    self.on_trial()
        except KeyboardInterrupt:
            report.stopped = "interrupted"
        finally:
            self._stop_heartbeat()
            self.store.dispose()
        return report

    def _check_spaces(self) -> None:
        stored = self.config.options.get("space_hashes") or {}
        for optimizer in self.config.optimizers:
            want = stored.get(optimizer)
            have = self.config.space(optimizer).fingerprint()
            if want is not None and want != have:
                raise DriverError(
                    f"the search space of optimizer {optimizer!r} changed since study "
                    f"{self.config.name!r} was created (plugin upgraded?); create a new study"
                )

    def _prepare_optimizers(self) -> None:
        """Per optimizer, once per worker: the study's space, its fingerprint, and the plugin
        that trains with it (the study's ranges may be wider than the plugin declares)."""
        from tuner.plugins import get_registry

        self.spaces = {o: self.config.space(o) for o in self.config.optimizers}
        self.fingerprints = {o: space.fingerprint() for o, space in self.spaces.items()}
        self.plugins = {
            o: replace(get_registry().optimizer(o), space=space)
            for o, space in self.spaces.items()
        }

    def _waiting_trials(self, optimizer: str) -> int:
        """How many enqueued (WAITING) trials the optimizer's Optuna study holds. Only
        :func:`create` enqueues, so after this many ``ask`` calls the queue is empty."""
        from optuna.trial import TrialState

        study = self.studies[optimizer]
        return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def _load_optuna_study(self, optimizer: str) -> optuna.Study:
        import optuna

        try:
            return optuna.load_study(
                study_name=self.config.optuna_name(optimizer), storage=self.storage,
                sampler=make_sampler(self.config, optimizer), pruner=make_pruner(self.config),
            )
        except KeyError:
            raise DriverError(
                f"study {self.config.name!r} has no Optuna study for {optimizer!r} "
                f"({self.config.optuna_name(optimizer)}); delete it and create it again"
            ) from None

    # -- slots ------------------------------------------------------------------------------

    def _slot_rows(self) -> list[Any]:
        with self.store.session() as session:
            return session.execute(
                select(Trial.id, Trial.optimizer, Trial.slot, Trial.status, Trial.params,
                       Trial.optuna_trial_id)
                .where(Trial.study_id == self.config.id, Trial.slot.is_not(None))
                .order_by(Trial.id)
            ).all()

    def _settled(self) -> bool:
        return _all_slots_settled(self._slot_rows(), self.config)

    def _free_slots(self, rows: list[Any]) -> list[tuple[int, int, str]]:
        """Free (slot, optimizer position, optimizer), in the order they should be run:
        slot by slot across optimizers, so every optimizer advances at the same pace."""
        held = {(r.optimizer, r.slot) for r in rows if r.status != "failed"}
        attempts = Counter((r.optimizer, r.slot) for r in rows)
        failures = (
            self._failed_attempts() if any(r.status == "failed" for r in rows) else Counter()
        )
        free = []
        for position, optimizer in enumerate(self.config.optimizers):
            for slot in range(self.config.trials):
                key = (optimizer, slot)
                if key in held or attempts[key] >= MAX_ATTEMPTS:
                    continue
                if failures[key] >= MAX_FAILED_ATTEMPTS:
                    continue
                free.append((slot, position, optimizer))
        return sorted(free)

    def _failed_attempts(self) -> Counter:
        """Attempts per slot that ended because a run failed (not reaped, not interrupted)."""
        with self.store.session() as session:
            rows = session.execute(
                select(Trial.optimizer, Trial.slot, func.count(func.distinct(Trial.id)))
                .join(Run, Run.trial_id == Trial.id)
                .where(Trial.study_id == self.config.id, Trial.status == "failed",
                       Run.status == "failed")
                .group_by(Trial.optimizer, Trial.slot)
            ).all()
        return Counter({(o, s): n for o, s, n in rows})

    def _claim(self) -> Claim | None:
        """Claim the first free slot: a new Optuna trial and the row that holds the slot."""
        rows = self._slot_rows()
        free = self._free_slots(rows)
        tried: set[tuple[str, int]] = set()
        for slot, _, optimizer in free:
            if (optimizer, slot) in tried:
                continue
            previous = [r for r in rows if r.optimizer == optimizer and r.slot == slot]
            retry = next((r for r in reversed(previous) if r.params), None)
            study = self.studies[optimizer]
            study.sampler = make_sampler(self.config, optimizer, slot)
            trial = self._new_optuna_trial(optimizer, retry.params if retry else None, slot)
            # Sampled before the claim, so the claim row is written once, with its parameters.
            params = self.spaces[optimizer].suggest(trial)
            # A fresh trial may fill any free slot of its optimizer; a retry only its own.
            targets = [slot] if retry else [s for s, _, o in free if o == optimizer]
            for target in targets:
                if (optimizer, target) in tried:
                    continue
                row_id = self._insert_claim(optimizer, target, trial, params)
                tried.add((optimizer, target))
                if row_id is not None:
                    return Claim(optimizer, target, row_id, trial, study,
                                 [r.id for r in previous], params)
            self._fail_optuna_trial(study, trial._trial_id, note="unclaimed")
        return None

    def _new_optuna_trial(
        self, optimizer: str, params: Mapping[str, Any] | None, slot: int
    ) -> optuna.Trial:
        import optuna
        from optuna.trial import FrozenTrial, TrialState

        study = self.studies[optimizer]
        if params is None:
            if self._queued[optimizer] > 0:
                self._queued[optimizer] -= 1
                return study.ask()  # pops the enqueued recommended configuration first
            # The queue is empty (each ask above popped one, or found none): a new trial,
            # as ask() makes it, without ask's query for waiting trials.
            study._thread_local.cached_all_trials = None
            return optuna.Trial(study, study._storage.create_new_trial(study._study_id))
        # A retry: the same configuration, in a new trial that only this worker can take
        # (an enqueued trial could be popped by another worker for another slot).
        template = FrozenTrial(
            number=-1, state=TrialState.RUNNING, value=None, datetime_start=utcnow(),
            datetime_complete=None, params={}, distributions={},
            user_attrs={"slot": slot, "retry": True}, system_attrs={"fixed_params": dict(params)},
            intermediate_values={}, trial_id=-1,
        )
        # Study._storage is the caching wrapper the Study reads through; creating the trial
        # through it keeps its cache consistent (RDBStorage directly would not be seen).
        trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
        return optuna.Trial(study, trial_id)

    def _insert_claim(
        self, optimizer: str, slot: int, trial: optuna.Trial, params: dict[str, Any]
    ) -> int | None:
        now = utcnow()
        values = {
            "study_id": self.config.id, "optimizer": optimizer,
            "optuna_study_name": self.config.optuna_name(optimizer),
            "optuna_trial_number": trial.number, "optuna_trial_id": trial._trial_id,
            "params": params, "status": "running", "started_at": now, "heartbeat_at": now,
            "worker_host": self.host, "worker_pid": self.pid, "slot": slot,
        }
        try:
            with self.store.engine.begin() as connection:
                result = connection.execute(insert(Trial).values(values))
                return int(result.inserted_primary_key[0])
        except IntegrityError:
            return None

    # -- running a trial ---------------------------------------------------------------------

    def _run_trial(self, claim: Claim) -> None:
        # A fresh flag per trial: a late beat for the previous trial cannot stop this one.
        self._lost = threading.Event()
        self._beating = (claim.row_id, self._lost)
        try:
            outcome, value = self._run_seeds(
                claim, self.plugins[claim.optimizer], claim.optimizer, claim.params
            )
        finally:
            self._beating = None
        if outcome == "lost":
            return  # reaped while running: the reaper has failed both records already
        self._finish(claim, outcome, value)

    def _run_seeds(
        self, claim: Claim, plugin: Any, optimizer: str, params: dict[str, Any]
    ) -> tuple[str, float | None]:
        from tuner.training import train

        budget = self.config.budget()
        curve_mode = self.config.pruner in ("median", "hyperband")
        reused = self._reuse_runs(claim, params)
        finals: list[float] = []
        for index, seed in enumerate(self.config.seeds):
            last = index + 1 == len(self.config.seeds)
            if seed in reused:
                result_status, final, curve = reused[seed]
                if curve_mode:
                    for step, metric in curve:
                        if metric is not None and math.isfinite(metric):
                            claim.trial.report(metric, index * (budget + 1) + step)
                outcome = _outcome_after(result_status, final, finals, last)
            else:
                callback = self._callback(claim, index, budget, curve_mode)
                result = train(
                    self.task, plugin, params, seed, budget=self.config.options.get("budget"),
                    schedule=self.config.options.get("schedule") or "constant",
                    callback=callback,
                )
                if self._lost.is_set():
                    return "lost", None
                final = result.final_metric
                outcome = _outcome_after(result.status, final, finals, last)
                self._record(claim, result, plugin, optimizer, outcome)
            if outcome is not None and outcome[0] != "complete":
                return outcome
            finals.append(float(final or 0.0))  # finite here: _outcome_after checked it
            if self.config.pruner == "wilcoxon":
                claim.trial.report(finals[-1], index)
                if not last and claim.trial.should_prune():
                    return "pruned", _mean(finals)
            if outcome is not None:
                return outcome  # the last seed: complete
        return "complete", _mean(finals)

    def _callback(
        self, claim: Claim, index: int, budget: int, curve_mode: bool
    ) -> Callable[[CurvePoint], bool]:
        offset = index * (budget + 1)

        def on_evaluation(point: CurvePoint) -> bool:
            if self._lost.is_set():
                return True
            if curve_mode and math.isfinite(point.metric):
                claim.trial.report(point.metric, offset + point.step)
                return claim.trial.should_prune()
            return False

        return on_evaluation

    def _record(
        self, claim: Claim, result: RunResult, plugin: Any, optimizer: str,
        closing: tuple[str, float | None] | None,
    ) -> None:
        """Store one run; when it ends the trial (``closing`` is its outcome and value), the
        trial row is closed in the same transaction: one commit less per trial."""
        with self.store.engine.begin() as connection:
            record_run(
                connection, claim.row_id, result, plugin_version=plugin.version or None,
                space_hash=self.fingerprints[optimizer],
            )
            if closing is not None:
                claim.closed = self._close_row(connection, claim, *closing)

    def _close_row(
        self, connection: Any, claim: Claim, outcome: str, value: float | None
    ) -> bool:
        """Set the trial row's outcome, if it is still running (not reaped) and ours."""
        stored = value if outcome in ("complete", "pruned") else None
        updated = connection.execute(
            update(Trial)
            .where(Trial.id == claim.row_id, Trial.status == "running")
            .values(status=outcome, value=_finite(stored), finished_at=utcnow())
        ).rowcount
        return bool(updated)

    def _reuse_runs(
        self, claim: Claim, params: dict[str, Any]
    ) -> dict[int, tuple[str, float | None, list[tuple[int, float | None]]]]:
        """Move the finished seeds of earlier attempts at this slot (same configuration) to
        this trial; returns {seed: (status, final metric, curve)} for them."""
        if not claim.retry_of:
            return {}
        from tuner.store import CurveRow

        key = params_hash(params)
        with self.store.engine.begin() as connection:
            found = connection.execute(
                select(Run.id, Run.seed, Run.status, Run.final_metric)
                .where(Run.trial_id.in_(claim.retry_of), Run.params_hash == key,
                       Run.status.in_(("complete", "diverged")))
                .order_by(Run.id)
            ).all()
            chosen = {}
            for run_id, seed, status, final in found:
                if seed in self.config.seeds and seed not in chosen:
                    chosen[seed] = (run_id, status, final)
            if not chosen:
                return {}
            ids = [run_id for run_id, _, _ in chosen.values()]
            connection.execute(update(Run).where(Run.id.in_(ids)).values(trial_id=claim.row_id))
            points = connection.execute(
                select(CurveRow.run_id, CurveRow.step, CurveRow.metric)
                .where(CurveRow.run_id.in_(ids)).order_by(CurveRow.run_id, CurveRow.step)
            ).all()
        curves: dict[int, list[tuple[int, float | None]]] = {}
        for run_id, step, metric in points:
            curves.setdefault(run_id, []).append((step, metric))
        return {
            seed: (status, final, curves.get(run_id, []))
            for seed, (run_id, status, final) in chosen.items()
        }

    def _finish(self, claim: Claim, outcome: str, value: float | None) -> None:
        """Close the trial row first, then tell Optuna: if the worker dies in between, the
        sweep (:meth:`_sweep_optuna`) tells Optuna what the row says."""
        from optuna.trial import TrialState

        if claim.closed is None:  # not closed with the last run (reused seeds, pruned)
            with self.store.engine.begin() as connection:
                claim.closed = self._close_row(connection, claim, outcome, value)
        if not claim.closed:
            return  # reaped after its last run: the slot is someone else's now
        if outcome == "complete":
            _tell(claim.study, claim.trial, value)
        elif outcome == "diverged":
            claim.trial.set_user_attr("diverged", True)
            _tell(claim.study, claim.trial, worst_value(self.task.direction))
        elif outcome == "pruned":
            _tell(claim.study, claim.trial, state=TrialState.PRUNED)
        else:
            _tell(claim.study, claim.trial, state=TrialState.FAIL)

    def _release(self, claim: Claim) -> None:
        """Give a slot back after an interruption: the trial is failed, the slot is free and
        the next worker retries it with the same configuration and the seeds already done."""
        with self.store.engine.begin() as connection:
            connection.execute(
                update(Trial).where(Trial.id == claim.row_id, Trial.status == "running")
                .values(status="failed", finished_at=utcnow())
            )
        self._fail_optuna_trial(claim.study, claim.trial._trial_id, note="interrupted")

    def _fail_optuna_trial(self, study: optuna.Study, trial_id: int, note: str) -> None:
        import optuna
        from optuna.trial import TrialState

        with suppress(optuna.exceptions.UpdateFinishedTrialError, KeyError):
            study._storage.set_trial_user_attr(trial_id, "tuner_failed", note)
            study._storage.set_trial_state_values(trial_id, TrialState.FAIL)

    # -- heartbeats, reaping ------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        """One heartbeat thread for the worker's life (not one per trial)."""
        self._stop_beats = threading.Event()
        self._beats = threading.Thread(
            target=self._heartbeat, args=(self._stop_beats,), daemon=True,
            name=f"tuner-heartbeat-{self.pid}",
        )
        self._beats.start()

    def _stop_heartbeat(self) -> None:
        self._beating = None
        beats = getattr(self, "_beats", None)
        if beats is not None:
            self._stop_beats.set()
            beats.join()

    def _heartbeat(self, stop: threading.Event) -> None:
        """Every heartbeat interval, touch the running trial's heartbeat (nothing is written
        between trials). A row that is no longer ours (it was reaped) sets that trial's lost
        flag, which stops its training at the next evaluation."""
        while not stop.wait(self.settings.heartbeat_seconds):
            beating = self._beating
            if beating is None:
                continue
            row_id, lost = beating
            try:
                with self.store.engine.begin() as connection:
                    updated = connection.execute(
                        update(Trial).where(Trial.id == row_id, Trial.status == "running")
                        .values(heartbeat_at=utcnow())
                    ).rowcount
            except Exception as error:  # a database hiccup: try again at the next beat
                logging.getLogger(__name__).warning("heartbeat failed: %s", error)
                continue
            if not updated and self._beating is beating:
                lost.set()

    def _reap(self) -> int:
        """Fail the running trials whose worker has been silent longer than the grace period.

        Looks at most once per heartbeat interval: a trial only goes stale after the grace
        period, so looking more often finds nothing new."""
        now = time.monotonic()
        if now - self._last_reap < self.settings.heartbeat_seconds:
            return 0
        self._last_reap = now
        cutoff = utcnow() - timedelta(seconds=self.settings.grace_seconds)
        with self.store.session() as session:
            stale = session.execute(
                select(Trial.id, Trial.optimizer, Trial.optuna_trial_id)
                .where(Trial.study_id == self.config.id, Trial.status == "running",
                       Trial.heartbeat_at < cutoff)
            ).all()
        reaped = 0
        for row_id, optimizer, optuna_trial_id in stale:
            with self.store.engine.begin() as connection:
                updated = connection.execute(
                    update(Trial)
                    .where(Trial.id == row_id, Trial.status == "running",
                           Trial.heartbeat_at < cutoff)
                    .values(status="failed", finished_at=utcnow())
                ).rowcount
            if updated and optuna_trial_id is not None and optimizer in self.studies:
                self._fail_optuna_trial(self.studies[optimizer], optuna_trial_id, note="reaped")
                reaped += 1
        return reaped

    def _sweep_optuna(self) -> None:
        """Settle Optuna trials left RUNNING by a worker that died between two writes: one
        whose row is finished is told the row's outcome; one no live row holds is failed."""
        from optuna.trial import TrialState

        cutoff = utcnow() - timedelta(seconds=self.settings.grace_seconds)
        with self.store.session() as session:
            rows = session.execute(
                select(Trial.optuna_trial_id, Trial.status, Trial.value)
                .where(Trial.study_id == self.config.id, Trial.optuna_trial_id.is_not(None))
            ).all()
        by_id = {r.optuna_trial_id: r for r in rows}
        for study in self.studies.values():
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                row = by_id.get(trial._trial_id)
                if row is not None and row.status == "running":
                    continue
                if row is None and trial.datetime_start is not None:
                    started = trial.datetime_start.astimezone()
                    if started > cutoff:
                        continue  # just asked for; its claim may be on the way
                self._settle(study, trial._trial_id, row)

    def _settle(self, study: optuna.Study, trial_id: int, row: Any) -> None:
        import optuna
        from optuna.trial import TrialState

        storage = study._storage
        with suppress(optuna.exceptions.UpdateFinishedTrialError):
            if row is not None and row.status == "complete" and row.value is not None:
                storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [row.value])
            elif row is not None and row.status == "diverged":
                value = worst_value(self.task.direction)
                storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value])
            elif row is not None and row.status == "pruned":
                storage.set_trial_state_values(trial_id, TrialState.PRUNED)
            else:
                storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _tell(
    study: optuna.Study, trial: optuna.Trial, value: float | None = None,
    state: optuna.trial.TrialState | None = None,
) -> None:
    """``study.tell`` without the copy of the finished trial it reads back and returns
    (six queries per trial that nothing here uses); plain ``tell`` where Optuna lacks it."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:  # pragma: no cover - a future Optuna
        study.tell(trial, value, state=state)
        return
    _tell_with_warning(study=study, trial=trial, value_or_values=value, state=state)


def _outcome_after(
    status: str, final: float | None, finals: list[float], last: bool
) -> tuple[str, float | None] | None:
    """The trial's outcome and value once a run ends it (as :meth:`Worker._run_seeds`
    decides it), or None while more seeds are to run."""
    if status in ("pruned", "diverged", "failed"):
        return status, _mean(finals)
    if final is None or not math.isfinite(final):
        return "diverged", None
    if last:
        return "complete", _mean([*finals, final])
    return None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# Running a study with several local workers


@contextmanager
def _graceful_signals() -> Iterator[None]:
    """SIGINT/SIGTERM raise KeyboardInterrupt once; repeats during the clean-up are ignored,
    so a second Ctrl-C cannot cut the release of the running trial short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _set_threads(workers: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def worker_process(
    name: str, url: str | None, workers: int, timeout: float | None, grace: float | None
) -> None:
    """The body of one spawned local worker process."""
    _set_threads(workers)
    settings = WorkerSettings.from_env(grace)
    with _graceful_signals():
        try:
            Worker(name, url, settings=settings, timeout=timeout).run()
        except KeyboardInterrupt:
            pass


def run_study(
    name: str,
    url: str | None = None,
    *,
    workers: int = 1,
    timeout: float | None = None,
    grace_seconds: float | None = None,
    on_progress: Callable[[StudyStatus], None] | None = None,
) -> WorkerReport:
    """Run a study to the end with ``workers`` local workers (spawned processes when more than
    one; the calling process itself when one). ``on_progress`` gets the study's status after
    every trial (one worker) or every second (several). Ctrl-C stops every worker cleanly."""
    settings = WorkerSettings.from_env(grace_seconds)
    if workers < 1:
        raise DriverError(f"--workers must be at least 1, got {workers}")

    progress_store = open_store(url, create=False) if on_progress is not None else None

    def progress() -> None:
        if on_progress is not None and progress_store is not None:
            on_progress(study_status(progress_store, load_config(progress_store, name)))

    try:
        if workers == 1:
            with _graceful_signals():
                worker = Worker(name, url, settings=settings, timeout=timeout,
                                on_trial=progress)
                progress()
                report = worker.run()
            progress()
            return report
        return _run_processes(name, url, workers, timeout, grace_seconds, progress)
    finally:
        if progress_store is not None:
            progress_store.dispose()


def _run_processes(
    name: str, url: str | None, workers: int, timeout: float | None,
    grace_seconds: float | None, progress: Callable[[], None],
) -> WorkerReport:
    """Spawn ``workers`` local worker processes and show progress until they are done."""
    import multiprocessing

    if is_finished(name, url):  # nothing to do: say so without starting processes
        return WorkerReport(already_finished=True, stopped="finished")
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=worker_process, args=(name, url, workers, timeout, grace_seconds),
            name=f"tuner-worker-{index}",
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    report = WorkerReport()
    try:
        with _graceful_signals():
            while any(p.is_alive() for p in processes):
                progress()
                for process in processes:
                    process.join(timeout=1.0 / workers)
    except KeyboardInterrupt:
        report.stopped = "interrupted"
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(timeout=60)
    progress()
    store = open_store(url, create=False)
    try:
        status = study_status(store, load_config(store, name))
    finally:
        store.dispose()
    if not report.stopped:
        report.stopped = "finished" if status.status == "finished" else "timeout"
    report.trials = status.done
    return report
