"""A study's settings checked against the installed plugins: flags over a study file, one
checked :class:`~tuner.study.spec.StudySpec`.

:func:`resolve` is where a study definition meets the plugins (the task, each optimizer and its
search space), so it sits in the driver, above them; the checks that need no plugin are the
study layer's (:mod:`tuner.study.spec`), which the store and advice use without loading any.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tuner.study.spec import (
    LIMITS,
    PRUNERS,
    SAMPLERS,
    RangeOverride,
    StudyFileError,
    StudySpec,
    apply_ranges,
    check_schedule,
    check_study_name,
)


def resolve(
    settings: Mapping[str, Any], file_settings: Mapping[str, Any] | None = None
) -> StudySpec:
    """Merge flags over file settings and check everything; returns the final :class:`StudySpec`.

    ``settings`` holds the command-line values (None = not given); ``ranges`` in either is a list
    of :class:`RangeOverride`, and the flags' ranges are applied after the file's. Raises a
    :class:`~tuner.errors.TunerError` with one line at the first problem. Nothing is written.
    """
    from tuner.plugin.registry import get_registry

    merged: dict[str, Any] = dict(file_settings or {})
    for key, value in settings.items():
        if key in ("training", "task_params") and value:
            merged[key] = {**(merged.get(key) or {}), **value}
        elif key not in ("ranges", "training", "task_params") and value is not None:
            merged[key] = value
    ranges: list[RangeOverride] = [
        *((file_settings or {}).get("ranges") or []),
        *(settings.get("ranges") or []),
    ]

    name = merged.get("name")
    if not name:
        raise StudyFileError("give the study a name (NAME, or name = ... in the study file)")
    check_study_name(name)
    for key in ("task", "optimizers", "trials", "seeds"):
        if merged.get(key) is None:
            flag = f"--{key}"
            raise StudyFileError(f"missing {flag} (or {key} = ... in the study file)")

    registry = get_registry()
    task = registry.task(merged["task"]).with_params(merged.get("task_params") or {})
    optimizers = merged["optimizers"]
    if isinstance(optimizers, str):
        optimizers = [part.strip() for part in optimizers.split(",")]
    optimizers = [name for name in optimizers if name]
    if not optimizers:
        raise StudyFileError("--optimizers needs at least one optimizer name")
    duplicates = sorted({o for o in optimizers if optimizers.count(o) > 1})
    if duplicates:
        raise StudyFileError(f"optimizer {duplicates[0]!r} is listed twice")
    plugins = {name: registry.optimizer(name) for name in optimizers}
    for plugin in plugins.values():
        if plugin.full_batch_only and task.batch_size is not None:
            raise StudyFileError(
                f"optimizer {plugin.name!r} is full-batch only; task {task.name!r} trains on "
                f"mini-batches of {task.batch_size}"
            )
        if plugin.splits_by_role:
            from tuner.training.roles import hidden_matrix_problem

            problem = hidden_matrix_problem(task, plugin)
            if problem:
                raise StudyFileError(problem)

    for key, (least, most) in LIMITS.items():
        value = merged.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            word = "positive" if least else "zero or more"
            raise StudyFileError(f"{key} must be a {word} whole number, got {value!r}")
        if value > most:
            raise StudyFileError(f"{key} must be at most {most:,}, got {value:,}")
    first_seed = merged.get("first_seed") or 0
    if first_seed + merged["seeds"] - 1 > LIMITS["first_seed"][1]:
        raise StudyFileError(
            f"first_seed + seeds - 1 must be at most {LIMITS['first_seed'][1]:,}, got "
            f"{first_seed + merged['seeds'] - 1:,}"
        )

    sampler = merged.get("sampler") or "tpe"
    if sampler not in SAMPLERS:
        raise StudyFileError(f"unknown sampler {sampler!r}; choose from: {', '.join(SAMPLERS)}")
    pruner = merged.get("pruner") or "median"
    if pruner not in PRUNERS:
        raise StudyFileError(f"unknown pruner {pruner!r}; choose from: {', '.join(PRUNERS)}")
    schedule = merged.get("schedule")
    if schedule is not None:
        check_schedule(schedule)
    from tuner.study.training import BUDGET_UNITS, check_no_clash, check_training

    training = check_training(merged.get("training") or {})
    budget_unit = merged.get("budget_unit") or "examples"
    if budget_unit not in BUDGET_UNITS:
        raise StudyFileError(
            f"unknown budget_unit {budget_unit!r}; choose from: {', '.join(BUDGET_UNITS)}"
        )
    for optimizer, plugin in plugins.items():
        check_no_clash(training, optimizer, plugin.space.names)
        if plugin.full_batch_only and "batch_size" in training:
            raise StudyFileError(
                f"optimizer {optimizer!r} is full-batch only; the study sets a batch size"
            )

    per_optimizer: dict[str, dict[str, list[float]]] = {}
    for override in ranges:
        targets = _range_targets(override, plugins)
        for optimizer in targets:
            per_optimizer.setdefault(optimizer, {})[override.param] = [override.low, override.high]
    for optimizer, overrides in per_optimizer.items():
        for param, (low, high) in overrides.items():
            if not (math.isfinite(low) and math.isfinite(high)):
                raise StudyFileError(f"range {optimizer}.{param}: bounds must be finite numbers")
        apply_ranges(plugins[optimizer].space, overrides, f"optimizer {optimizer!r}")

    from tuner.study.training import tuned

    fixed = [  # nothing to tune: every hyperparameter and training option fixed
        optimizer for optimizer, plugin in plugins.items()
        if not tuned(training)
        and apply_ranges(plugin.space, per_optimizer.get(optimizer, {}), optimizer).fixed_point()
        is not None
    ]
    return StudySpec(
        name=name, task=task.name, optimizers=optimizers, trials=merged["trials"],
        seeds=merged["seeds"], sampler=sampler, pruner=pruner, budget=merged.get("budget"),
        schedule=schedule, seed=merged.get("seed") or 0, ranges=per_optimizer,
        description=merged.get("description") or "", fixed=fixed,
        task_ref=getattr(task, "code_ref", None), task_hash=getattr(task, "code_hash", None),
        task_params={k: v for k, v in task.task_params.items()
                     if k in (merged.get("task_params") or {})},
        training=training, budget_unit=budget_unit, batch=merged.get("batch"),
        threads=merged.get("threads"), first_seed=first_seed,
    )


def _range_targets(override: RangeOverride, plugins: Mapping[str, Any]) -> list[str]:
    if override.optimizer is not None:
        if override.optimizer not in plugins:
            raise StudyFileError(
                f"range {override.label}: optimizer {override.optimizer!r} is not in the study "
                f"({', '.join(plugins)})"
            )
        if override.param not in plugins[override.optimizer].space:
            names = ", ".join(plugins[override.optimizer].space.names)
            raise StudyFileError(
                f"range {override.label}: {override.optimizer} has no parameter "
                f"{override.param!r}; its parameters are: {names}"
            )
        return [override.optimizer]
    targets = [name for name, plugin in plugins.items() if override.param in plugin.space]
    if not targets:
        raise StudyFileError(
            f"range {override.label}: no optimizer of the study has a parameter "
            f"{override.param!r}"
        )
    return targets
