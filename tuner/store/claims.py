"""The driver's statements on trials and runs: claims, heartbeats, reaping, closing, reuse.

A worker holds one of an optimizer's N *slots* by inserting its ``tuner_trials`` row with
``slot = s``. A partial unique index (at most one trial that is not ``failed`` per study,
optimizer and slot) makes the claim atomic on SQLite and PostgreSQL alike: two workers never
hold the same slot, and a finished slot is never run again. Every function here is one short
transaction, retried on transient errors (:mod:`tuner.store.retry`); each says why running it
twice is safe.

**Whose clock.** Every time written or compared here (claims, heartbeats, the reaper's "now",
closing) is the database's on PostgreSQL (``now()``, evaluated by the server), so workers on
hosts whose clocks disagree by hours neither reap each other's live trials nor keep dead ones.
SQLite has no server: its workers share one machine, and its clock (:func:`stamp`).

**Reopened slots.** A slot given up after failing again and again can be reopened once its cause
is fixed (``tuner study run --retry-given-up``): its failed attempts stay on record, failed, with
their runs, and the study's options remember, per reopened slot, the id of its latest attempt
then (``options["reopened"]["<optimizer>/<slot>"]``). Attempts up to that id no longer count
towards giving the slot up (:attr:`SlotRow.counted`), so the slot is claimable again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tuner.store.database import Store, StoreError
from tuner.store.models import TRIAL_ORIGINS, CurveRow, Run, Study, Trial, utcnow
from tuner.store.retry import retrying
from tuner.store.runs import record_run

if TYPE_CHECKING:
    from tuner.training.result import RunResult


@dataclass(frozen=True)
class SlotRow:
    """One attempt at a slot, as the claim logic needs it."""

    id: int
    optimizer: str
    slot: int
    status: str
    params: dict[str, Any]
    optuna_trial_id: int | None
    counted: bool = True
    """Whether it counts towards giving the slot up (False: made before the slot reopened)."""


@dataclass(frozen=True)
class ReusedRun:
    """A seed finished by an earlier attempt at the same slot, moved to the new attempt."""

    seed: int
    status: str
    final_metric: float | None
    curve: list[tuple[int, float | None]]


REOPENED = "reopened"
"""The key of the study's options that holds its reopened slots (see the module's docstring)."""


def stamp(connection: Any) -> Any:
    """The time to write or compare against in ``connection``'s transaction: the server's
    ``now()`` on PostgreSQL (an SQL expression), this machine's UTC time on SQLite."""
    return func.now() if connection.dialect.name == "postgresql" else utcnow()


def database_now(store: Store) -> datetime:
    """The database's time (see :func:`stamp`), for what is stamped outside tuner's tables:
    a claim's Optuna trial, and the age of Optuna's running trials (a read)."""
    if store.engine.dialect.name != "postgresql":
        return utcnow()

    def read() -> datetime:
        with store.engine.connect() as connection:
            return connection.scalar(select(func.now()))

    return retrying(read)


def slot_key(optimizer: str, slot: int) -> str:
    """How a slot is named in the study's options and in messages: ``adamw/0``."""
    return f"{optimizer}/{slot}"


def reopened_marks(connection: Any, study_id: int) -> dict[tuple[str, int], int]:
    """Per reopened slot, the id of its latest attempt when it was reopened: attempts up to it
    no longer count towards giving the slot up (read on ``connection``)."""
    options = connection.scalar(select(Study.options).where(Study.id == study_id)) or {}
    marks = {}
    for key, last_id in (options.get(REOPENED) or {}).items():
        optimizer, _, slot = str(key).rpartition("/")
        marks[(optimizer, int(slot))] = int(last_id)
    return marks


def counts(marks: Mapping[tuple[str, int], int], optimizer: str, slot: int,
           trial_id: int) -> bool:
    """Whether attempt ``trial_id`` at a slot counts towards giving it up (it was made after
    the slot's latest reopening, if any)."""
    return trial_id > marks.get((optimizer, slot), 0)


def slot_rows(store: Store, study_id: int) -> list[SlotRow]:
    """Every attempt at every slot of the study, oldest first (a read)."""

    def read() -> list[SlotRow]:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(Trial.id, Trial.optimizer, Trial.slot, Trial.status, Trial.params,
                       Trial.optuna_trial_id)
                .where(Trial.study_id == study_id, Trial.slot.is_not(None))
                .order_by(Trial.id)
            ).all()
            marks = reopened_marks(connection, study_id)
        return [SlotRow(r.id, r.optimizer, r.slot, r.status, dict(r.params or {}),
                        r.optuna_trial_id, counts(marks, r.optimizer, r.slot, r.id))
                for r in rows]

    return retrying(read)


def failed_runs_per_slot(store: Store, study_id: int) -> Counter[tuple[str, int]]:
    """Per (optimizer, slot), the attempts that ended because a run failed, since the slot was
    last reopened (a read)."""

    def read() -> Counter[tuple[str, int]]:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(Trial.optimizer, Trial.slot, Trial.id)
                .join(Run, Run.trial_id == Trial.id)
                .where(Trial.study_id == study_id, Trial.status == "failed",
                       Run.status == "failed")
                .distinct()
            ).all()
            marks = reopened_marks(connection, study_id)
        return Counter((o, s) for o, s, trial_id in rows if counts(marks, o, s, trial_id))

    return retrying(read)


def reopen_slots(store: Store, study_id: int, slots: Sequence[tuple[str, int]]) -> int:
    """Reopen given-up ``slots`` (optimizer, slot): their attempts so far stop counting towards
    giving them up; the attempts' rows and runs stay as they are. Returns how many were
    reopened (a slot without attempts is left alone).

    Safe to retry: a slot's mark is the id of its latest attempt, the same on a second try.
    """
    wanted = set(slots)

    def write() -> int:
        with store.engine.begin() as connection:
            latest = connection.execute(
                select(Trial.optimizer, Trial.slot, func.max(Trial.id))
                .where(Trial.study_id == study_id, Trial.slot.is_not(None))
                .group_by(Trial.optimizer, Trial.slot)
            ).all()
            marks = {slot_key(o, s): int(last_id) for o, s, last_id in latest
                     if (o, s) in wanted}
            if not marks:
                return 0
            options = dict(connection.scalar(  # locked on PostgreSQL: no reopening is lost
                select(Study.options).where(Study.id == study_id).with_for_update()) or {})
            options[REOPENED] = {**(options.get(REOPENED) or {}), **marks}
            connection.execute(update(Study).where(Study.id == study_id)
                               .values(options=options))
        return len(marks)

    return retrying(write)


def last_errors(store: Store, study_id: int) -> dict[tuple[str, int], str]:
    """Per (optimizer, slot), the error of its latest failed run (for the given-up report)."""

    def read() -> dict[tuple[str, int], str]:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(Trial.optimizer, Trial.slot, Run.error)
                .join(Run, Run.trial_id == Trial.id)
                .where(Trial.study_id == study_id, Run.status == "failed",
                       Run.error.is_not(None))
                .order_by(Run.id)
            ).all()
        return {(o, s): error for o, s, error in rows}

    return retrying(read)


def insert_claim(store: Store, values: Mapping[str, Any]) -> int | None:
    """Insert a trial row that holds a slot; its id, or None when the slot is taken.

    ``values["origin"]``, where the configuration came from, is one of :data:`TRIAL_ORIGINS`
    (advice reads a study's defaults from it); another is a StoreError, and nothing is written.

    Safe to retry: a second try of an insert that did commit finds the slot held (by this very
    row) and returns None; that row then goes stale and is reaped like any silent worker's.
    """
    origin = values.get("origin")
    if origin is not None and origin not in TRIAL_ORIGINS:
        raise StoreError(f"unknown trial origin {origin!r} (one of {', '.join(TRIAL_ORIGINS)})")
    row = {**values, "status": "running"}

    def claim() -> int | None:
        try:
            with store.engine.begin() as connection:
                result = connection.execute(insert(Trial).values(row))
                return int(result.inserted_primary_key[0])
        except IntegrityError:
            return None

    return retrying(claim)


def heartbeat(store: Store, trial_id: int) -> tuple[bool, str | None]:
    """Touch a running trial's heartbeat; returns (still ours, the study's status).

    The study's status is read in the same transaction, so a ``stopping`` study is noticed at
    the next beat. Safe to retry: setting a timestamp twice is setting it once.
    """

    def beat() -> tuple[bool, str | None]:
        with store.engine.begin() as connection:
            updated = connection.execute(
                update(Trial).where(Trial.id == trial_id, Trial.status == "running")
                .values(heartbeat_at=stamp(connection))
            ).rowcount
            status = connection.execute(
                select(Study.status).join(Trial, Trial.study_id == Study.id)
                .where(Trial.id == trial_id)
            ).scalar()
        return bool(updated), status

    return retrying(beat)


def heartbeat_many(store: Store, trial_ids: Sequence[int]) -> tuple[set[int], str | None]:
    """:func:`heartbeat` for the trials of one batch (one study) in one transaction; returns
    the ids still ours and the study's status. Safe to retry, as :func:`heartbeat`."""
    ids = list(trial_ids)

    def beat() -> tuple[set[int], str | None]:
        with store.engine.begin() as connection:
            ours = set(connection.scalars(
                select(Trial.id).where(Trial.id.in_(ids), Trial.status == "running")
            ))
            if ours:
                connection.execute(
                    update(Trial).where(Trial.id.in_(sorted(ours)), Trial.status == "running")
                    .values(heartbeat_at=stamp(connection))
                )
            status = connection.execute(
                select(Study.status).join(Trial, Trial.study_id == Study.id)
                .where(Trial.id == ids[0])
            ).scalar()
        return ours, status

    return retrying(beat)


def reap_stale(store: Store, study_id: int, grace: timedelta) -> list[tuple[str, int | None]]:
    """Fail the running trials whose heartbeat is older than ``grace`` (by the database's
    clock: :func:`stamp`).

    Returns (optimizer, Optuna trial id) of each trial this call reaped. Each row is failed by
    an UPDATE guarded by its status and heartbeat, so two reapers never both reap one trial,
    and a retry reaps nothing twice.
    """

    def find() -> list[Any]:
        with store.engine.connect() as connection:
            return connection.execute(
                select(Trial.id, Trial.optimizer, Trial.optuna_trial_id)
                .where(Trial.study_id == study_id, Trial.status == "running",
                       Trial.heartbeat_at < stamp(connection) - grace)
            ).all()

    reaped = []
    for row_id, optimizer, optuna_trial_id in retrying(find):

        def reap(row_id: int = row_id) -> int:
            with store.engine.begin() as connection:
                return connection.execute(
                    update(Trial)
                    .where(Trial.id == row_id, Trial.status == "running",
                           Trial.heartbeat_at < stamp(connection) - grace)
                    .values(status="failed", finished_at=stamp(connection))
                ).rowcount

        if retrying(reap):
            reaped.append((optimizer, optuna_trial_id))
    return reaped


def _close(connection: Any, trial_id: int, outcome: str, value: float | None) -> bool:
    from tuner.store.values import finite_or_none

    stored = value if outcome in ("complete", "pruned") else None
    return bool(connection.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.status == "running")
        .values(status=outcome, value=finite_or_none(stored), finished_at=stamp(connection))
    ).rowcount)


def close_trial(store: Store, trial_id: int, outcome: str, value: float | None) -> bool:
    """Set a running trial's outcome; False when it is no longer running (it was reaped).

    Safe to retry: the UPDATE is guarded by ``status = 'running'``.
    """

    def close() -> bool:
        with store.engine.begin() as connection:
            return _close(connection, trial_id, outcome, value)

    return retrying(close)


def release(store: Store, trial_id: int) -> None:
    """Give a slot back after an interruption: its trial is failed, the slot is free."""

    def give_back() -> None:
        with store.engine.begin() as connection:
            connection.execute(
                update(Trial).where(Trial.id == trial_id, Trial.status == "running")
                .values(status="failed", finished_at=stamp(connection))
            )

    retrying(give_back)


def record_and_close(
    store: Store,
    trial_id: int,
    result: RunResult,
    *,
    plugin_version: str | None,
    space_hash: str | None,
    closing: tuple[str, float | None] | None,
    protocol: Mapping[str, Any] | None = None,
) -> bool | None:
    """Store one run of a trial this attempt still holds; when it ends the trial (``closing``
    is its outcome and value), close the trial row in the same transaction. Returns True when
    the row was closed, None when the run was stored and the trial goes on, False when the
    claim is lost (the trial was reaped: nothing was stored). ``protocol``: what the run was
    trained under (:func:`tuner.store.runs.run_row`).

    **Fencing.** The transaction opens with ``UPDATE ... WHERE id = :row AND status =
    'running'`` (a heartbeat: recording is a sign of life). It takes the row's lock, so a
    reaper waits for this transaction and then finds the row fresh or closed; and when it
    touches nothing, the row is someone else's and no run is inserted. A late result never
    lands on a reaped trial, where the statistics would count it.

    Safe to retry: a try that finds this trial's run of this seed already stored (an earlier
    try committed before its connection dropped) stores nothing more, and one that finds the
    row closed by that earlier try reports it closed.
    """

    def write() -> bool | None:
        with store.engine.begin() as connection:
            held = _touch(connection, trial_id)
            stored = connection.execute(
                select(Run.id).where(Run.trial_id == trial_id, Run.seed == result.seed)
            ).first()
            if not held:
                return _committed_before(stored is not None, closing)
            if stored is None:
                record_run(connection, trial_id, result, plugin_version=plugin_version,
                           space_hash=space_hash, protocol=protocol)
            if closing is None:
                return None
            return _close(connection, trial_id, *closing)

    return retrying(write)


def _touch(connection: Any, trial_id: int) -> bool:
    """Beat a running trial's heartbeat inside the caller's transaction (locking its row);
    whether it is still running, i.e. still held by the attempt that claimed it."""
    return bool(connection.execute(
        update(Trial).where(Trial.id == trial_id, Trial.status == "running")
        .values(heartbeat_at=stamp(connection))
    ).rowcount)


def _committed_before(stored: bool, closing: tuple[str, float | None] | None) -> bool | None:
    """What :func:`record_and_close` returns for a row that is no longer running. A run of
    this seed stored on it can only be an earlier try of the same call that committed before
    its connection dropped (runs are inserted only while the row is held, together with its
    closing): that try's answer. Else the claim is lost: False."""
    if not stored:
        return False
    return None if closing is None else True


def reuse_runs(
    store: Store, trial_id: int, earlier: Sequence[int], params_key: str, seeds: Sequence[int],
    options: Mapping[str, Any] | None = None,
) -> dict[int, ReusedRun]:
    """Move the finished seeds of earlier attempts at a slot (same configuration) to the new
    attempt ``trial_id``: a killed worker loses nothing it had committed, and nothing is counted
    twice (a run belongs to one trial). Returns them by seed.

    The same configuration is the same hyperparameters (``params_key``, their
    ``params_hash``) and, for a study that tunes training options, the same values of those
    (``options``, compared with each run's recorded options).

    Safe to retry: moving a run to the trial it already belongs to changes nothing.
    """
    if not earlier:
        return {}

    def move() -> dict[int, ReusedRun]:
        with store.engine.begin() as connection:
            found = connection.execute(
                select(Run.id, Run.seed, Run.status, Run.final_metric, Run.options)
                .where(Run.trial_id.in_([*earlier, trial_id]), Run.params_hash == params_key,
                       Run.status.in_(("complete", "diverged")))
                .order_by(Run.id)
            ).all()
            chosen: dict[int, tuple[int, str, float | None]] = {}
            for run_id, seed, status, final, recorded in found:
                same = all((recorded or {}).get(k) == v for k, v in (options or {}).items())
                if same and seed in seeds and seed not in chosen:
                    chosen[seed] = (run_id, status, final)
            if not chosen:
                return {}
            ids = [run_id for run_id, _, _ in chosen.values()]
            connection.execute(update(Run).where(Run.id.in_(ids)).values(trial_id=trial_id))
            points = connection.execute(
                select(CurveRow.run_id, CurveRow.step, CurveRow.metric)
                .where(CurveRow.run_id.in_(ids)).order_by(CurveRow.run_id, CurveRow.step)
            ).all()
        curves: dict[int, list[tuple[int, float | None]]] = {}
        for run_id, step, metric in points:
            curves.setdefault(run_id, []).append((step, metric))
        return {
            seed: ReusedRun(seed, status, final, curves.get(run_id, []))
            for seed, (run_id, status, final) in chosen.items()
        }

    return retrying(move)


def optuna_outcomes(store: Store, study_id: int) -> dict[int, tuple[str, float | None]]:
    """{Optuna trial id: (row status, value)} of the study's trials (for the Optuna sweep)."""

    def read() -> dict[int, tuple[str, float | None]]:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(Trial.optuna_trial_id, Trial.status, Trial.value)
                .where(Trial.study_id == study_id, Trial.optuna_trial_id.is_not(None))
            ).all()
        return {r.optuna_trial_id: (r.status, r.value) for r in rows}

    return retrying(read)
