"""The axes of an optimizer's slice plots and parallel coordinates, read from its configurations.

The store keeps the values each configuration trained with, not the search space they were
drawn from (advice never loads a plugin), so an axis's scale is read from the values:

* numbers that are all positive and span a factor of :data:`LOG_SPAN` or more are ``log``: a
  space sampled on a log scale (lr 1e-5..1e-1, eps 1e-8..1e-4, t0 1..10,000); ``lr`` is always
  log when positive, as on the task page's lr chart;
* other numbers are ``linear`` (beta1 0.5..0.99, a weight decay from 0, k 1..20);
* anything else (text, true/false, a mix of kinds) is ``categorical``, its choices in a fixed
  order.

A log space narrower than a factor of :data:`LOG_SPAN` (gamma 0.005..0.1) is drawn linear: the
values cannot tell it from a linear one of the same span.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

LOG_SPAN = 100.0
"""The span (highest / lowest) from which positive numbers are drawn on a log axis."""


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def axis(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """One hyperparameter's axis: ``{"name", "scale", "low", "high", "choices"}``; ``low``
    and ``high`` for numbers, ``choices`` (the distinct values) for a categorical axis."""
    if values and all(_number(value) for value in values):
        low, high = min(values), max(values)
        log = low > 0 and (name == "lr" or high >= low * LOG_SPAN)
        return {"name": name, "scale": "log" if log else "linear", "low": low, "high": high,
                "choices": None}
    distinct = {json.dumps(value, sort_keys=True): value for value in values}
    choices = [distinct[key] for key in sorted(distinct)]
    return {"name": name, "scale": "categorical", "low": None, "high": None,
            "choices": choices}


def parameter_axes(
    configurations: Iterable[dict[str, Any]], first: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """An axis per hyperparameter of ``configurations`` (each with its ``params``): those
    named in ``first`` (the most important first) in that order, then the others by name."""
    found: dict[str, list[Any]] = {}
    for configuration in configurations:
        for name, value in (configuration.get("params") or {}).items():
            found.setdefault(name, []).append(value)
    names = [name for name in first if name in found]
    names += sorted(name for name in found if name not in names)
    return [axis(name, found[name]) for name in names]
