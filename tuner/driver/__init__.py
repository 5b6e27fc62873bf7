"""The Optuna driver: create studies and run their trials in workers that share one database.

One tuner study is one task x a list of optimizers x N trials per optimizer x K seeds. Each
optimizer gets its own Optuna study (``tuner/<study>/<optimizer>``), so the sampler never
starves one optimizer to feed another, and every optimizer gets exactly N trials. The parts:

* :mod:`~tuner.driver.resolve`: a study's settings checked against the installed plugins;
* :mod:`~tuner.driver.create`: create and delete studies, all or nothing;
* :mod:`~tuner.driver.claiming`: a worker claims a slot and the configuration it trains;
* :mod:`~tuner.driver.liveness`: heartbeats, reaping silent workers' trials, stop requests;
* :mod:`~tuner.driver.trial`: one trial's seeds, pruning and records;
* :mod:`~tuner.driver.policy`: the rules (next slot, slot configuration, outcomes), pure;
* :mod:`~tuner.driver.worker`: the loop over those parts;
* :mod:`~tuner.driver.processes`: local worker processes, progress, Ctrl-C;
* :mod:`~tuner.driver.optuna_adapter`: the one module that touches Optuna's internals.

Every SQL statement is in :mod:`tuner.store` (:mod:`~tuner.store.claims`,
:mod:`~tuner.store.studies`).
"""

from __future__ import annotations

from tuner.driver.create import create, create_study, delete_study
from tuner.driver.optuna_adapter import study_name as optuna_study_name
from tuner.driver.processes import WorkerProcessError, graceful_signals, run_study
from tuner.driver.settings import GRACE_ENV, HEARTBEAT_ENV, DriverError, WorkerSettings
from tuner.driver.worker import Worker, WorkerReport

__all__ = [
    "GRACE_ENV",
    "HEARTBEAT_ENV",
    "DriverError",
    "Worker",
    "WorkerProcessError",
    "WorkerReport",
    "WorkerSettings",
    "create",
    "create_study",
    "delete_study",
    "graceful_signals",
    "optuna_study_name",
    "run_study",
]
