"""What a worker loads once per study: the study, its task, plugins, spaces and Optuna studies."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from tuner.driver import optuna_adapter
from tuner.driver.settings import DriverError, WorkerSettings
from tuner.driver.study_task import load_study_task
from tuner.store import Store
from tuner.store.studies import get_study
from tuner.study.spec import StudySpec, apply_ranges


def study_space(spec: StudySpec, optimizer: str) -> Any:
    """The search space a study samples for ``optimizer``: its plugin's, with the study's
    ranges put in place, and the study's tuned training options as further dimensions
    (:mod:`tuner.study.training`)."""
    from tuner.study.training import space_params, tuned

    space = optimizer_space(spec, optimizer)
    if not tuned(spec.training):
        return space
    return space + space_params(spec.training, _task_batch_size(spec))


def optimizer_space(spec: StudySpec, optimizer: str) -> Any:
    """The optimizer's own search space in a study (its plugin's, with the study's ranges)."""
    from tuner.plugin.registry import get_registry

    plugin = get_registry().optimizer(optimizer)
    return apply_ranges(plugin.space, spec.ranges.get(optimizer, {}), optimizer)


def _task_batch_size(spec: StudySpec) -> int | None:
    return load_study_task(spec, allowed_changed=True).batch_size


def recommended_configs(spec: StudySpec) -> dict[str, list[dict[str, Any]]]:
    """The initial configurations of a study written before they were stored with it: each
    optimizer's recommended one."""
    return {
        o: [{"params": study_space(spec, o).recommended(), "origin": "recommended"}]
        for o in spec.optimizers
    }


@dataclass
class StudyContext:
    """One study, ready to run trials of."""

    store: Store
    spec: StudySpec
    task: Any
    plugins: dict[str, Any]
    spaces: dict[str, Any]
    fingerprints: dict[str, str]
    studies: dict[str, Any]
    run_options: dict[str, Any] = field(default_factory=dict)
    """How the worker's runs use the CPU (``threads``, ``cores``: training options that never
    change a result), from its settings and the study's ``threads``."""
    storage: Any = None
    """Optuna's storage behind ``studies`` (closed by :meth:`close`)."""

    def close(self) -> None:
        """Close the connections of Optuna's storage (the store is its opener's to close)."""
        optuna_adapter.close(self.storage)

    @property
    def budget(self) -> int:
        """Optimizer steps per run: the study's budget, else the task's."""
        return int(self.spec.budget or self.task.budget)

    @property
    def direction(self) -> str:
        return self.task.direction


def open_context(
    store: Store, name: str, settings: WorkerSettings | None = None
) -> StudyContext:
    """Load study ``name`` for a worker with ``settings``; a changed search space, or a task
    given by reference whose code changed (unless ``--allow-changed``), is a one-line error."""
    from tuner.plugin.registry import get_registry

    registry = get_registry()
    spec = get_study(store, name)
    if not spec.initial_configs:
        spec = replace(spec, initial_configs=recommended_configs(spec))
    task = load_study_task(spec)
    spaces = {o: study_space(spec, o) for o in spec.optimizers}
    fingerprints = {o: space.fingerprint() for o, space in spaces.items()}
    for optimizer, have in fingerprints.items():
        want = spec.space_hashes.get(optimizer)
        if want is not None and want != have:
            raise DriverError(
                f"the search space of optimizer {optimizer!r} changed since study "
                f"{spec.name!r} was created (plugin upgraded?); create a new study"
            )
    plugins = {o: replace(registry.optimizer(o), space=optimizer_space(spec, o))
               for o in spec.optimizers}
    storage = optuna_adapter.storage(store)
    budget = int(spec.budget or task.budget)
    # the pruner's start-up comes from the base trials: trials added later do not change it
    studies = {
        o: optuna_adapter.load_study(
            storage, spec.name, o, task.direction,
            optuna_adapter.make_pruner(spec.pruner, budget, spec.seeds, spec.trials),
        )
        for o in spec.optimizers
    }
    run_options = (settings or WorkerSettings()).run_options(spec.threads)
    return StudyContext(store, spec, task, plugins, spaces, fingerprints, studies, run_options,
                        storage)
