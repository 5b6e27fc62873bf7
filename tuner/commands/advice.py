"""``tuner best``, ``advise``, ``compare``, ``lr-find``, ``report``: advice read from the store.

Every number comes from the runs in the store (all studies of a task); the definitions of
"configuration", "good-lr interval", "tolerance" and "tied within noise" are in
:mod:`tuner.advice`.
"""

from __future__ import annotations

import click

from tuner.commands import _task_help as task_help
from tuner.commands._output import output_options, print_json, print_table
from tuner.commands.db import db_option

TOLERANCE_HELP = (
    "How close to the best counts as equally good: 2% (relative, the default) or an absolute "
    "number in the metric's units such as 0.05 (the default for bpc metrics)."
)


WHERE_HELP = (
    "Only runs trained with this training option: a value (--where batch_size=16) or a range "
    "of numbers, both ends included (--where batch_size=16:64); repeatable."
)


def tolerance_option(function):
    """Add ``--tolerance`` to a command."""
    return click.option("--tolerance", default=None, metavar="TOL", help=TOLERANCE_HELP)(function)


def budget_option(function):
    """Add ``--budget`` (which protocol is ranked) to a command."""
    return click.option(
        "--budget", type=click.IntRange(min=1), default=None, metavar="STEPS",
        help="Rank the runs trained with this budget (default: the protocol with the most "
        "observations; the output names the others).",
    )(function)


def trials_budget_option(function):
    """Add ``--trials-budget`` (how many trials per optimizer to compare at)."""
    return click.option(
        "--trials-budget", type=click.IntRange(min=1), default=None, metavar="K",
        help="Rank by the expected best result after K trials of tuning (default: the fewest "
        "trials any optimizer has, so more trials favour no one).",
    )(function)


def _lr_range(standing) -> str:
    from tuner.advice import format_lr

    if not standing.good_lr:
        return "-"
    low, high = standing.good_lr
    return format_lr(low) if low == high else f"{format_lr(low)}..{format_lr(high)}"


@click.command(name="best")
@click.option("--task", required=True, help=task_help.IN_STORE)
@click.option("--where", "where", multiple=True, metavar="OPTION=VALUE|LOW:HIGH",
              help=WHERE_HELP)
@click.option(
    "--importance", "with_importance", is_flag=True,
    help="Also say which hyperparameters matter, per optimizer (a functional-ANOVA estimate "
    "over the stored configurations).",
)
@budget_option
@trials_budget_option
@tolerance_option
@db_option
@output_options
def best_command(
    task: str, where: tuple[str, ...], with_importance: bool, budget: int | None,
    trials_budget: int | None, tolerance: str | None, db: str | None, as_json: bool,
) -> None:
    """Optimizers ranked on a task, each with its best configuration and how forgiving it is.

    Built from every study of the task in the store, comparing only configurations trained
    under one protocol (budget and fixed training options; --budget picks another); a
    configuration is its hyperparameters plus the training options that change the result.
    Optimizers are ranked by their expected best result after the same number of trials (the
    fewest any has, or --trials-budget). Per optimizer: the best configuration's mean ± std
    over its seeds (± ? with one seed), the configurations behind it, the good-lr interval
    (lrs within the tolerance of that optimizer's best), steps to the task's target, the
    measured optimizer state as a multiple of the parameters' bytes, the gap to the winner,
    the share of repeated studies that would name it (P(best): a resample of both the seeds
    and the configurations tried), the best lr against the winner's with its 5%-95%
    interval, and * for the Pareto set over quality, steps to target and memory. Lrs are
    compared only when both are step sizes: a multiplier (learning-rate-free optimizers) is
    left out, and a convention of its own (Muon's) is named, each in a line below the table.
    """
    from tuner.advice import format_lr, format_metric, format_spread, rank_task
    from tuner.advice.ranking import what_would_settle
    from tuner.advice.recommend import budget_text, too_few_runs_text
    from tuner.study.training import describe_where

    ranking = rank_task(task, db=db, tolerance=tolerance, where=_where(where), budget=budget,
                        trials_budget=trials_budget)
    task = ranking.task
    importance = None
    if with_importance:
        from tuner.advice.importance import importance as importance_of

        measured = [s.optimizer for s in ranking.optimizers if s.mean is not None]
        importance = importance_of(task, measured, db=db, scope=ranking.scope,
                                   where=ranking.where)
    what_would_settle(ranking)
    if as_json:
        data = ranking.to_dict()
        if importance is not None:
            data["importance"] = [found.to_dict() for found in importance]
        print_json(data)
        return
    k = ranking.trials_compared
    compared = trials_budget is not None or any(s.outcomes != k for s in ranking.optimizers)
    rows = []
    for s in ranking.optimizers:
        ttt = "-"
        if s.steps_to_target is not None:
            ttt = f"{s.steps_to_target:.0f} ({s.reached_target}/{s.seeds})"
        gap = "-"
        if s.gap is not None and s.rank > 1:
            gap = format_spread(s.gap, ranking.metric)
            if s.gap_relative is not None:
                gap += f" ({s.gap_relative * 100:.1f}%)"
        if s.rank > 1 and s.tied_with_winner:
            gap += " tied"
        result = "-"
        if s.mean is not None:
            result = (f"{format_metric(s.mean, ranking.metric)} ± "
                      f"{format_spread(s.std, ranking.metric)}")
        rows.append([
            s.rank, s.optimizer + (" *" if s.pareto else ""), result, s.seeds,
            *([format_metric(s.expected, ranking.metric)] if compared else []),
            format_lr(s.lr), _lr_range(s),
            s.lr_ratio.factor_text() if s.lr_ratio is not None else "-", s.trials,
            f"{s.diverged}/{s.runs}", ttt,
            f"{s.state_multiple:.2g}n" if s.state_multiple is not None else "-", gap,
            f"{s.p_best:.2f}" if s.p_best is not None else "-",
        ])
    print_table(
        rows,
        ["#", "optimizer", ranking.metric, "seeds",
         *([f"best of {k} trials"] if compared else []), "lr", "good lr", "lr vs #1", "trials",
         "diverged", "steps to target", "state", "gap to #1", "P(best)"],
        title=(
            f"{task} ({ranking.protocol_text()}): {ranking.metric} ({ranking.direction}), "
            f"tolerance {ranking.tolerance}, "
            + (f"study {ranking.study}" if ranking.study else
               f"{ranking.studies} stud{'y' if ranking.studies == 1 else 'ies'}")
            + (f", runs with {describe_where(ranking.where)}" if ranking.where else "")
        ),
    )
    for note in ranking.lr_notes:
        click.echo(f"lr: {note}.")
    if ranking.other_protocols:
        click.echo(ranking.others_text())
    if ranking.task_problem is not None:
        click.echo(ranking.task_problem[0].upper() + ranking.task_problem[1:] + ".")
    top = ranking.optimizers[0] if ranking.optimizers else None
    if top is not None and top.params:
        click.echo(f"best configuration of {top.optimizer}: {_settings(top.params)}"
                   + (f"; trained with {_training(top.training)}" if top.training else ""))
    certainty = ranking.certainty
    if certainty is not None and not certainty.settled:
        click.echo(too_few_runs_text(certainty))
    if ranking.budget_leaders:
        click.echo(budget_text(ranking.budget_leaders))
    for found in importance or []:
        shares = ", ".join(f"{name} {share * 100:.0f}%" for name, share in found.shares.items())
        click.echo(f"importance: {found.sentence()}" + (f" ({shares})" if shares else ""))


def _where(texts: tuple[str, ...]) -> dict | None:
    """``--where batch_size=16`` / ``--where batch_size=16:64`` flags -> ``{"batch_size": 16}``
    / ``{"batch_size": {"range": [16, 64]}}`` (numbers and booleans typed as the runs record
    them); a name that is no training option is an error."""
    from tuner.study.training import check_where, parse_flag

    if not texts:
        return None
    return check_where(dict(parse_flag(text, "--where", "OPTION=VALUE or OPTION=LOW:HIGH")
                            for text in texts))


def _settings(values: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())


def _training(training: dict) -> str:
    """The training options of a configuration that change its result (budget first)."""
    from tuner.store.config_key import config_key

    changed = config_key({}, training)["training"]
    return _settings({"budget": training.get("budget"), **changed})


@click.command(name="advise")
@click.option("--task", required=True, help=task_help.IN_STORE)
@click.option("--where", "where", multiple=True, metavar="OPTION=VALUE|LOW:HIGH",
              help=WHERE_HELP)
@click.option(
    "--memory-budget", default=None, metavar="Kn",
    help="Only configurations whose measured optimizer state is at most K times the "
    "parameters' bytes (0n, 1n, 2n, 3n).",
)
@click.option(
    "--prefer", default="quality", show_default=True,
    type=click.Choice(["quality", "speed", "memory"]),
    help="Recommend, within the Pareto set over quality, steps to target and memory, the "
    "optimizer best on this.",
)
@click.option(
    "--width", type=click.IntRange(min=1), default=None, metavar="N",
    help="Predict each optimizer's best lr at this model width from the task's studies at "
    "three or more widths (a power law fitted in log-log space).",
)
@budget_option
@trials_budget_option
@tolerance_option
@db_option
@output_options
@click.pass_context
def advise_command(
    ctx: click.Context, task: str, where: tuple[str, ...], memory_budget: str | None,
    prefer: str, width: int | None, budget: int | None, trials_budget: int | None,
    tolerance: str | None, db: str | None, as_json: bool,
) -> None:
    """The recommendation for a task in one or two sentences, with its evidence.

    Says under which protocol (budget, fixed training options) it compares, how sure it is
    (the share of repeated studies that would name the winner: a resample of both the seeds
    and the configurations tried), when the top optimizers are tied, when there are too few
    runs to name a winner and what would settle it, when the answer depends on the tuning
    budget, and how the other optimizers' best lrs compare. A memory budget judges each
    configuration by its measured state; --prefer speed or memory trades quality for the
    other two; --where draws it all from the runs trained with those options
    (batch_size=16:64).

    With --width N: each optimizer's best lr against the model's width over the task's studies
    at different widths (charlm, charlm[width=128], ...), fitted as lr ~ width^b, and the lr it
    predicts at width N with a 5%-95% prediction interval; says when N lies outside the
    measured widths, and when an optimizer has fewer than three widths.
    """
    if width is not None:
        from click.core import ParameterSource

        given = [f"--{name.replace('_', '-')}"
                 for name in ("where", "memory_budget", "prefer", "tolerance", "budget",
                              "trials_budget")
                 if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be combined with --width")
        _advise_width(task, width, db, as_json)
        return
    from tuner.advice import advise

    advice = advise(task, db=db, memory_budget=memory_budget, tolerance=tolerance,
                    prefer=prefer, budget=budget, trials_budget=trials_budget,
                    where=_where(where))
    if as_json:
        print_json(advice.to_dict())
        return
    click.echo(advice.text)


def _advise_width(task: str, width: int, db: str | None, as_json: bool) -> None:
    """``tuner advise --width``: a row per optimizer, then a sentence each."""
    from tuner.advice import format_lr
    from tuner.advice.widths import lr_across_widths

    advice = lr_across_widths(task, width, db=db)
    if as_json:
        print_json(advice.to_dict())
        return
    rows = []
    for fit in advice.fits:
        interval = "-"
        if fit.low is not None and fit.high is not None:
            interval = f"{format_lr(fit.low)}..{format_lr(fit.high)}"
        rows.append([
            fit.optimizer,
            f"{fit.exponent:.2f}" if fit.exponent is not None else "-",
            f"{fit.residual:.2f}" if fit.residual is not None else "-",
            format_lr(fit.predicted_lr), interval,
            ", ".join(f"{w:g}" for w in fit.widths),
        ])
    fixed = ", ".join(f"{k}={v}" for k, v in sorted(advice.fixed.items()))
    print_table(
        rows, ["optimizer", "exponent", "residual", f"lr at {width}", "5%-95%", "widths"],
        title=(f"{advice.task}: best lr ~ width^exponent over {len(advice.tasks)} measured "
               f"width(s)" + (f" ({fixed})" if fixed else "")),
    )
    click.echo(advice.text)
    if advice.unmeasured:
        click.echo(f"recorded without runs yet: {', '.join(advice.unmeasured)}")


@click.command(name="compare")
@click.option("--tasks", default=None, metavar="A,B", help="Tasks to compare on (default: all).")
@budget_option
@tolerance_option
@db_option
@output_options
def compare_command(
    tasks: str | None, budget: int | None, tolerance: str | None, db: str | None,
    as_json: bool,
) -> None:
    """Optimizers across tasks: rank per task, mean rank, wins; speed; how good the defaults are.

    On each task one protocol is ranked (the most measured, or --budget; a task not measured at
    that budget is left out), and a line names each task's protocol when they differ.
    Ranks are by tuned result (exact ties share their places); the mean rank is over the tasks
    an optimizer ran on. "steps <=Nx" is its performance profile: the share of the tasks on
    which its tuned steps to target is within N times the fastest optimizer's. A default is
    an optimizer's recommended configuration (every study's first trial, as the store recorded
    it): one line counts the tasks where the best untuned default came within the tolerance of
    the tuned best, and the Crowded Valley lines put each optimizer tuned with K configurations
    against the best of the K optimizers at their defaults, task by task.
    """
    from tuner.advice import compare
    from tuner.advice.comparison import PROFILE_TAUS

    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    result = compare(names, db=db, tolerance=tolerance, budget=budget)
    if as_json:
        print_json(result.to_dict())
        return
    for task in result.tasks:  # where a task was measured under several protocols: which
        entry = result.per_task[task]
        if entry.get("also_measured"):
            click.echo(f"{task}: ranked under {entry['protocol']}; {entry['also_measured']}")
    columns = ["optimizer", *result.tasks, "mean rank", "wins", "tasks",
               *[f"steps <={tau:g}x" for tau in PROFILE_TAUS]]
    rows = [
        [row.optimizer, *[_rank_text(row.ranks.get(t)) for t in result.tasks],
         f"{row.mean_rank:.2f}", row.wins, row.tasks,
         *[f"{share:.2f}" for share in result.profile.get(row.optimizer, [])]]
        for row in result.rankings
    ]
    print_table(rows, columns, title="rank per task (1 = best tuned result)")
    click.echo(
        f"best untuned default within tolerance of the tuned best on "
        f"{result.defaults_within_tolerance} of {result.defaults_tasks} task(s)"
    )
    for line in crowded_valley_lines(result):
        click.echo(line)


def crowded_valley_lines(result) -> list[str]:
    """One line per optimizer: tuned with K configurations against the best of K defaults."""
    rows = result.tuned_against_defaults
    if not rows:
        return []
    lines = ["one optimizer tuned with K configurations against the best of K optimizers at "
             "their defaults (expected best of K; K: the optimizers with a default):"]
    for row in rows:
        gain = ("" if row.mean_relative_gain is None
                else f", by {row.mean_relative_gain * 100:+.1f}% on average")
        lines.append(f"  {row.optimizer} tuned beats the best default on {row.beats} of "
                     f"{row.tasks} task(s){gain}")
    return lines


def _rank_text(rank: float | None) -> str:
    if rank is None:
        return "-"
    return f"{rank:g}"


@click.command(name="lr-find")
@click.option("--task", required=True, help=task_help.TO_TRAIN)
@click.option("--optimizer", required=True, help="The optimizer to sweep the lr of.")
@click.option("--start", default=1e-7, show_default=True, type=float, help="First lr.")
@click.option("--end", default=10.0, show_default=True, type=float, help="Last lr.")
@click.option("--steps", default=100, show_default=True, type=int, help="Steps of the ramp.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of model and data.")
@click.option(
    "--param", "assignments", multiple=True, metavar="NAME=VALUE",
    help="Fix another hyperparameter (repeatable); the rest take recommended values.",
)
@click.option("--task-param", "task_params", multiple=True, metavar="NAME=VALUE",
              help="A parameter of the task, e.g. --task-param width=256 (repeatable).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--threads", type=int, default=None, metavar="N",
              help="Torch CPU threads (default: as a training run of the task would take).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the plot here.")
@output_options
def lr_find_command(
    task: str, optimizer: str, start: float, end: float, steps: int, seed: int,
    assignments: tuple[str, ...], task_params: tuple[str, ...], device: str,
    threads: int | None, out: str | None, as_json: bool,
) -> None:
    """The learning-rate range test: raise the lr every step, watch the smoothed loss.

    Suggests the lr where the smoothed loss falls fastest (Smith 2017, fastai's lr_find); the
    test stops once the smoothed loss exceeds 4x its best.
    """
    from tuner.plugin.registry import get_registry
    from tuner.task.params import parse_flags
    from tuner.training.lr_find import lr_find

    registry = get_registry()
    params = registry.optimizer(optimizer).space.parse(assignments, owner=optimizer)
    chosen = registry.task(task).with_params(parse_flags(task_params))
    result = lr_find(
        chosen, optimizer, start=start, end=end, steps=steps, params=params, seed=seed,
        device=device, threads=threads,
    )
    if out:
        from tuner.report.lr_find import plot_lr_find

        plot_lr_find(result, out)
    if as_json:
        data = result.to_dict()
        data["plot"] = out
        print_json(data)
        return
    if result.suggested_lr is not None:
        click.echo(f"suggested lr: {result.suggested_lr:.3g} (steepest descent of the loss)")
    else:
        click.echo("no clear steepest descent: widen --start/--end or add --steps")
    if result.min_loss_lr is not None:
        click.echo(f"lowest loss at lr {result.min_loss_lr:.3g} (its tenth: "
                   f"{result.min_loss_lr / 10:.3g})")
    stop = f"diverged at lr {result.diverged_at:.3g}" if result.diverged_at else "ran to the end"
    click.echo(f"{len(result.lrs)} of {steps} steps; {stop}")
    if out:
        click.echo(f"plot: {out}")


@click.command(name="report")
@click.option("--task", required=True, help=task_help.IN_STORE)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@tolerance_option
@db_option
def report_command(task: str, out: str, tolerance: str | None, db: str | None) -> None:
    """Write PNG plots and an index.html to open in a browser.

    lr sensitivity per optimizer, learning curves of each best configuration, 2-D paths over
    the loss contours (quadratic, rosenbrock), and a performance profile across tasks.
    """
    from tuner.report.write import write_report

    report = write_report(task, out, db=db, tolerance=tolerance)
    click.echo(f"wrote {report.index} and {len(report.images)} plot(s)")
