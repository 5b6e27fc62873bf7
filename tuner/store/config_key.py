"""The configuration key: a configuration is its hyperparameters plus the training options that
change the result.

Two runs are seeds of one configuration when they trained the same hyperparameters under the
same result-changing training options: ``lr=1e-3`` for 100 steps and ``lr=1e-3`` for 500 steps
are two configurations, each with its own mean. The store keys every advice figure on
:func:`config_hash` (``tuner_runs.config_hash``, ``tuner_config_stats``), while ``params_hash``
stays the key of the hyperparameters alone.

Which options count is :data:`RESULT_OPTIONS`: each result-changing field of
:class:`tuner.training.TrainOptions` with its *baseline*, the value every run had before the
option existed. An option at its baseline, or one that its schedule ignores (``gamma`` under a
constant schedule), is left out of the key; so adding an option later (with the baseline that
all older runs implicitly had) changes no stored key. Options that only change how a run is
carried out (device, threads, evaluation cadence, divergence checks) are not part of it.

This module imports nothing heavy: the store computes keys without torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tuner.store.values import plain_json

RESULT_OPTIONS: dict[str, Any] = {
    "budget": None,
    "schedule": "constant",
    "warmup": 0,
    "step_size": None,
    "gamma": 0.1,
    "plateau_patience": 2,
    "clip_norm": None,
    "accumulate": 1,
    "patience": None,
    "min_delta": 0.0,
    "batch_size": None,
    "floor": 0.0,
    "decay_exclude": False,
    "precision": "float32",
}
"""The TrainOptions fields that change a run's result, each with its baseline (frozen: a key
computed today must equal the key computed by any later tuner, so a baseline never changes)."""

_ONLY_WITH: dict[str, tuple[str, tuple[Any, ...]]] = {
    "step_size": ("schedule", ("step",)),
    "gamma": ("schedule", ("step", "plateau")),
    "plateau_patience": ("schedule", ("plateau",)),
    "floor": ("schedule", ("cosine", "linear")),
}
"""Options that change the result only under some values of another option."""


def training_options(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Every result-changing option of a run, its baseline filled in; None if none recorded."""
    if not options:
        return None
    return {name: options.get(name, baseline) for name, baseline in RESULT_OPTIONS.items()}


def _relevant(options: Mapping[str, Any]) -> dict[str, Any]:
    """The result-changing options that differ from their baselines and take effect."""
    chosen = {}
    for name, baseline in RESULT_OPTIONS.items():
        value = options.get(name, baseline)
        if value == baseline:
            continue
        if name in _ONLY_WITH:
            other, values = _ONLY_WITH[name]
            if options.get(other, RESULT_OPTIONS[other]) not in values:
                continue
        if name == "min_delta" and options.get("patience") is None:
            continue  # without early stopping the improvement threshold is never used
        chosen[name] = value
    return chosen


def config_key(
    params: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The canonical form of a configuration: ``{"params": ..., "training": ...}``.

    ``params`` are the hyperparameters (JSON-safe copy), ``training`` the result-changing
    options that differ from their baselines; a run that recorded no options (before migration
    0005) has an empty ``training``.
    """
    return {
        "params": plain_json(dict(params)),
        "training": plain_json(_relevant(options)) if options else {},
    }


def config_hash(params: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> str:
    """A short stable key of a configuration: 16 hex digits of the SHA-1 of its canonical JSON.

    Canonical JSON is :func:`config_key` with sorted keys and no spaces. Migration 0006 carries
    a frozen copy of this function to fill in older runs; keep the two identical.
    """
    text = json.dumps(
        config_key(params, options), sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# -- the protocol: what configurations must share to be ranked together ---------------------

BUDGET_UNITS = ("steps", "examples")


def protocol_key(
    budget: int | None,
    unit: str = "steps",
    options: Mapping[str, Any] | None = None,
    tuned: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    """The canonical form of a protocol: ``{"budget": ..., "unit": ..., "training": ...}``.

    A protocol is what every configuration of one ranking was trained under: the budget, in its
    unit (``steps``, or ``examples`` when a study tunes the batch size and keeps the examples
    per run equal; the budget is then the study's nominal steps at the task's own batch size),
    and the result-changing training options that were held fixed (``options`` less the
    ``tuned`` names, which are part of each configuration instead). Configurations of one task
    under two protocols are two experiments, never ranked against each other.
    """
    if unit not in BUDGET_UNITS:
        raise ValueError(f"unknown budget unit {unit!r}")
    fixed = {k: v for k, v in (options or {}).items() if k not in tuned and k != "budget"}
    return {
        "budget": None if budget is None else int(budget),
        "unit": unit,
        "training": plain_json(_relevant(fixed)),
    }


def protocol_hash(key: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-1 of a :func:`protocol_key`'s canonical JSON (as
    :func:`config_hash`); migration 0009 carries a frozen copy, keep the two identical."""
    text = json.dumps(dict(key), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def describe_protocol(key: Mapping[str, Any]) -> str:
    """``300 steps``, ``9600 examples`` or ``300 steps, schedule=cosine, warmup=100``."""
    budget = key.get("budget")
    unit = key.get("unit") or "steps"
    if budget is None:
        head = "the task's budget"
    elif unit == "examples":
        head = f"{budget} steps' worth of examples"
    else:
        head = f"{budget} steps"
    training = key.get("training") or {}
    return ", ".join([head, *(f"{k}={v}" for k, v in sorted(training.items()))])
