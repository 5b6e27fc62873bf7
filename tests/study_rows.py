"""Studies and trial rows written the way the driver writes them, for tests that store runs in
a trial: a study as ``tuner study create`` writes it (:func:`tuner.store.studies.write_study`,
with its task record), a slot claimed as a worker claims it
(:func:`tuner.store.claims.insert_claim`). No training, no Optuna: the runs are the test's own,
recorded with :func:`tuner.store.record_run`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from tuner.store import Store, TaskRecord
from tuner.store.claims import insert_claim
from tuner.store.models import utcnow
from tuner.store.studies import write_study
from tuner.study.spec import StudySpec


def write(store: Store, task: TaskRecord, name: str, optimizers: Sequence[str], *,
          trials: int = 1, seeds: int = 1, **settings: Any) -> StudySpec:
    """Write study ``name`` of ``task`` (``settings`` are further :class:`StudySpec` fields);
    the study as stored."""
    spec = StudySpec(name=name, task=task.name, optimizers=list(optimizers), trials=trials,
                     seeds=seeds, **settings)
    return write_study(store, spec, task)


def claim(store: Store, spec: StudySpec, optimizer: str, params: Mapping[str, Any], *,
          slot: int = 0, origin: str = "sampled", **row: Any) -> int:
    """Claim ``slot`` of ``optimizer`` with ``params`` (``row``: further trial columns, such as
    ``worker_host``); the running trial's id."""
    now = utcnow()
    trial_id = insert_claim(store, {
        "study_id": spec.id, "optimizer": optimizer,
        "optuna_study_name": f"tuner/{spec.name}/{optimizer}", "optuna_trial_number": slot,
        "params": dict(params), "started_at": now, "heartbeat_at": now, "slot": slot,
        "origin": origin, **row,
    })
    assert trial_id is not None, f"slot {slot} of {optimizer} is held already"
    return trial_id


def trial_of_its_own(store: Store, task: TaskRecord, optimizer: str,
                     params: Mapping[str, Any], origin: str, seeds: int = 1) -> int:
    """The trial of a new study of ``optimizer`` alone on ``task``: its slot 0, claimed with
    ``params`` as a configuration that came from ``origin`` (``recommended``: the optimizer's
    default)."""
    spec = write(store, task, f"s{uuid.uuid4().hex[:12]}", [optimizer], seeds=seeds)
    return claim(store, spec, optimizer, params, origin=origin)
