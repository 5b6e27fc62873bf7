"""Plots and the HTML report: what a person opens to see which optimizer and which lr, and why.

Every plot function takes plain data (lists, dicts, the dataclasses of :mod:`tuner.advice`) and
writes one PNG with matplotlib's file backend (Agg): no display needed. :func:`write_report`
reads the store and writes the PNGs and an ``index.html`` that shows them beside the ranking.
matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.advice.lr_meaning import STEP_SIZE
from tuner.errors import TunerError

if TYPE_CHECKING:
    from tuner.advice import TaskRanking
    from tuner.advice.budgets import BudgetCurve
    from tuner.store import Store
    from tuner.store.queries import Scope
    from tuner.training.lr_find import LrFindResult

DPI = 110


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colours(names: Sequence[str]) -> dict[str, Any]:
    """One stable colour per optimizer name (the same optimizer looks the same in every plot)."""
    plt = _pyplot()
    palette = plt.get_cmap("tab10").colors
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(names))}


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(figure)
    return path


# -- data the plots take -------------------------------------------------------------------------


@dataclass
class LrPoint:
    """One configuration on the lr-sensitivity plot: its lr, mean and spread over seeds."""

    lr: float
    mean: float | None
    std: float | None
    seeds: int
    diverged: bool


@dataclass
class SeedCurve:
    """One seed's learning curve: (step, metric) pairs."""

    steps: list[int]
    values: list[float | None]


@dataclass
class Trajectory:
    """One run's path in the plane."""

    points: list[tuple[float, float]]
    seed: int = 0


# -- plots ---------------------------------------------------------------------------------------


def plot_lr_find(result: LrFindResult, path: str | Path) -> Path:
    """The range test: raw and smoothed loss against lr (log scale), the suggestions marked."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.2))
    if result.lrs:
        axes.plot(result.lrs, result.losses, color="0.75", lw=1, label="loss")
        axes.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
        low = min(min(result.smoothed), min(result.losses))
        high = max(result.smoothed[: max(1, len(result.smoothed) // 10)] + [low])
        span = max(high - low, abs(low) * 0.1, 1e-12)
        axes.set_ylim(low - 0.15 * span, high + 0.6 * span)
    if result.suggested_lr is not None:
        axes.axvline(result.suggested_lr, color="C3", ls="--",
                     label=f"steepest descent: {result.suggested_lr:.2g}")
    if result.min_loss_lr is not None:
        axes.axvline(result.min_loss_lr / 10, color="C2", ls=":",
                     label=f"min-loss lr / 10: {result.min_loss_lr / 10:.2g}")
    if result.diverged_at is not None:
        axes.axvline(result.diverged_at, color="0.3", lw=1,
                     label=f"stopped (diverged) at {result.diverged_at:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    title = "learning-rate range test"
    if result.task:
        title += f": {result.optimizer} on {result.task}"
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    return _save(figure, path)


def plot_lr_sensitivity(
    points: Mapping[str, Sequence[LrPoint]],
    metric: str,
    direction: str,
    path: str | Path,
    good_lr: Mapping[str, tuple[float, float] | None] | None = None,
    best_lr: Mapping[str, float | None] | None = None,
    title: str = "",
    palette: Mapping[str, Any] | None = None,
    lr_meanings: Mapping[str, str] | None = None,
) -> Path:
    """The final metric against lr, one panel per optimizer.

    Each configuration is a dot with its seed spread (mean ± std) as an error bar; the line and
    band follow, bin by bin (quarter decades of lr), the best configuration's mean ± std; the
    good-lr interval is shaded; configurations that diverged are crosses on the bottom edge.
    ``palette`` (default :func:`colours` of these optimizers) gives each its colour.
    ``lr_meanings`` says what each optimizer's lr is: a panel whose lr is not a plain step size
    (a multiplier, Muon's convention) names it on its axis, since each panel has its own.
    """
    plt = _pyplot()
    names = sorted(points)
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure, grid = plt.subplots(
        rows, columns, figsize=(4.4 * columns, 3.3 * rows), squeeze=False, sharey=True
    )
    palette = palette or colours(names)
    finite = [
        p.mean for name in names for p in points[name] if p.mean is not None and not p.diverged
    ]
    low = min(finite) if finite else 0.0
    high = max(finite) if finite else 1.0
    log_y = direction == "minimize" and low > 0 and high / low > 50  # losses over decades
    if log_y:
        bottom, top = low / 3, high * 2
        cross = low / 2
    else:
        pad = (high - low) * 0.08 or abs(high) * 0.05 or 0.05
        bottom, top = low - pad, high + pad
        cross = bottom + pad * 0.3
    for index, name in enumerate(names):
        axes = grid[index // columns][index % columns]
        colour = palette[name]
        measured = sorted((p for p in points[name] if p.mean is not None and not p.diverged),
                          key=lambda p: p.lr)
        diverged = [p.lr for p in points[name] if p.diverged]
        if measured:
            axes.errorbar(
                [p.lr for p in measured], [p.mean for p in measured],
                yerr=[p.std or 0.0 for p in measured], fmt="o", ms=3, color=colour, alpha=0.45,
                elinewidth=0.8, capsize=0,
            )
            line = _best_per_bin(measured, direction)
            xs = [p.lr for p in line]
            ys = [p.mean for p in line]
            spread = [p.std or 0.0 for p in line]
            axes.plot(xs, ys, color=colour, lw=1.8)
            lows = [y - s for y, s in zip(ys, spread, strict=True)]
            highs = [y + s for y, s in zip(ys, spread, strict=True)]
            axes.fill_between(xs, lows, highs, color=colour, alpha=0.2, lw=0)
        if diverged:
            axes.plot(diverged, [cross] * len(diverged), "x", color="C3", ms=6,
                      label="diverged")
            axes.legend(fontsize=7, loc="lower left")
        interval = (good_lr or {}).get(name)
        if interval:
            axes.axvspan(interval[0], interval[1], color=colour, alpha=0.1)
        chosen = (best_lr or {}).get(name)
        if chosen:
            axes.axvline(chosen, color=colour, ls="--", lw=1)
        axes.set_xscale("log")
        if log_y:
            axes.set_yscale("log")
        axes.set_ylim(bottom, top)
        axes.set_title(name, fontsize=10)
        axes.grid(True, alpha=0.3)
        meaning = (lr_meanings or {}).get(name, STEP_SIZE)
        axes.set_xlabel("learning rate" + ("" if meaning == STEP_SIZE else f" ({meaning})"))
        if index % columns == 0:
            axes.set_ylabel(metric)
    for index in range(len(names), rows * columns):
        grid[index // columns][index % columns].set_visible(False)
    figure.suptitle(
        title or f"lr sensitivity ({metric}, {'higher' if direction == 'maximize' else 'lower'}"
        " is better; shaded: good-lr interval)",
        fontsize=11,
    )
    figure.tight_layout()
    return _save(figure, path)


def _best_per_bin(points: Sequence[LrPoint], direction: str, per_decade: int = 4) -> list[LrPoint]:
    """The best configuration in each lr bin (``per_decade`` bins per decade), in lr order."""
    bins: dict[int, LrPoint] = {}
    for point in points:
        key = math.floor(math.log10(point.lr) * per_decade) if point.lr > 0 else -(10**6)
        current = bins.get(key)
        better = current is None or (
            point.mean > current.mean if direction == "maximize" else point.mean < current.mean
        )
        if better:
            bins[key] = point
    return [bins[key] for key in sorted(bins)]


def plot_learning_curves(
    curves: Mapping[str, Sequence[SeedCurve]],
    metric: str,
    path: str | Path,
    target: float | None = None,
    log_y: bool = False,
    labels: Mapping[str, str] | None = None,
    title: str = "",
    palette: Mapping[str, Any] | None = None,
) -> Path:
    """Each optimizer's best configuration: mean metric over seeds per step, min..max as a band
    (``palette``: each optimizer's colour, default :func:`colours` of these optimizers)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    palette = palette or colours(list(curves))
    for name in sorted(curves):
        steps, means, lows, highs = _curve_band(curves[name])
        if not steps:
            continue
        label = (labels or {}).get(name, name)
        axes.plot(steps, means, color=palette[name], lw=1.8, label=label)
        axes.fill_between(steps, lows, highs, color=palette[name], alpha=0.18, lw=0)
    if target is not None:
        axes.axhline(target, color="0.4", ls=":", lw=1, label=f"target {target:g}")
    if log_y:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    axes.set_title(title or "learning curves of each optimizer's best configuration")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


def _curve_band(
    seeds: Sequence[SeedCurve],
) -> tuple[list[int], list[float], list[float], list[float]]:
    by_step: dict[int, list[float]] = {}
    for curve in seeds:
        for step, value in zip(curve.steps, curve.values, strict=True):
            if value is not None and math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    return steps, means, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps]


BUDGET_LOG_X = 20
"""Above this many trials the budget curves' x axis is logarithmic."""


def plot_budget_curves(
    curves: Mapping[str, BudgetCurve],
    metric: str,
    direction: str,
    path: str | Path,
    title: str = "",
    palette: Mapping[str, Any] | None = None,
) -> Path:
    """Each optimizer's expected best result after k trials of tuning, k = 1..its trials, with
    its 5%..95% interval as a band (:mod:`tuner.advice.budgets`); the x axis is logarithmic
    above :data:`BUDGET_LOG_X` trials, the y axis for a positive loss over decades.
    ``palette``: each optimizer's colour (default :func:`colours` of these optimizers)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    palette = palette or colours(list(curves))
    most = max((curve.trials for curve in curves.values()), default=1)
    for name in sorted(curves):
        curve = curves[name]
        trials = list(range(1, curve.trials + 1))
        axes.plot(trials, curve.expected, color=palette[name], lw=1.8, label=name,
                  marker="o" if most <= BUDGET_LOG_X else None, ms=3)
        axes.fill_between(trials, curve.low, curve.high, color=palette[name], alpha=0.18, lw=0)
    if most > BUDGET_LOG_X:
        axes.set_xscale("log")
    lows = [v for curve in curves.values() for v in curve.low if math.isfinite(v)]
    highs = [v for curve in curves.values() for v in curve.high if math.isfinite(v)]
    if direction == "minimize" and lows and min(lows) > 0 and max(highs) / min(lows) > 50:
        axes.set_yscale("log")  # losses over decades, as on the lr-sensitivity plot
    else:
        from matplotlib.ticker import MaxNLocator

        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(1, max(most, 2))
    better = "higher" if direction == "maximize" else "lower"
    axes.set_xlabel("trials of tuning (k)")
    axes.set_ylabel(f"expected best {metric} ({better} is better)")
    axes.set_title(title or "expected best result after k trials")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


def plot_trajectories(
    function: Callable[[Any], Any] | None,
    trajectories: Mapping[str, Sequence[Trajectory]],
    path: str | Path,
    bounds: tuple[float, float, float, float] | None = None,
    minimum: tuple[float, float] | None = None,
    title: str = "",
    labels: Mapping[str, str] | None = None,
    palette: Mapping[str, Any] | None = None,
) -> Path:
    """Paths in the plane over the contours of ``function`` (a numpy ``(..., 2) -> (...)`` map).

    Contours are drawn on a log scale of ``f - min f + eps`` so valleys stay visible; with
    ``function`` None the paths are drawn alone. ``palette``: each optimizer's colour (default
    :func:`colours` of these optimizers).
    """
    import numpy as np

    plt = _pyplot()
    all_points = [pt for runs in trajectories.values() for run in runs for pt in run.points]
    if bounds is None:
        framed = all_points + ([tuple(minimum)] if minimum is not None else [])
        xs = [p[0] for p in framed] or [-1.0, 1.0]
        ys = [p[1] for p in framed] or [-1.0, 1.0]
        (x0, x1), (y0, y1) = _padded(min(xs), max(xs)), _padded(min(ys), max(ys))
    else:
        x0, x1, y0, y1 = bounds
    figure, axes = plt.subplots(figsize=(7, 5.5))
    if function is not None:
        from matplotlib.colors import LogNorm

        grid_x, grid_y = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
        values = np.asarray(function(np.stack([grid_x, grid_y], axis=-1)), dtype=float)
        low, high = np.nanmin(values), np.nanmax(values)
        shifted = values - low + 1e-3 * (high - low + 1e-12)
        levels = np.logspace(np.log10(np.nanmin(shifted)), np.log10(np.nanmax(shifted)), 25)
        axes.contourf(grid_x, grid_y, shifted, levels=levels, norm=LogNorm(), cmap="Greys",
                      alpha=0.55)
        axes.contour(grid_x, grid_y, shifted, levels=levels, norm=LogNorm(), colors="0.5",
                     linewidths=0.4)
    palette = palette or colours(list(trajectories))
    for name in sorted(trajectories):
        for index, run in enumerate(trajectories[name]):
            if not run.points:
                continue
            px = [p[0] for p in run.points]
            py = [p[1] for p in run.points]
            label = (labels or {}).get(name, name) if index == 0 else None
            axes.plot(px, py, "-", color=palette[name], lw=1.4, label=label, alpha=0.9)
            axes.plot(px[-1:], py[-1:], "o", color=palette[name], ms=4)
    if all_points:
        axes.plot([all_points[0][0]], [all_points[0][1]], "s", color="black", ms=5,
                  label="start")
    if minimum is not None:
        axes.plot([minimum[0]], [minimum[1]], "*", color="gold", mec="black", ms=12,
                  label="minimum")
    axes.set_xlim(x0, x1)
    axes.set_ylim(y0, y1)
    axes.set_xlabel("x1")
    axes.set_ylabel("x2")
    axes.set_title(title or "optimizer paths over the loss contours")
    axes.legend(fontsize=8, loc="best")
    return _save(figure, path)


def _padded(low: float, high: float) -> tuple[float, float]:
    span = max(high - low, 1e-3)
    return low - 0.15 * span, high + 0.15 * span


def plot_performance_profile(
    costs: Mapping[str, Mapping[str, float | None]],
    path: str | Path,
    cost_name: str = "steps to target",
) -> Path:
    """Dolan-Moré performance profiles: the fraction of tasks solved within a factor tau."""
    from tuner.advice import performance_profile

    plt = _pyplot()
    ratios = []
    for per in costs.values():
        finite = [c for c in per.values() if c is not None and math.isfinite(c) and c > 0]
        if finite:
            ratios += [c / min(finite) for c in finite]
    largest = max(ratios + [2.0]) * 1.2
    taus = [math.exp(math.log(largest) * i / 399) for i in range(400)]
    profile = performance_profile(costs, taus)
    palette = colours(list(profile))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name in sorted(profile):
        axes.step(taus, profile[name], where="post", color=palette[name], lw=1.8, label=name)
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    axes.set_xscale("log")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlim(1, largest)
    ticks = [t for t in (1, 1.5, 2, 3, 5, 10, 20, 50, 100, 1000) if t <= largest]
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel(f"tau: within this factor of the best {cost_name}")
    axes.set_ylabel("fraction of tasks")
    axes.set_title(f"performance profile over {len(costs)} task(s) ({cost_name}, tuned)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


# -- what the plots need, read from the store (tuner.store.queries) -----------------------------


def lr_points(store: Store, scope: Scope) -> dict[str, list[LrPoint]]:
    """Every configuration of every optimizer within ``scope`` (a ranking's task and protocol):
    lr, mean, std over seeds, divergence.

    Read from ``tuner_config_stats`` (one row per configuration); configurations with only
    pruned or failed runs have nothing to plot and are left out.
    """
    from tuner.store.queries import lr_results

    found: dict[str, list[LrPoint]] = {}
    for result in lr_results(store, scope):
        if result.mean is None and not result.diverged:
            continue
        found.setdefault(result.optimizer, []).append(
            LrPoint(lr=result.lr, mean=result.mean, std=result.std, seeds=result.seeds,
                    diverged=bool(result.diverged))
        )
    return found


def best_config_curves(store: Store, ranking: TaskRanking) -> dict[str, list[SeedCurve]]:
    """The curves of the complete seeds of each optimizer's best configuration."""
    from tuner.store.queries import best_config_curves as stored_curves

    return {
        optimizer: [SeedCurve(curve["steps"], curve["values"]) for curve in curves]
        for optimizer, curves in stored_curves(store, ranking).items()
    }


def stored_trajectories(
    store: Store, ranking: TaskRanking, seeds: int = 1
) -> tuple[dict[str, list[Trajectory]], list[str]]:
    """The stored 2-D paths of each optimizer's best configuration, and who has none stored.

    Takes the complete runs of the configuration in seed order (the first ``seeds`` of them)
    and reads their ``trajectory`` column; nothing is trained. Returns the paths by optimizer
    and, in ranking order, the optimizers whose chosen runs carry no path (runs recorded before
    the store kept paths). A path is cut at its first non-finite point (stored as null).
    """
    from tuner.store.queries import config_trajectories

    paths: dict[str, list[Trajectory]] = {}
    missing: list[str] = []
    for standing in ranking.optimizers:
        if not standing.config_hash or standing.mean is None:
            continue
        rows = config_trajectories(
            store, ranking.scope, standing.optimizer, standing.config_hash, seeds
        )
        for seed, stored in rows:
            points = _finite_prefix(stored or [])
            if points:
                paths.setdefault(standing.optimizer, []).append(Trajectory(points, seed))
        if rows and standing.optimizer not in paths:
            missing.append(standing.optimizer)
    return paths, missing


def _finite_prefix(stored: Sequence[Any]) -> list[tuple[float, float]]:
    """Stored ``[x, y]`` pairs as points, up to the first one with a missing coordinate."""
    points: list[tuple[float, float]] = []
    for pair in stored:
        if len(pair) != 2 or any(
            not isinstance(v, (int, float)) or not math.isfinite(v) for v in pair
        ):
            break
        points.append((float(pair[0]), float(pair[1])))
    return points


# -- the report --------------------------------------------------------------------------------


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    directory: Path
    index: Path
    images: list[Path] = field(default_factory=list)


def _installed_plane_task(task: str) -> Any | None:
    """The task's plugin, if installed, for the loss contours under its 2-D paths (the only
    thing in a report that the store cannot give); None when it cannot be loaded here."""
    try:
        from tuner.plugin.registry import get_registry

        return get_registry().task(task)
    except TunerError:
        return None


def _numpy_function(task_plugin: Any) -> Callable[[Any], Any] | None:
    """The task's 2-D function on numpy points, through its ``function`` on torch tensors."""
    function = getattr(task_plugin, "function", None)
    if function is None:
        return None

    def evaluate(points: Any) -> Any:
        import torch

        with torch.no_grad():
            return function(torch.as_tensor(points, dtype=torch.float64)).numpy()

    return evaluate


def write_report(
    task: str,
    out: str | Path,
    db: str | Store | None = None,
    tolerance: str | None = None,
    profile_tasks: Sequence[str] | None = None,
) -> Report:
    """Write the PNG plots and ``index.html`` for ``task`` into the folder ``out``.

    Plots: lr sensitivity per optimizer, learning curves of each best configuration, the
    expected best after k trials of tuning, the stored 2-D paths (tasks whose runs record one),
    and the performance profile over every task in the store (or ``profile_tasks``); an
    optimizer has one colour in all of the task's plots. Everything is read from the store,
    opened read-only; only the loss contours under the 2-D paths need the task's plugin, and are
    left out (with a note) where it is not installed.
    """
    from tuner.advice import advise, compare, open_for_reading
    from tuner.store.queries import task_has_paths

    store, opened = open_for_reading(db)
    try:
        advice = advise(task, db=store, tolerance=tolerance)
        ranking = advice.ranking
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        sections: list[tuple[str, str, Path]] = []
        notes: list[str] = []
        points = lr_points(store, ranking.scope)
        palette = colours(sorted({s.optimizer for s in ranking.optimizers} | set(points)))

        sensitivity = plot_lr_sensitivity(
            points, ranking.metric, ranking.direction,
            directory / "lr_sensitivity.png",
            good_lr={s.optimizer: s.good_lr for s in ranking.optimizers},
            best_lr={s.optimizer: s.lr for s in ranking.optimizers},
            title=f"{task}: final {ranking.metric} against learning rate "
            f"(shaded: good-lr interval, tolerance {ranking.tolerance})",
            palette=palette,
            lr_meanings={s.optimizer: s.lr_meaning for s in ranking.optimizers},
        )
        notes.extend(f"lr: {note}." for note in ranking.lr_notes)
        sections.append((
            "Learning-rate sensitivity",
            "Each dot is one configuration (mean over its seeds, bar: ± one standard deviation); "
            "the line and band follow the best configuration per quarter decade of lr. The "
            "shaded span is the good-lr interval: how forgiving the optimizer is. Crosses are "
            "configurations that diverged.",
            sensitivity,
        ))

        curves = best_config_curves(store, ranking)
        if curves:
            labels = {
                s.optimizer: f"{s.optimizer} (lr {s.lr:.2g})" for s in ranking.optimizers
                if s.lr is not None
            }
            learning = plot_learning_curves(
                curves, ranking.metric, directory / "learning_curves.png",
                target=ranking.target,
                log_y=ranking.direction == "minimize" and _all_positive(curves),
                labels=labels,
                title=f"{task}: learning curves of each optimizer's best configuration",
                palette=palette,
            )
            sections.append((
                "Learning curves",
                "Mean over the seeds of each optimizer's best configuration; the band spans the "
                "seeds (min to max). The dotted line is the task's target.",
                learning,
            ))

        budgets = _budget_section(store, ranking, directory, palette)
        if budgets is not None:
            sections.append(budgets)

        if ranking.kind == "analytic" or task_has_paths(store, task):
            section, note = _paths_section(store, ranking, directory, palette)
            if section is not None:
                sections.append(section)
            elif note:
                notes.append(note)

        across = compare(profile_tasks, db=store)
        costs = across.costs
        if any(c is not None for per in costs.values() for c in per.values()):
            profile = plot_performance_profile(costs, directory / "performance_profile.png")
            sections.append((
                "Performance profile",
                "Dolan-Moré profile over the tasks in the store: for each optimizer, the fraction "
                "of tasks on which its tuned steps-to-target is within a factor tau of the "
                "fastest optimizer's. Higher and further left is better; the value at tau = 1 is "
                "the share of tasks it was fastest on.",
                profile,
            ))
        display = store.display_url
    finally:
        if opened:
            store.dispose()

    index = directory / "index.html"
    index.write_text(_html(advice, sections, display, notes, _across_tasks_html(across)),
                     encoding="utf-8")
    return Report(directory=directory, index=index, images=[path for _, _, path in sections])


def _budget_section(
    store: Store, ranking: TaskRanking, directory: Path, palette: Mapping[str, Any]
) -> tuple[str, str, Path] | None:
    """The "expected best after k trials" section (None when no optimizer has a result)."""
    from tuner.advice.curves import curves_of

    curves = curves_of(ranking, store)
    if not curves:
        return None
    figure = plot_budget_curves(
        curves, ranking.metric, ranking.direction, directory / "budget_curves.png",
        title=f"{ranking.task}: expected best {ranking.metric} after k trials of tuning",
        palette=palette,
    )
    interval = (
        "The band is the 5%-95% interval over resamples that count both the seeds and which "
        "configurations were drawn."
        if all(curve.seed_noise for curve in curves.values()) else
        "The band is the 5%-95% interval over resamples of which configurations were drawn; "
        "with one seed per configuration the seed noise is unknown, so it is left out."
    )
    caption = (
        f"Each optimizer's expected best {ranking.metric} after k trials of tuning, for k from "
        "1 to the trials it was measured with: the best of k configurations drawn at random "
        "from those its tuning made (a pruned or diverged one counts as its worst result). "
        "That is what k trials of random search give; under TPE, whose later trials follow "
        f"the earlier ones, it is the random-search equivalent. {interval} The ranking "
        f"compares the optimizers at {ranking.trials_compared} "
        f"trial{'s' if ranking.trials_compared != 1 else ''}."
    )
    return "Expected best after k trials", caption, figure


def _paths_section(
    store: Store, ranking: TaskRanking, directory: Path, palette: Mapping[str, Any]
) -> tuple[tuple[str, str, Path] | None, str]:
    """The path plot's section (or None) and what to say about runs without a stored path."""
    paths, pathless = stored_trajectories(store, ranking)
    left_out = ""
    if pathless:
        one = len(pathless) == 1
        left_out = (
            f"No stored path for {', '.join(pathless)}: "
            f"{'its run was' if one else 'their runs were'} recorded before the store "
            f"kept paths, so {'it is' if one else 'they are'} left out of the path plot."
        )
    if not paths:
        return None, left_out
    plugin = _installed_plane_task(ranking.task)
    function = _numpy_function(plugin) if plugin is not None else None
    minimum = getattr(plugin, "minimum", None)
    contour = plot_trajectories(
        function, paths, directory / "trajectories.png",
        minimum=tuple(minimum) if minimum is not None else None,
        title=f"{ranking.task}: paths of each optimizer's best configuration",
        labels={s.optimizer: f"{s.optimizer} (lr {s.lr:.2g})"
                for s in ranking.optimizers if s.lr is not None},
        palette=palette,
    )
    caption = (
        "Each optimizer's best configuration (the path its first seed's run recorded), "
        "started from the task's start point (square); dots mark where each path ended."
    )
    if function is None:
        caption += (" The loss contours are left out: they need the task's plugin, which is "
                    "not installed here.")
    if left_out:
        caption += f" {left_out}"
    title = "Paths over the loss contours" if function is not None else "Paths in the plane"
    return (title, caption, contour), ""


def _all_positive(curves: Mapping[str, Sequence[SeedCurve]]) -> bool:
    values = [v for seeds in curves.values() for c in seeds for v in c.values if v is not None]
    return bool(values) and min(values) > 0


def _html(
    advice: Any, sections: Sequence[tuple[str, str, Path]], db: str, notes: Sequence[str] = (),
    across: str = "",
) -> str:
    from tuner.advice import format_lr, format_metric, format_spread

    ranking = advice.ranking
    metric = ranking.metric
    escape = html.escape
    rows = []
    for s in ranking.optimizers:
        interval = f"{format_lr(s.good_lr[0])} .. {format_lr(s.good_lr[1])}" if s.good_lr else "-"
        tied = {True: "yes", False: "no", None: "?"}[s.tied_with_winner]
        memory = f"{s.state_multiple:.2g}n" if s.state_multiple is not None else "-"
        ttt = f"{s.steps_to_target:.0f} ({s.reached_target}/{s.seeds})" if (
            s.steps_to_target is not None) else "-"
        gap = f"{format_spread(s.gap, metric)}" if s.gap is not None else "-"
        cells = [
            str(s.rank), s.optimizer, format_metric(s.mean, metric),
            format_spread(s.std, metric), str(s.seeds), format_lr(s.lr), interval,
            s.lr_ratio.factor_text() if s.lr_ratio is not None else "-",
            str(s.trials), f"{s.diverged}/{s.pruned}", ttt, memory, gap,
            "winner" if s.rank == 1 else tied,
            f"{s.p_best:.2f}" if s.p_best is not None else "-", "yes" if s.pareto else "no",
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    header = [
        "rank", "optimizer", metric, "std", "seeds", "best lr", "good lr", "lr vs #1", "trials",
        "diverged/pruned runs", "steps to target", "state", "gap", "tied", "P(best)", "Pareto",
    ]
    notes = [*notes, *_defaults_notes(advice, metric)]
    remarks = "\n".join(f'<p class="note">{escape(note)}</p>' for note in notes)
    figures = "\n".join(
        f'<section><h2>{escape(title)}</h2><p>{escape(caption)}</p>'
        f'<img src="{escape(path.name)}" alt="{escape(title)}"></section>'
        for title, caption, path in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tuner report: {escape(ranking.task)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
th:nth-child(2), td:nth-child(2) {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
.advice {{ font-size: 1.15em; background: #f4f7fb; padding: 0.8em 1em; border-radius: 6px; }}
.small {{ color: #666; font-size: 0.85em; }}
.note {{ color: #8a5a00; }}
</style>
</head>
<body>
<h1>{escape(ranking.task)}: which optimizer, which learning rate</h1>
<p class="advice">{escape(advice.text)}</p>
<p class="small">Metric: {escape(metric)} ({escape(ranking.direction)}); target
{escape(str(ranking.target))}; tolerance {escape(str(ranking.tolerance))}; {ranking.studies}
stud{"y" if ranking.studies == 1 else "ies"} in {escape(db)}.</p>
<table>
<tr>{"".join(f"<th>{escape(h)}</th>" for h in header)}</tr>
{chr(10).join(rows)}
</table>
{remarks}
{figures}
{across}
</body>
</html>
"""


def _across_tasks_html(comparison: Any) -> str:
    """The "Across tasks" section: per optimizer its mean rank over the tasks it ran on, its
    performance profile at a few factors, and, Crowded Valley's question, how often it tuned
    beats the best of the optimizers at their defaults."""
    from tuner.advice.comparison import PROFILE_TAUS

    escape = html.escape
    against = {row.optimizer: row for row in comparison.tuned_against_defaults}
    header = ["optimizer", "mean rank", "tasks", "wins",
              *[f"steps within {tau:g}x of the fastest" for tau in PROFILE_TAUS],
              "tuned beats the best default", "mean gain"]
    rows = []
    for rank in comparison.rankings:
        row = against.get(rank.optimizer)
        cells = [
            rank.optimizer, f"{rank.mean_rank:.2f}", str(rank.tasks), str(rank.wins),
            *[f"{share:.2f}" for share in comparison.profile.get(rank.optimizer, [])],
            f"{row.beats} of {row.tasks}" if row is not None else "-",
            f"{row.mean_relative_gain * 100:+.1f}%"
            if row is not None and row.mean_relative_gain is not None else "-",
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    count = len(comparison.tasks)
    return f"""<section><h2>Across tasks</h2>
<p>Every task in the store ({count} task{"" if count == 1 else "s"}): each optimizer's mean rank by
tuned result over the tasks it ran on (exact ties share their places), the share of all tasks on
which its tuned steps to target is within a factor of the fastest optimizer's (the performance
profile), and how often it, tuned with K configurations, beats the best of the K optimizers at
their defaults (Crowded Valley's question; the mean gain is relative to that default).</p>
<table>
<tr>{"".join(f"<th>{escape(h)}</th>" for h in header)}</tr>
{chr(10).join(rows)}
</table>
<p class="small">Best untuned default within tolerance of the tuned best on
{comparison.defaults_within_tolerance} of {comparison.defaults_tasks} task(s).</p></section>"""


def _defaults_notes(advice: Any, metric: str) -> list[str]:
    """One line per optimizer: its default's result against its tuned best."""
    from tuner.advice import format_metric

    found = (advice.defaults_vs_tuning or {}).get("defaults", {})
    lines = []
    for optimizer, entry in sorted(found.items()):
        default = ("diverged" if entry["diverged"]
                   else format_metric(entry["default"], metric))
        lines.append(f"Defaults against tuning: {optimizer} at its default {default}, tuned "
                     f"{format_metric(entry['tuned'], metric)}.")
    return lines


class ReportError(TunerError):
    """The report cannot be written as asked."""
