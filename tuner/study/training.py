"""A study's training options: each fixed for the whole study, or a tuned dimension.

The practitioner's knobs of :class:`tuner.training.TrainOptions` (batch size, warm-up, the
schedule and its parameters, clipping, accumulation, early stopping, weight-decay exclusion,
precision) can be set in a study. In a study file::

    [training]
    warmup = 100                         # fixed: every run warms up for 100 steps
    batch_size = [16, 256]               # tuned: a range, sampled with the optimizer's own
    schedule = ["constant", "cosine"]    # tuned: choices (a list of names, or {choices = [...]})
    precision = "bf16"
    decay_exclude = true                 # no weight decay on biases and normalisation weights

and as flags: ``--train warmup=100``, ``--train batch_size=16:256``, ``--train
schedule=constant,cosine``. A tuned option becomes a dimension of every optimizer's search
space (the sampler sees it with the hyperparameters); each run records the values it used in
its options, and they are part of its configuration key (:mod:`tuner.store.config_key`), so the
advice ranks "at batch 16" and "at batch 256" apart.

**Equal budget.** When the batch size is tuned, the budget counts training examples: a run at
batch size ``b`` takes ``budget * reference / b`` steps, where ``reference`` is the task's own
batch size (the low end of the range for a full-batch task), and evaluates as often, in
examples. ``budget_unit = "steps"`` keeps every run at the same number of steps instead.

This module imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tuner.errors import TunerError
from tuner.plugin.space import Categorical, Float, Int

BUDGET_UNITS = ("examples", "steps")


class TrainingOptionError(TunerError, ValueError):
    """A study training option that does not exist or cannot take the value given."""


@dataclass(frozen=True)
class _Kind:
    """What values an option takes: ``int`` / ``float`` in [least, most], ``bool`` or
    ``choice`` among ``choices``; ``log`` samples a tuned range on a log scale."""

    type: str
    least: float | None = None
    most: float | None = None
    log: bool = False
    choices: tuple = ()
    open_low: bool = False  # least itself is excluded (a positive number)


def _kinds() -> dict[str, _Kind]:
    from tuner.training.options import PRECISIONS, SCHEDULES

    return {
        "batch_size": _Kind("int", 1, 2**20, log=True),
        "warmup": _Kind("int", 0, 2**31 - 1),
        "schedule": _Kind("choice", choices=SCHEDULES),
        "step_size": _Kind("int", 1, 2**31 - 1, log=True),
        "gamma": _Kind("float", 0.0, 1.0, open_low=True),
        "plateau_patience": _Kind("int", 1, 10_000),
        "floor": _Kind("float", 0.0, 0.999),
        "clip_norm": _Kind("float", 0.0, 1e6, log=True, open_low=True),
        "accumulate": _Kind("int", 1, 4096),
        "patience": _Kind("int", 1, 100_000),
        "min_delta": _Kind("float", 0.0, 1e6),
        "decay_exclude": _Kind("bool", choices=(False, True)),
        "precision": _Kind("choice", choices=PRECISIONS),
    }


def option_names() -> list[str]:
    """The training options a study can set."""
    return list(_kinds())


def _check_value(name: str, kind: _Kind, value: Any) -> Any:
    """``value`` checked (and coerced) for option ``name``."""
    if kind.type == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise TrainingOptionError(f"training option {name} must be true or false, got "
                                      f"{value!r}")
        return value
    if kind.type == "choice":
        if value not in kind.choices:
            raise TrainingOptionError(
                f"training option {name}: {value!r} is not one of: "
                + ", ".join(str(c) for c in kind.choices)
            )
        return value
    try:
        if isinstance(value, bool):
            raise ValueError
        if kind.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number: Any = int(value)
        else:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
    except (TypeError, ValueError):
        word = "a whole number" if kind.type == "int" else "a number"
        raise TrainingOptionError(f"training option {name} must be {word}, got {value!r}") \
            from None
    low_ok = number > kind.least if kind.open_low else number >= kind.least
    if not low_ok or number > kind.most:
        bracket = "(" if kind.open_low else "["
        raise TrainingOptionError(
            f"training option {name} must be in {bracket}{kind.least:g}, {kind.most:g}], got "
            f"{value!r}"
        )
    return number


def check_training(raw: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Check a study's training options: ``{name: value}`` fixed, ``{name: {"range": [lo,
    hi]}}`` or ``{name: {"choices": [...]}}`` tuned. Returns them in that canonical form.

    Raises :class:`TrainingOptionError` (one line, naming the option) for an unknown option, a
    value it cannot take, an empty or reversed range, or a range over a non-numeric option.
    """
    kinds = _kinds()
    prefix = f"{where}: " if where else ""
    checked: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in kinds:
            raise TrainingOptionError(
                f"{prefix}unknown training option {name!r}; the options are: "
                + ", ".join(kinds)
            )
        kind = kinds[name]
        try:
            checked[name] = _check_one(name, kind, value)
        except TrainingOptionError as error:
            raise TrainingOptionError(f"{prefix}{error}") from None
    return checked


def _check_one(name: str, kind: _Kind, value: Any) -> Any:
    if isinstance(value, Mapping):
        keys = set(value)
        if keys == {"range"}:
            if kind.type not in ("int", "float"):
                raise TrainingOptionError(
                    f"training option {name} is not a number: give choices, not a range"
                )
            bounds = value["range"]
            if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
                raise TrainingOptionError(f"training option {name}: a range is [low, high]")
            low, high = (_check_value(name, kind, b) for b in bounds)
            if not low < high:
                raise TrainingOptionError(
                    f"training option {name}: low {low} must be below high {high}"
                )
            return {"range": [low, high]}
        if keys == {"choices"}:
            choices = value["choices"]
            if not isinstance(choices, (list, tuple)) or not choices:
                raise TrainingOptionError(f"training option {name}: choices must be a list")
            checked = [_check_value(name, kind, c) for c in choices]
            if len(set(map(repr, checked))) != len(checked):
                raise TrainingOptionError(f"training option {name}: a choice is repeated")
            return {"choices": checked} if len(checked) > 1 else checked[0]
        raise TrainingOptionError(
            f"training option {name}: expected a value, [low, high] or {{choices = [...]}}"
        )
    return _check_value(name, kind, value)


def check_where(raw: Mapping[str, Any], flag: str = "--where") -> dict[str, Any]:
    """Check a filter on the training options runs recorded (``tuner best --where``):
    ``{name: value}`` keeps the runs trained with that value, ``{name: {"range": [low,
    high]}}`` (or a pair ``(low, high)``) those with a number from low to high, both included.
    Returns it in that canonical form.

    Raises :class:`TrainingOptionError` (one line, naming ``flag`` and the option) for an
    unknown option, a value it cannot take, a reversed range, a range over an option that is
    no number, or choices.
    """
    kinds = _kinds()
    checked: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, (tuple, list)):
            value = {"range": list(value)}
        if not isinstance(value, Mapping):
            checked.update(check_training({name: value}, flag))
            continue
        bounds = value.get("range") if set(value) == {"range"} else None
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise TrainingOptionError(
                f"{flag} {name}: give one value or a range LOW:HIGH, not choices"
            )
        if name in kinds and kinds[name].type not in ("int", "float"):
            raise TrainingOptionError(f"{flag} {name}: not a number, so give one value, not a "
                                      "range")
        low, high = (check_training({name: bound}, flag)[name] for bound in bounds)
        if low > high:
            raise TrainingOptionError(f"{flag} {name}: low {low} is above high {high}")
        checked[name] = {"range": [low, high]}
    return checked


def describe_where(where: Mapping[str, Any]) -> str:
    """A filter as the flags write it: ``batch_size=16:64, precision=bf16``."""
    def text(value: Any) -> str:
        if isinstance(value, Mapping):
            return ":".join(text(bound) for bound in value["range"])
        if isinstance(value, bool):
            return str(value).lower()
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{name}={text(value)}" for name, value in where.items())


def from_file_value(value: Any) -> Any:
    """A study file's value in the canonical form: ``[a, b]`` of two numbers is a range, any
    other list is choices."""
    if isinstance(value, list):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if numbers and len(value) == 2:
            return {"range": value}
        return {"choices": value}
    return value


def parse_flag(
    text: str, flag: str = "--train",
    forms: str = "NAME=VALUE, NAME=LOW:HIGH or NAME=A,B,...",
) -> tuple[str, Any]:
    """``--train NAME=VALUE`` -> ``(name, value)``: ``LOW:HIGH`` is a range, ``A,B,C``
    choices; values stay text until :func:`check_training` coerces them. ``flag`` and the
    ``forms`` it takes are named in the error."""
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise TrainingOptionError(f"{flag} {text!r}: expected {forms}")
    if "," in value:
        return name, {"choices": [_number_or_text(v) for v in value.split(",")]}
    if ":" in value:
        low, _, high = value.partition(":")
        return name, {"range": [_number_or_text(low), _number_or_text(high)]}
    return name, _number_or_text(value)


def _number_or_text(text: str) -> Any:
    text = text.strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def tuned(training: Mapping[str, Any]) -> dict[str, Any]:
    """The tuned options (a range or choices) of checked training options."""
    return {k: v for k, v in training.items() if isinstance(v, Mapping)}


def fixed(training: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed options of checked training options."""
    return {k: v for k, v in training.items() if not isinstance(v, Mapping)}


def space_params(training: Mapping[str, Any], task_batch_size: int | None) -> list[Any]:
    """The search-space dimensions of the tuned options (named as the options), each with a
    default inside its range: the training loop's own default where it fits, the task's batch
    size for ``batch_size``, else the low end."""
    from tuner.training.options import TrainOptions

    kinds, baseline = _kinds(), TrainOptions()
    params: list[Any] = []
    for name, spec in tuned(training).items():
        kind = kinds[name]
        usual = task_batch_size if name == "batch_size" else getattr(baseline, name)
        if "choices" in spec:
            choices = tuple(spec["choices"])
            default = usual if usual in choices else choices[0]
            params.append(Categorical(name, choices, default=default,
                                      help="training option (tuned)"))
            continue
        low, high = spec["range"]
        default = usual if usual is not None and low <= usual <= high else low
        if kind.type == "int":
            params.append(Int(name, int(low), int(high), default=int(default),
                              log=kind.log and low > 0, help="training option (tuned)"))
        else:
            params.append(Float(name, float(low), float(high), default=float(default),
                                log=kind.log and low > 0, help="training option (tuned)"))
    return params


def check_no_clash(training: Mapping[str, Any], optimizer: str, names: Iterable[str]) -> None:
    """A tuned option may not share its name with a hyperparameter of the optimizer."""
    for name in tuned(training):
        if name in set(names):
            raise TrainingOptionError(
                f"tuned training option {name!r} has the name of a hyperparameter of "
                f"optimizer {optimizer!r}; fix it instead"
            )


@dataclass(frozen=True)
class RunPlan:
    """What one run of a study trains with: its training options, and how its steps compare
    with the study's reference steps (``scale`` = examples per step / reference batch)."""

    options: dict[str, Any]
    scale: float = 1.0


def run_plan(
    training: Mapping[str, Any],
    sampled: Mapping[str, Any],
    *,
    budget: int,
    eval_every: int,
    task_batch_size: int | None,
    schedule: str | None = None,
    budget_unit: str = "examples",
) -> RunPlan:
    """The options of one run: the study's fixed options, the sampled values of its tuned ones,
    and the budget (in steps; scaled to equal examples when the batch size is tuned)."""
    options: dict[str, Any] = {}
    if schedule is not None:
        options["schedule"] = schedule
    options.update(fixed(training))
    options.update({k: v for k, v in sampled.items() if k in tuned(training)})
    options["budget"] = budget
    scale = 1.0
    if "batch_size" in tuned(training) and budget_unit == "examples":
        batch = tuned(training)["batch_size"]
        reference = task_batch_size or (
            batch["range"][0] if "range" in batch else min(batch["choices"])
        )
        scale = int(options["batch_size"]) / int(reference)
        options["budget"] = max(1, round(budget / scale))
        options["eval_every"] = max(1, round(eval_every / scale))
    return RunPlan(options, scale)

