"""The store's one rule for values it cannot keep as they are: non-finite numbers become NULL.

A run can produce NaN (a diverged loss) or an infinity (a metric that blew up, a ratio over
zero). SQLite stores NaN as NULL but keeps the infinities; PostgreSQL keeps all three in a
``double precision`` column and rejects them in JSON. So one rule, the same on both databases
and in every column:

* a float column gets :func:`finite_or_none`: NaN, ``inf`` and ``-inf`` are stored as NULL,
  which reads back as "not measured" (a non-finite final metric is no result to rank);
* a JSON column gets :func:`plain_json`: the same numbers become ``null`` at any depth, mapping
  keys become strings and tuples lists, so what is read back equals what was written.

Every write in :mod:`tuner.store` goes through one of the two; nothing else sanitises values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def plain_json(value: Any) -> Any:
    """A JSON-ready copy, at any depth: non-finite floats -> None, keys -> str, tuples -> lists,
    and anything else that JSON has no type for (a date, a path) -> its ``str``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
