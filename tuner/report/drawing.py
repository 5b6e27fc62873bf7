"""What every figure of the report layer shares: matplotlib's file backend, one colour per
optimizer, a grid of panels, and how a figure is written.

matplotlib is imported on first use (Agg: no display needed), so importing a figure module costs
nothing until something is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DPI = 110


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colours(names: Sequence[str]) -> dict[str, Any]:
    """One stable colour per optimizer name (the same optimizer looks the same in every plot)."""
    palette = pyplot().get_cmap("tab10").colors
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(names))}


def panel_grid(
    count: int, columns: int, size: tuple[float, float], sharey: bool = False
) -> tuple[Any, list[Any]]:
    """A figure of ``count`` panels of ``size`` inches, at most ``columns`` a row, and its axes
    in reading order; the grid's unused cells are hidden."""
    columns = min(columns, max(1, count))
    rows = max(1, math.ceil(count / columns))
    figure, grid = pyplot().subplots(
        rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False,
        sharey=sharey,
    )
    flat = [axes for row in grid for axes in row]
    for axes in flat[count:]:
        axes.set_visible(False)
    return figure, flat[:count]


def save(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (its folder made if needed) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(figure)
    return path
