"""Task parameters: a width, a depth, a data size that a study sets on a task.

A task declares its parameters and their defaults (``parameters = {"width": 128}``); a study
sets some (``--task-param width=256``, or ``[task_params]`` in the study file). The values are
part of the task's identity in the store: the task's name there is :func:`identity`,
``digits-mlp[width=256]``, so the runs of two widths are ranked as two tasks. Only values that
differ from the declared defaults appear in it: ``digits-mlp`` is digits-mlp at its default
width, and the runs stored before a task declared a parameter keep their task.

This module imports nothing heavy: the store and the CLI use it without torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tuner.errors import TunerError

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_TEXT = re.compile(r"[A-Za-z0-9_.+-]{1,40}")
_IDENTITY = re.compile(r"(?P<base>[^\[\]]+)\[(?P<params>[^\[\]]*)\]")


class TaskParamError(TunerError, ValueError):
    """A task parameter that the task does not declare, or a value of the wrong kind."""


def check_declared(parameters: Mapping[str, Any], owner: str) -> list[str]:
    """What is wrong with a task's declared ``parameters`` (names and default values)."""
    problems = []
    for name, default in parameters.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(f"task parameter {name!r}: use a lower-case name")
        elif not _plain(default):
            problems.append(
                f"task parameter {name!r}: the default must be a number, a bool or a short "
                f"plain string, got {default!r}"
            )
    return problems


def _plain(value: Any) -> bool:
    if isinstance(value, bool) or isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and bool(_TEXT.fullmatch(value))


def coerce(name: str, value: Any, default: Any, owner: str) -> Any:
    """``value`` (a flag's text, or a study file's value) as the type of ``default``."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError(value)
            number = int(value)
            if number < 1:
                raise OverflowError(value)  # below the range: said below
            return number
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        text = str(value)
        if not _TEXT.fullmatch(text):
            raise ValueError(value)
        return text
    except OverflowError:
        raise TaskParamError(
            f"{owner}: task parameter {name} must be a positive whole number, got {value!r}"
        ) from None
    except (TypeError, ValueError):
        word = {bool: "true or false", int: "a whole number", float: "a number"}.get(
            kind, "a short plain string"
        )
        raise TaskParamError(
            f"{owner}: task parameter {name} must be {word}, got {value!r}"
        ) from None


def resolve_values(
    declared: Mapping[str, Any], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Every declared parameter's value: ``given`` (checked, coerced) over the defaults."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        names = ", ".join(sorted(declared)) if declared else "none"
        raise TaskParamError(
            f"{owner} has no task parameter {unknown[0]!r}; its parameters are: {names}"
        )
    values = dict(declared)
    for name, value in given.items():
        values[name] = coerce(name, value, declared[name], owner)
    return values


def identity(base: str, values: Mapping[str, Any], declared: Mapping[str, Any]) -> str:
    """The task's name in the store: ``base``, with ``[k=v,...]`` for the values that differ
    from the defaults (sorted by name)."""
    changed = {k: v for k, v in values.items() if k in declared and v != declared[k]}
    if not changed:
        return base
    inner = ",".join(f"{k}={_text(changed[k])}" for k in sorted(changed))
    return f"{base}[{inner}]"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def split_identity(name: str) -> tuple[str, dict[str, str]]:
    """``digits-mlp[width=256]`` -> ``("digits-mlp", {"width": "256"})`` (values as text);
    a plain name -> ``(name, {})``."""
    match = _IDENTITY.fullmatch(name)
    if match is None:
        return name, {}
    pairs = {}
    for part in match["params"].split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise TaskParamError(f"task {name!r}: expected NAME[KEY=VALUE,...]")
        pairs[key.strip()] = value.strip()
    return match["base"], pairs


def parse_flags(texts: Iterable[str]) -> dict[str, str]:
    """``["width=256", "depth=2"]`` (``--task-param`` flags) -> ``{"width": "256", ...}``."""
    values: dict[str, str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise TaskParamError(f"--task-param {text!r}: expected NAME=VALUE")
        values[key.strip()] = value.strip()
    return values
