"""Studies in the store: write one, read it back, its progress, export, stop and delete it.

A study's definition is one type, :class:`tuner.study.spec.StudySpec`, before and after it is
written (``id`` and ``status`` are set once it is). Progress is read from the trial rows alone:
no Optuna call, no plugin, no torch, so ``tuner study show`` works on a store copied anywhere.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tuner.errors import ConflictError, TunerError, UnknownNameError
from tuner.store.database import Store, StudyExistsError
from tuner.store.models import Run, Study, Trial, utcnow
from tuner.store.retry import retrying
from tuner.study.spec import StudySpec
from tuner.version import __version__

if TYPE_CHECKING:
    from tuner.store.tasks import TaskRecord

FINISHED = ("complete", "pruned", "diverged")
"""Trial statuses that fill a slot for good."""

MAX_FAILED_ATTEMPTS = 3
"""A slot whose trials failed (an exception in training) this many times is given up."""

MAX_ATTEMPTS = 10
"""A slot tried this many times in all (reaped, interrupted, failed) is given up."""

STOPPING = "stopping"
"""The status that asks every worker of a study to finish its trial and exit."""

IDLE = "idle"
"""An unfinished study that no worker is attached to (nobody asked it to stop)."""

NOTE_MAX_CHARS = 10_000
"""The longest note a study keeps (:func:`set_study_note`): a page of text, not a log."""

KEPT_EXTENSIONS = 16
"""How many tokens of its latest extensions a study keeps (:func:`extend_study`)."""


def _spec(row: Any) -> StudySpec:
    options = dict(row.options or {})
    return StudySpec(
        name=row.name, task=row.task, optimizers=list(row.optimizers),
        trials=int(row.trials_per_optimizer), seeds=len(row.seeds), sampler=row.sampler,
        pruner=row.pruner, budget=options.get("budget"), schedule=options.get("schedule"),
        seed=int(options.get("seed") or 0), ranges=dict(row.search_spaces or {}),
        description=options.get("description") or "",
        initial_configs=dict(options.get("initial_configs") or {}),
        space_hashes=dict(options.get("space_hashes") or {}),
        fixed=list(options.get("fixed") or []),
        task_ref=options.get("task_ref"), task_hash=options.get("task_hash"),
        task_params=dict(options.get("task_params") or {}),
        training=dict(options.get("training") or {}),
        budget_unit=options.get("budget_unit") or "examples", batch=options.get("batch"),
        threads=options.get("threads"),
        first_seed=int(row.seeds[0]) if row.seeds else 0,
        extra_trials={o: int(n) for o, n in (options.get("extra_trials") or {}).items()},
        seed_slots={o: list(slots) for o, slots in (options.get("seed_slots") or {}).items()},
        id=row.id, status=row.status,
    )


def write_study(store: Store, spec: StudySpec, task: TaskRecord) -> StudySpec:
    """Write the study and its task record in one transaction: the study exists whole or not
    at all. Returns the study as stored.

    Raises StoreError when the name is taken (the unique index decides, under any race).
    """
    from tuner.store.tasks import record_task
    from tuner.store.values import plain_json

    values = {
        "name": spec.name, "task": spec.task, "optimizers": list(spec.optimizers),
        "trials_per_optimizer": int(spec.trials), "seeds": spec.seed_list,
        "sampler": spec.sampler, "pruner": spec.pruner,
        "options": plain_json(spec.options()), "search_spaces": plain_json(spec.ranges),
        "status": "created", "tuner_version": __version__, "created_at": utcnow(),
    }

    def write() -> None:
        with store.engine.begin() as connection:
            record_task(connection, task)
            connection.execute(insert(Study).values(values))

    try:
        retrying(write)
    except IntegrityError:
        raise StudyExistsError(f"a study named {spec.name!r} already exists") from None
    return get_study(store, spec.name)


def extend_study(
    store: Store,
    name: str,
    trials: Mapping[str, int],
    seed_slots: Mapping[str, Sequence[Mapping[str, Any]]],
) -> StudySpec:
    """Add ``trials[o]`` trials to optimizer ``o`` and append ``seed_slots[o]`` to its seed
    slots, in one transaction; returns the study as stored.

    The study's row is locked first (an UPDATE that changes nothing: PostgreSQL locks the row,
    SQLite the database), so two extensions in a race both land. Safe to retry: the write
    records a token of its own (the study keeps the last :data:`KEPT_EXTENSIONS`); a try that
    finds it stored (an earlier try committed before its connection dropped) adds nothing more.
    """
    from tuner.store.values import plain_json

    token = uuid.uuid4().hex

    def write() -> None:
        with store.engine.begin() as connection:
            connection.execute(
                update(Study).where(Study.name == name).values(status=Study.status)
            )
            row = connection.execute(select(Study).where(Study.name == name)).first()
            if row is None:
                raise UnknownNameError(f"no study named {name!r}")
            options = dict(row.options or {})
            done = list(options.get("extensions") or [])
            if token in done:
                return
            extra = {o: int(n) for o, n in (options.get("extra_trials") or {}).items()}
            for optimizer, count in trials.items():
                extra[optimizer] = extra.get(optimizer, 0) + int(count)
            slots = {o: list(v) for o, v in (options.get("seed_slots") or {}).items()}
            for optimizer, added in seed_slots.items():
                slots.setdefault(optimizer, []).extend(dict(slot) for slot in added)
            options.update(extra_trials=extra, seed_slots=slots,
                           extensions=[*done[-(KEPT_EXTENSIONS - 1):], token])
            connection.execute(
                update(Study).where(Study.id == row.id).values(options=plain_json(options))
            )

    retrying(write)
    return get_study(store, name)


def configuration_in_study(
    store: Store, spec: StudySpec, optimizer: str, config_hash: str
) -> tuple[dict[str, Any] | None, set[int]]:
    """What seed slots need of one configuration (``config_hash``) of ``optimizer``: the
    parameters the study's trials trained it with (tuned training options included; None when
    no trial of the study trained it), and every seed the store has a run of it on, in any
    study (a read)."""

    def read() -> tuple[dict[str, Any] | None, set[int]]:
        with store.engine.connect() as connection:
            params = connection.execute(
                select(Trial.params).join(Run, Run.trial_id == Trial.id)
                .where(Run.study_id == spec.id, Run.optimizer == optimizer,
                       Run.config_hash == config_hash)
                .order_by(Run.id).limit(1)
            ).scalar()
            seeds = connection.scalars(
                select(Run.seed).distinct()
                .where(Run.task == spec.task, Run.optimizer == optimizer,
                       Run.config_hash == config_hash)
            ).all()
        return (dict(params) if params is not None else None), {int(s) for s in seeds}

    return retrying(read)


def study_exists(store: Store, name: str) -> bool:
    """Whether a study of that name is in the store (a read)."""

    def read() -> bool:
        with store.engine.connect() as connection:
            return connection.scalar(select(Study.id).where(Study.name == name)) is not None

    return retrying(read)


def get_study(store: Store, name: str) -> StudySpec:
    """The study called ``name``; UnknownNameError listing the studies when there is none."""

    def read() -> StudySpec:
        with store.engine.connect() as connection:
            row = connection.execute(select(Study).where(Study.name == name)).first()
            if row is None:
                known = connection.scalars(select(Study.name).order_by(Study.name)).all()
                listing = ", ".join(known) if known else "none yet"
                raise UnknownNameError(f"no study named {name!r} (studies: {listing})")
        return _spec(row)

    return retrying(read)


def set_status(store: Store, study_id: int, status: str, *, unless: str | None = None) -> None:
    """Set a study's stored status (created, running, stopping, stopped, finished, incomplete;
    :func:`study_status` reads back only whether a stop was asked for and whether a worker
    ever started).

    With ``unless``, a study whose status is ``unless`` keeps it (a worker starting up must not
    undo a stop asked for meanwhile)."""

    def write() -> None:
        statement = update(Study).where(Study.id == study_id)
        if unless is not None:
            statement = statement.where(Study.status != unless)
        with store.engine.begin() as connection:
            connection.execute(statement.values(status=status))

    retrying(write)


def stop_study(store: Store, name: str) -> StudySpec:
    """Ask the study's workers to finish the trial in hand and exit (read at each heartbeat).

    ``tuner study run NAME`` resumes it later. Returns the study as it was. A study that is
    not running (no worker attached, or every slot settled) has nothing to stop: ConflictError,
    and its stored status stays as it was."""
    status = study_status(store, name)
    if status.status not in ("running", STOPPING):
        raise ConflictError(
            f"study {name!r} is {status.status}, not running: it has no worker to stop"
        )
    set_status(store, status.spec.id, STOPPING)
    return status.spec


def study_note(store: Store, name: str) -> str:
    """The note kept beside study ``name`` ("" when it has none); UnknownNameError when there
    is no such study."""

    def read() -> str | None:
        with store.engine.connect() as connection:
            found = connection.execute(select(Study.id, Study.note).where(Study.name == name))
            row = found.first()
        if row is None:
            raise UnknownNameError(f"no study named {name!r}")
        return row.note

    return retrying(read) or ""


def set_study_note(store: Store, name: str, note: str) -> str:
    """Keep ``note`` beside study ``name`` (an empty one removes it); returns it as kept.

    At most :data:`NOTE_MAX_CHARS` characters and no NUL (TunerError: the store is left as it
    was); UnknownNameError when there is no such study. Nothing but the study's pages reads it.
    """
    if len(note) > NOTE_MAX_CHARS:
        raise TunerError(
            f"a note holds at most {NOTE_MAX_CHARS:,} characters, this one has {len(note):,}")
    if "\x00" in note:
        raise TunerError("a note must not contain a NUL character")

    def write() -> int:
        with store.engine.begin() as connection:
            return int(connection.execute(
                update(Study).where(Study.name == name).values(note=note or None)
            ).rowcount)

    if retrying(write) == 0:
        raise UnknownNameError(f"no study named {name!r}")
    return note


def reopen_given_up(store: Store, spec_or_name: StudySpec | str) -> list[str]:
    """Make the study's given-up slots claimable again, once their cause is fixed: their failed
    attempts (rows and runs) stay on record as they are, and stop counting towards giving the
    slots up (:func:`tuner.store.claims.reopen_slots`). Returns the slots reopened
    (``adamw/0``, ...)."""
    from tuner.store.claims import reopen_slots, slot_key

    status = study_status(store, spec_or_name)
    slots = [(o.optimizer, slot) for o in status.optimizers for slot in o.given_up]
    if not slots:
        return []
    reopen_slots(store, status.spec.id, slots)
    set_status(store, status.spec.id, "stopped", unless=STOPPING)
    return [slot_key(optimizer, slot) for optimizer, slot in slots]


@dataclass
class OptimizerStatus:
    """One optimizer's progress in a study and its best trial so far.

    ``done``/``total`` count its trial slots (``total`` is :meth:`StudySpec.trials_for`), and
    ``complete``, ``pruned``, ``diverged``, ``failed_attempts`` and the best trial are over
    them; ``seed_slots_done``/``seed_slots_total`` count its seed slots. ``running`` and
    ``given_up`` (slot numbers, a seed slot's negative) are over both kinds."""

    optimizer: str
    done: int
    total: int
    running: int
    complete: int
    pruned: int
    diverged: int
    failed_attempts: int
    given_up: list[int]
    best_value: float | None
    best_params: dict[str, Any] | None
    best_trial: int | None
    best_seeds: int | None = None
    seed_slots_done: int = 0
    seed_slots_total: int = 0

    @property
    def settled(self) -> bool:
        """Whether every slot is finished or given up."""
        return (self.done + self.seed_slots_done + len(self.given_up)
                >= self.total + self.seed_slots_total)

    def describe(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StudyStatus:
    """A study's progress, what ``tuner study show`` prints.

    ``status``: created (no worker ever started on it), running (a worker is at work: attached
    to the study, between trials as well as in one), idle (unfinished, and no worker is
    attached: they ran out of time, died or were never restarted), stopping (a stop was asked
    for; a worker is still finishing its trial), stopped (a stop was asked for and the workers
    left), finished (every slot done) or incomplete (every slot settled, but some were given
    up after failing again and again; ``errors`` holds the last error of each).
    ``workers`` counts the workers attached (:mod:`tuner.store.workers`). ``done``/``total``
    count trial slots, ``seed_slots_done``/``seed_slots_total`` the seed slots
    ``tuner study extend`` added.
    """

    spec: StudySpec
    metric: str
    direction: str
    status: str
    optimizers: list[OptimizerStatus] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    untried_choices: dict[str, list[Any]] = field(default_factory=dict)
    """Per tuned training option with choices, the choices no finished trial has trained yet
    (empty for a study with no finished trial)."""
    task_problem: str | None = None
    """Set when every run so far diverged at its first evaluation: the task itself is broken
    (the rule is :mod:`tuner.store.broken_task`'s), in one line."""
    workers: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def done(self) -> int:
        return sum(o.done for o in self.optimizers)

    @property
    def total(self) -> int:
        return sum(o.total for o in self.optimizers)

    @property
    def seed_slots_done(self) -> int:
        return sum(o.seed_slots_done for o in self.optimizers)

    @property
    def seed_slots_total(self) -> int:
        return sum(o.seed_slots_total for o in self.optimizers)

    @property
    def given_up(self) -> int:
        return sum(len(o.given_up) for o in self.optimizers)

    def grouped_errors(self) -> list[tuple[list[str], str]]:
        """The given-up slots grouped by their last error, as (slots, error) in the order the
        errors first appear: a task that always fails fails every slot alike."""
        groups: dict[str, list[str]] = {}
        for slot, error in self.errors.items():
            groups.setdefault(error, []).append(slot)
        return [(slots, error) for error, slots in groups.items()]

    def progress_text(self) -> str:
        """``10/10 trials`` (and ``, 2/2 seed slots`` when the study has any)."""
        text = f"{self.done}/{self.total} trials"
        if self.seed_slots_total:
            text += f", {self.seed_slots_done}/{self.seed_slots_total} seed slots"
        return text

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return {
            "name": s.name, "task": s.task, "metric": self.metric, "direction": self.direction,
            "status": self.status, "optimizers": s.optimizers, "trials_per_optimizer": s.trials,
            "trials": {o: s.trials_for(o) for o in s.optimizers},
            "extra_trials": s.extra_trials, "seeds": s.seeds, "first_seed": s.first_seed,
            "seed_list": s.seed_list, "seed_slots": s.seed_slots,
            "sampler": s.sampler, "pruner": s.pruner, "budget": s.budget,
            "schedule": s.schedule, "ranges": s.ranges, "description": s.description,
            "training": s.training, "task_params": s.task_params,
            "trials_done": self.done, "trials_total": self.total,
            "seed_slots_done": self.seed_slots_done, "seed_slots_total": self.seed_slots_total,
            "slots_given_up": self.given_up, "errors": self.errors,
            "untried_choices": self.untried_choices, "task_problem": self.task_problem,
            "workers": self.workers,
            "per_optimizer": [o.describe() for o in self.optimizers],
        }


def slot_given_up(attempts: int, failed_runs: int) -> bool:
    """Whether a slot without a finished trial is abandoned: too many attempts in all, or too
    many whose training failed."""
    return attempts >= MAX_ATTEMPTS or failed_runs >= MAX_FAILED_ATTEMPTS


def study_status(store: Store, spec_or_name: StudySpec | str) -> StudyStatus:
    """Progress and best result per optimizer, from the trial rows alone."""
    from tuner.store.claims import counts, failed_runs_per_slot, last_errors, reopened_marks
    from tuner.store.tasks import get_task
    from tuner.store.workers import attached_workers

    spec = get_study(store, spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
    task = get_task(store, spec.task)

    def read() -> tuple[list[Any], dict[int, int], dict[tuple[str, int], int], int]:
        with store.engine.connect() as connection:
            workers = attached_workers(connection, spec.id)
            rows = connection.execute(
                select(Trial.optimizer, Trial.slot, Trial.status, Trial.value, Trial.params,
                       Trial.optuna_trial_number, Trial.id)
                .where(Trial.study_id == spec.id, Trial.slot.is_not(None))
            ).all()
            seeds = dict(connection.execute(
                select(Run.trial_id, func.count()).where(Run.study_id == spec.id)
                .group_by(Run.trial_id)
            ).all())
            marks = reopened_marks(connection, spec.id)
        return rows, seeds, marks, workers

    rows, seeds_per_trial, marks, workers = retrying(read)
    failures = failed_runs_per_slot(store, spec.id) if any(
        r.status == "failed" for r in rows) else Counter()
    finished = {(r.optimizer, r.slot) for r in rows if r.status in FINISHED}
    attempts = Counter((r.optimizer, r.slot) for r in rows
                       if r.status == "failed" and counts(marks, r.optimizer, r.slot, r.id))
    sign = 1.0 if task.direction == "minimize" else -1.0
    per: list[OptimizerStatus] = []
    for optimizer in spec.optimizers:
        mine = [r for r in rows if r.optimizer == optimizer and r.slot >= 0]
        seeding = [r for r in rows if r.optimizer == optimizer and r.slot < 0]
        counts = Counter(r.status for r in mine)
        scored = [r for r in mine if r.status == "complete" and r.value is not None]
        best = min(scored, key=lambda r: sign * r.value, default=None)
        given_up = [
            slot for slot in spec.slots(optimizer)
            if (optimizer, slot) not in finished
            and slot_given_up(attempts[(optimizer, slot)], failures[(optimizer, slot)])
        ]
        per.append(OptimizerStatus(
            optimizer=optimizer, done=sum(counts[s] for s in FINISHED),
            total=spec.trials_for(optimizer),
            running=counts["running"] + sum(r.status == "running" for r in seeding),
            complete=counts["complete"], pruned=counts["pruned"],
            diverged=counts["diverged"], failed_attempts=counts["failed"], given_up=given_up,
            best_value=best.value if best else None, best_params=best.params if best else None,
            best_trial=best.optuna_trial_number if best else None,
            best_seeds=seeds_per_trial.get(best.id) if best else None,
            seed_slots_done=sum(r.status in FINISHED for r in seeding),
            seed_slots_total=len(spec.seed_slots.get(optimizer, ())),
        ))
    errors: dict[str, str] = {}
    if any(o.given_up for o in per):
        found = last_errors(store, spec.id)
        for o in per:
            for slot in o.given_up:
                errors[f"{o.optimizer}/{slot}"] = found.get((o.optimizer, slot)) or (
                    f"abandoned after {attempts[(o.optimizer, slot)]} attempts "
                    "(workers stopped or died while running it)"
                )
    status = status_word(
        spec.status, settled=all(o.settled for o in per),
        given_up=any(o.given_up for o in per),
        at_work=workers > 0 or any(o.running for o in per),
        started=bool(rows) or spec.status != "created",
    )
    return StudyStatus(spec, task.metric, task.direction, status, per, errors,
                       _untried_choices(spec, rows), _task_problem(store, spec, task.metric, rows),
                       workers)


def status_word(stored: str, *, settled: bool, given_up: bool, at_work: bool,
                started: bool) -> str:
    """A study's status from what the store knows: ``stored`` (the study row's status, read
    for a stop asked for), whether every slot is settled and some were given up, whether a
    worker is at work (attached, or a trial running) and whether a worker ever started on it.
    See :class:`StudyStatus` for the words."""
    if settled:
        return "incomplete" if given_up else "finished"
    if stored == STOPPING:
        return STOPPING if at_work else "stopped"
    if at_work:
        return "running"
    return IDLE if started else "created"


def _untried_choices(spec: StudySpec, rows: list[Any]) -> dict[str, list[Any]]:
    """Per tuned training option with choices, those that no finished trial trained."""
    finished = [dict(r.params or {}) for r in rows if r.status in FINISHED]
    if not finished:
        return {}
    untried = {}
    for name, value in spec.training.items():
        if isinstance(value, dict) and "choices" in value:
            tried = [params.get(name) for params in finished]
            left = [choice for choice in value["choices"] if choice not in tried]
            if left:
                untried[name] = left
    return untried


def _task_problem(store: Store, spec: StudySpec, metric: str, rows: list[Any]) -> str | None:
    """The broken-task line of a study whose trials so far all diverged (None otherwise; the
    runs are read only then)."""
    from tuner.store.broken_task import broken_task

    statuses = {r.status for r in rows}
    if "diverged" not in statuses or statuses & {"complete", "pruned"}:
        return None
    found = broken_task(store, spec.task, metric, study_id=spec.id)
    return found.message() if found is not None else None


def list_studies(store: Store) -> list[StudyStatus]:
    """Every study in the store with its progress, oldest first."""

    def read() -> list[Any]:
        with store.engine.connect() as connection:
            return connection.execute(select(Study).order_by(Study.created_at, Study.id)).all()

    return [study_status(store, _spec(row)) for row in retrying(read)]


def export_rows(store: Store, name: str) -> list[dict[str, Any]]:
    """One dict per run of the study: what the run measured and how it was trained, with the
    run's parameters flattened to ``param_<name>``, the training options the study fixed (its
    protocol: schedule, precision, threads, ...) to ``option_<name>`` and the task's own
    parameters to ``task_<name>``: a run read from the export alone can be trained again."""
    spec = get_study(store, name)

    def read() -> list[Any]:
        with store.session() as session:  # a session: rows hold Run objects (row.Run)
            return session.execute(
                select(Run, Trial.slot, Trial.optuna_trial_number, Trial.status, Trial.value)
                .join(Trial, Run.trial_id == Trial.id)
                .where(Run.study_id == spec.id)
                .order_by(Trial.optimizer, Trial.slot, Trial.id, Run.seed)
            ).all()

    rows = retrying(read)
    names = sorted({key for row in rows for key in (row.Run.params or {})})
    options = sorted({key for row in rows for key in (row.Run.options or {})})
    task_params = sorted({key for row in rows for key in (row.Run.task_params or {})})
    out = []
    for run, slot, number, trial_status, trial_value in rows:
        record = {
            "study": spec.name, "task": run.task, "optimizer": run.optimizer, "slot": slot,
            "trial": number, "trial_status": trial_status, "trial_value": trial_value,
            "seed": run.seed, "status": run.status, "final_metric": run.final_metric,
            "best_metric": run.best_metric, "steps": run.steps,
            "steps_to_target": run.steps_to_target, "seconds_to_target": run.seconds_to_target,
            "wall_seconds": run.wall_seconds, "peak_memory_bytes": run.peak_memory_bytes,
            "optimizer_state_bytes": run.optimizer_state_bytes, "device": run.device,
            "plugin_version": run.plugin_version, "space_hash": run.space_hash,
            "torch_version": run.torch_version, "dtype": run.dtype,
            "param_count": run.param_count, "examples_seen": run.examples_seen,
            "function_evals": run.function_evals, "gradient_evals": run.gradient_evals,
            "protocol": run.protocol, "lr_meaning": run.lr_meaning, "error": run.error,
        }
        record.update({f"param_{key}": (run.params or {}).get(key) for key in names})
        record.update({f"option_{key}": (run.options or {}).get(key) for key in options})
        record.update({f"task_{key}": (run.task_params or {}).get(key) for key in task_params})
        out.append(record)
    return out


def delete_study_rows(store: Store, name: str) -> tuple[StudySpec, int]:
    """Delete a study's rows (runs, trials, curves, the study) in one transaction.

    Returns the study and the number of runs deleted. Its Optuna studies are the caller's to
    delete afterwards (:mod:`tuner.driver.optuna_adapter`); left behind, they are orphans that
    the next ``study create`` of the name removes.
    """
    spec = get_study(store, name)

    def remove() -> int:
        with store.engine.begin() as connection:
            runs = connection.scalar(
                select(func.count()).select_from(Run).where(Run.study_id == spec.id)
            )
            connection.execute(delete(Run).where(Run.study_id == spec.id))
            connection.execute(delete(Trial).where(Trial.study_id == spec.id))
            connection.execute(delete(Study).where(Study.id == spec.id))
        return int(runs or 0)

    return spec, retrying(remove)
