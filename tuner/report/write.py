"""``tuner report``: a folder with one PNG per figure and an ``index.html`` that shows them beside
the ranking, what a person opens to see which optimizer and which learning rate, and why.

:func:`write_report` reads the store (opened read-only), draws each figure with its module
(:mod:`~tuner.report.lr_sensitivity`, :mod:`~tuner.report.learning_curves`,
:mod:`~tuner.report.budget_curves`, :mod:`~tuner.report.trajectories`,
:mod:`~tuner.report.performance_profile`) and writes the page (:mod:`~tuner.report.page`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.report.budget_curves import plot_budget_curves
from tuner.report.drawing import colours
from tuner.report.learning_curves import SeedCurve, plot_learning_curves
from tuner.report.lr_sensitivity import plot_lr_sensitivity
from tuner.report.page import Section, write_index
from tuner.report.performance_profile import plot_performance_profile
from tuner.report.stored import best_config_curves, lr_points, stored_trajectories
from tuner.report.trajectories import TrajectoryPanel, plane_function, plot_trajectories

if TYPE_CHECKING:
    from tuner.advice import TaskRanking
    from tuner.store import Store


class ReportError(TunerError):
    """The report cannot be written as asked."""


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    directory: Path
    index: Path
    images: list[Path] = field(default_factory=list)


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
        sections: list[Section] = []
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
        sections.append(Section(
            "Learning-rate sensitivity",
            "Each dot is one configuration (mean over its seeds, bar: ± one standard deviation); "
            "the line and band follow the best configuration per quarter decade of lr. The "
            "shaded span is the good-lr interval: how forgiving the optimizer is. Crosses are "
            "configurations that diverged.",
            sensitivity,
        ))

        curves = best_config_curves(store, ranking)
        if curves:
            learning = plot_learning_curves(
                curves, ranking.metric, directory / "learning_curves.png",
                target=ranking.target,
                log_y=ranking.direction == "minimize" and _all_positive(curves),
                labels=_lr_labels(ranking),
                title=f"{task}: learning curves of each optimizer's best configuration",
                palette=palette,
            )
            sections.append(Section(
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
            sections.append(Section(
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

    index = write_index(directory, advice, sections, display, notes, across)
    return Report(directory=directory, index=index,
                  images=[section.image for section in sections])


def _budget_section(
    store: Store, ranking: TaskRanking, directory: Path, palette: Mapping[str, Any]
) -> Section | None:
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
    return Section("Expected best after k trials", caption, figure)


def _paths_section(
    store: Store, ranking: TaskRanking, directory: Path, palette: Mapping[str, Any]
) -> tuple[Section | None, str]:
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
    plugin = _installed_task(ranking.task)
    function = plane_function(plugin) if plugin is not None else None
    minimum = getattr(plugin, "minimum", None)
    figure = plot_trajectories(
        [TrajectoryPanel(f"{ranking.task}: paths of each optimizer's best configuration",
                         paths)],
        directory / "trajectories.png", function=function,
        minimum=tuple(minimum) if minimum is not None else None,
        labels=_lr_labels(ranking), palette=palette,
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
    return Section(title, caption, figure), ""


def _installed_task(task: str) -> Any | None:
    """The task's plugin, if installed, for the loss contours under its 2-D paths (the only
    thing in a report that the store cannot give); None when it cannot be loaded here."""
    try:
        from tuner.plugin.registry import get_registry

        return get_registry().task(task)
    except TunerError:
        return None


def _lr_labels(ranking: TaskRanking) -> dict[str, str]:
    """``adam (lr 0.001)``: each optimizer named with its best configuration's lr."""
    return {s.optimizer: f"{s.optimizer} (lr {s.lr:.2g})"
            for s in ranking.optimizers if s.lr is not None}


def _all_positive(curves: Mapping[str, Sequence[SeedCurve]]) -> bool:
    values = [v for seeds in curves.values() for c in seeds for v in c.values if v is not None]
    return bool(values) and min(values) > 0
