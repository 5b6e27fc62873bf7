"""The report's page: ``index.html`` and the stylesheet beside it, written into a report's folder.

The page is ``templates/report.html`` over the layout the server's pages use
(:mod:`tuner.report.templating`), so a report looks like ``tuner serve``. This module turns the
advice into text (the ranking table, the across-tasks table, the notes); the template lays it
out and escapes every value.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.report.templating import STYLESHEET, environment

if TYPE_CHECKING:
    import jinja2

    from tuner.advice import TaskRanking
    from tuner.advice.comparison import Comparison
    from tuner.advice.recommend import Advice

RANKING_HEADER = [
    "rank", "optimizer", "{metric}", "std", "seeds", "best lr", "good lr", "lr vs #1", "trials",
    "diverged/pruned runs", "steps to target", "state", "gap", "tied", "P(best)", "Pareto",
]
"""The ranking table's columns (``{metric}``: the task's metric)."""


@dataclass
class Section:
    """One figure of the report: its heading, its caption and the PNG it shows."""

    title: str
    caption: str
    image: Path


@dataclass
class Table:
    """A table as the page shows it: a header and rows of text."""

    header: list[str]
    rows: list[list[str]]


def write_index(
    directory: Path, advice: Advice, sections: Sequence[Section], store: str,
    notes: Sequence[str], comparison: Comparison,
) -> Path:
    """Write ``index.html`` (and the stylesheet it links) into ``directory``; the PNGs of
    ``sections`` are already there. ``store`` is the store's address as it may be shown."""
    ranking = advice.ranking
    page = _templates().get_template("report.html").render(
        ranking=ranking, advice=advice.text, store=store,
        standings=_ranking_table(ranking),
        notes=[*notes, *_defaults_notes(advice)],
        sections=sections,
        across=_across(comparison),
    )
    shutil.copyfile(STYLESHEET, directory / STYLESHEET.name)
    index = directory / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


@functools.lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The shared templates, the stylesheet found beside the page."""
    return environment(STYLESHEET.name)


def _ranking_table(ranking: TaskRanking) -> Table:
    """One row per optimizer of the ranking, as the report's first table shows it."""
    from tuner.advice import format_lr, format_metric, format_spread

    metric = ranking.metric
    rows = []
    for s in ranking.optimizers:
        interval = f"{format_lr(s.good_lr[0])} .. {format_lr(s.good_lr[1])}" if s.good_lr else "-"
        tied = {True: "yes", False: "no", None: "?"}[s.tied_with_winner]
        memory = f"{s.state_multiple:.2g}n" if s.state_multiple is not None else "-"
        ttt = f"{s.steps_to_target:.0f} ({s.reached_target}/{s.seeds})" if (
            s.steps_to_target is not None) else "-"
        gap = f"{format_spread(s.gap, metric)}" if s.gap is not None else "-"
        rows.append([
            str(s.rank), s.optimizer, format_metric(s.mean, metric),
            format_spread(s.std, metric), str(s.seeds), format_lr(s.lr), interval,
            s.lr_ratio.factor_text() if s.lr_ratio is not None else "-",
            str(s.trials), f"{s.diverged}/{s.pruned}", ttt, memory, gap,
            "winner" if s.rank == 1 else tied,
            f"{s.p_best:.2f}" if s.p_best is not None else "-", "yes" if s.pareto else "no",
        ])
    return Table([name.format(metric=metric) for name in RANKING_HEADER], rows)


def _defaults_notes(advice: Advice) -> list[str]:
    """One line per optimizer: its default's result against its tuned best."""
    from tuner.advice import format_metric

    metric = advice.ranking.metric
    found = (advice.defaults_vs_tuning or {}).get("defaults", {})
    lines = []
    for optimizer, entry in sorted(found.items()):
        default = ("diverged" if entry["diverged"]
                   else format_metric(entry["default"], metric))
        lines.append(f"Defaults against tuning: {optimizer} at its default {default}, tuned "
                     f"{format_metric(entry['tuned'], metric)}.")
    return lines


def _across(comparison: Comparison) -> dict[str, Any]:
    """The "Across tasks" section: per optimizer its mean rank over the tasks it ran on, its
    performance profile at a few factors, and, Crowded Valley's question, how often it tuned
    beats the best of the optimizers at their defaults."""
    from tuner.advice.comparison import PROFILE_TAUS

    against = {row.optimizer: row for row in comparison.tuned_against_defaults}
    header = ["optimizer", "mean rank", "tasks", "wins",
              *[f"steps within {tau:g}x of the fastest" for tau in PROFILE_TAUS],
              "tuned beats the best default", "mean gain"]
    rows = []
    for rank in comparison.rankings:
        row = against.get(rank.optimizer)
        rows.append([
            rank.optimizer, f"{rank.mean_rank:.2f}", str(rank.tasks), str(rank.wins),
            *[f"{share:.2f}" for share in comparison.profile.get(rank.optimizer, [])],
            f"{row.beats} of {row.tasks}" if row is not None else "-",
            f"{row.mean_relative_gain * 100:+.1f}%"
            if row is not None and row.mean_relative_gain is not None else "-",
        ])
    return {
        "tasks": len(comparison.tasks), "table": Table(header, rows),
        "defaults_within_tolerance": comparison.defaults_within_tolerance,
        "defaults_tasks": comparison.defaults_tasks,
    }
