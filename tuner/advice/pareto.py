"""Trade-offs between optimizers: the Pareto set over quality, time to target and memory.

Each optimizer is represented by its best configuration: its mean (better in the task's
direction), its mean steps to the target (lower is better; a configuration that never reached
it counts as infinitely slow) and its measured optimizer state as a multiple of the parameters'
bytes (lower is better; unmeasured counts as infinite). An optimizer is in the Pareto set when
no other is at least as good on all three and strictly better on one. ``--prefer`` picks, within
the Pareto set, the best on one criterion (ties: the better quality, then the name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PREFERENCES = ("quality", "speed", "memory")


@dataclass(frozen=True)
class TradeOff:
    """One optimizer's three criteria, each as a cost to minimise."""

    optimizer: str
    quality_cost: float
    steps: float
    memory: float


def trade_off(
    optimizer: str, mean: float, steps: float | None, memory: float | None, direction: str
) -> TradeOff:
    """The costs of one best configuration (``-mean`` when the task maximises)."""
    return TradeOff(
        optimizer,
        -mean if direction == "maximize" else mean,
        steps if steps is not None else math.inf,
        memory if memory is not None else math.inf,
    )


def _costs(point: TradeOff) -> tuple[float, float, float]:
    return point.quality_cost, point.steps, point.memory


def dominates(a: TradeOff, b: TradeOff) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and strictly better somewhere."""
    pairs = list(zip(_costs(a), _costs(b), strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def pareto_set(points: Sequence[TradeOff]) -> list[str]:
    """The optimizers no other dominates, in the order given."""
    return [p.optimizer for p in points if not any(dominates(q, p) for q in points)]


def preferred(points: Sequence[TradeOff], prefer: str) -> str | None:
    """The Pareto member best on ``prefer`` (quality, speed or memory)."""
    members = set(pareto_set(points))
    index = {"quality": 0, "speed": 1, "memory": 2}[prefer]
    chosen = [p for p in points if p.optimizer in members]
    if not chosen:
        return None
    return min(chosen, key=lambda p: (_costs(p)[index], p.quality_cost, p.optimizer)).optimizer


def pareto_of(
    rows: Mapping[str, tuple[float, float | None, float | None]], direction: str
) -> list[str]:
    """``pareto_set`` of ``{optimizer: (mean, steps, memory)}``."""
    return pareto_set([trade_off(name, *row, direction) for name, row in rows.items()])
