"""``tuner plot trajectories|curves``: fixed settings trained once each and drawn side by side.

Training and drawing are :mod:`tuner.report.plots`; this module reads the flags and prints what
was drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from tuner.commands import _task_help as task_help
from tuner.commands._output import output_options, print_json, print_table


@click.group(name="plot")
def plot() -> None:
    """Figures of fixed settings, without a study: one panel per --run."""


def _plot_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--task", "task_name", required=True, help=task_help.TO_TRAIN),
        click.option("--run", "runs", multiple=True, required=True,
                     metavar="OPTIMIZER[:NAME=VALUE,...]",
                     help="A setting to train and draw, e.g. --run momentum:lr=0.01 "
                          "(repeatable; unnamed values take their defaults)."),
        click.option("--out", type=click.Path(dir_okay=False), default=None,
                     help="The PNG to write (default: <kind>-<task>.png here)."),
        click.option("--seed", default=0, show_default=True,
                     help="Seed of data split, weights and batch order."),
        click.option("--budget", type=int, default=None,
                     help="Optimizer steps per run (default: the task's)."),
        click.option("--eval-every", type=int, default=None,
                     help="Steps between evaluations (points of the curves)."),
        output_options,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _report(figure: Any, as_json: bool) -> None:
    if as_json:
        print_json(figure.to_dict())
        return
    print_table(
        ([p.setting.label, p.result.status, p.final_metric, p.result.steps,
          p.result.function_evals, p.result.gradient_evals] for p in figure.panels),
        ["setting", "status", "final", "steps", "function evals", "gradient evals"],
    )
    click.echo(f"Wrote {figure.path}")


def _options(budget: int | None, eval_every: int | None) -> dict[str, Any]:
    return {name: value for name, value in
            (("budget", budget), ("eval_every", eval_every)) if value is not None}


@plot.command(name="trajectories")
@_plot_options
def trajectories_command(
    task_name: str, runs: tuple[str, ...], out: str | None, seed: int, budget: int | None,
    eval_every: int | None, as_json: bool,
) -> None:
    """Each setting's path over the contours of a 2-D task, one panel each:

        tuner plot trajectories --task quadratic --run sgd:lr=0.1 --run sgd:lr=0.01
        --run momentum:lr=0.01 --run nesterov:lr=0.01 --run adagrad:lr=0.1
        --run rmsprop:lr=0.1,alpha=0.9 --run adam:lr=0.1
    """
    from tuner.report.plots import plot_setting_trajectories

    figure = plot_setting_trajectories(
        task_name, runs, out or f"trajectories-{task_name}.png", seed,
        **_options(budget, eval_every),
    )
    _report(figure, as_json)


@plot.command(name="curves")
@_plot_options
def curves_command(
    task_name: str, runs: tuple[str, ...], out: str | None, seed: int, budget: int | None,
    eval_every: int | None, as_json: bool,
) -> None:
    """Each setting's learning curve (metric and training loss), one panel each:

        tuner plot curves --task logreg --run bfgs --run cg --run adam:lr=0.01
    """
    from tuner.report.plots import plot_setting_curves

    figure = plot_setting_curves(task_name, runs, out or f"curves-{task_name}.png", seed,
                                 **_options(budget, eval_every))
    _report(figure, as_json)
