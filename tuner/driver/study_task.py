"""The task of a study, as a worker or ``study create`` loads it: its plugin's, or its reference
loaded again and checked against the code the study was created with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner.task.reference import ChangedCodeError, allow_changed, load_reference

if TYPE_CHECKING:
    from tuner.study.spec import StudySpec
    from tuner.task.contract import Task


def load_study_task(spec: StudySpec, *, allowed_changed: bool | None = None) -> Task:
    """The task of study ``spec``: its registered plugin's, or its reference loaded again, with
    the study's task parameters.

    A reference whose file hash differs from the study's is refused with one line (the store
    is not touched), unless changes are allowed (``--allow-changed``); the task then carries
    the new hash, which each run records.
    """
    from tuner.plugin.registry import get_registry

    registry = get_registry()
    if not spec.task_ref:
        return registry.task(spec.task)
    task = load_reference(spec.task_ref, registry).with_params(spec.task_params)
    if task.name != spec.task:
        raise ChangedCodeError(
            f"task reference {spec.task_ref!r} now declares task {task.name!r}; study "
            f"{spec.name!r} is of task {spec.task!r}"
        )
    changed = spec.task_hash is not None and task.code_hash != spec.task_hash  # type: ignore
    allowed = allow_changed() if allowed_changed is None else allowed_changed
    if changed and not allowed:
        raise ChangedCodeError(
            f"the code of task {spec.task!r} ({spec.task_ref.rpartition(':')[0]}) changed since "
            f"study {spec.name!r} was created; restore it, or run with --allow-changed"
        )
    return task
