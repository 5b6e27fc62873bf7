"""Grid search as fixed configurations: slot ``s`` takes point ``s`` of one shuffled grid.

Every worker computes the same grid in the same order from the study's seed, so two slots never
take one point unless the grid is smaller than the budget (then it is walked again from the
start).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from typing import Any


def grid_points(space: Any, trials: int) -> dict[str, list[Any]]:
    """A grid over ``space`` with about ``trials - 1`` points (the first trial is the
    recommended configuration, which is not on the grid).

    Categorical parameters take all their choices; numeric ones get points one at a time, the
    learning rate three times as readily as the others, while the grid stays within the budget.
    """
    from tuner.plugin.space import Categorical

    target = max(1, trials - 1)
    counts = {p.name: 1 for p in space if not isinstance(p, Categorical)}
    fixed = math.prod(len(p.choices) for p in space if isinstance(p, Categorical))
    weight = {name: 3.0 if name == "lr" else 1.0 for name in counts}

    def size(candidate: Mapping[str, int]) -> int:
        return fixed * math.prod(candidate.values())

    while counts:
        order = sorted(counts, key=lambda name: counts[name] / weight[name])
        for name in order:
            grown = {**counts, name: counts[name] + 1}
            if size(grown) <= target:
                counts = grown
                break
        else:
            break
    grid = {}
    for param in space:
        points = param.grid(counts.get(param.name, 1))
        grid[param.name] = list(dict.fromkeys(points))
    return grid


def grid_config(space: Any, trials: int, seed: int, index: int) -> dict[str, Any]:
    """Point ``index`` of the grid of ``space``, shuffled by ``seed`` (modulo the grid size)."""
    grid = grid_points(space, trials)
    names = list(grid)
    points = list(itertools.product(*(grid[name] for name in names)))
    random.Random(seed).shuffle(points)
    return dict(zip(names, points[index % len(points)], strict=True))
