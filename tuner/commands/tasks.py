"""``tuner tasks list|show`` and ``tuner train``: the reference tasks, and one run on one."""

from __future__ import annotations

import math
from typing import Any

import click

from tuner.commands import _task_help as task_help
from tuner.commands._output import format_value, output_options, print_json, print_table


@click.group()
def tasks() -> None:
    """The reference tasks optimizers are measured on."""


@tasks.command(name="list")
@output_options
def list_tasks(as_json: bool) -> None:
    """List the registered tasks with their metric, target and budget."""
    from tuner.plugin.registry import get_registry

    found = sorted(get_registry().tasks.values(), key=lambda t: t.name)
    if as_json:
        print_json([_describe(task) for task in found])
        return
    print_table(
        (
            [t.name, t.kind, f"{t.metric} ({_arrow(t.direction)})", t.target, t.budget,
             t.batch_size or "full", _parameters(t) or "-", t.summary]
            for t in found
        ),
        ["name", "kind", "metric", "target", "steps", "batch", "parameters", "summary"],
    )


def _parameters(task) -> str:
    """A task's parameters and their defaults: ``width=128``."""
    return ", ".join(f"{name}={value}" for name, value in task.task_params.items())


@tasks.command(name="show")
@click.argument("name")
@output_options
def show_task(name: str, as_json: bool) -> None:
    """Show one task: its data, metric, target, budget and a configuration known to work.

    NAME is a registered task, or your own as path/to/file.py:NAME or package.module:NAME.
    """
    from tuner.plugin.registry import get_registry

    task = get_registry().task(name)
    described = _describe(task)
    if as_json:
        print_json(described)
        return
    click.echo(f"{task.name}: {task.summary}")
    rows = [
        ["kind", task.kind],
        ["data", task.data],
        ["metric", f"{task.metric} ({task.direction})"],
        ["target", task.target],
        ["budget", f"{task.budget} steps, evaluated every {task.eval_every}"],
        ["batch size", task.batch_size or "full batch"],
        ["parameters", (_parameters(task) + " (--task-param NAME=VALUE)")
         if task.task_params else "none"],
        ["reference", described["reference_text"]],
        ["plugin", f"{task.plugin} {task.version}".strip()],
    ]
    if task.__doc__:
        rows.insert(0, ["about", " ".join(task.__doc__.split())])
    print_table(rows, ["", ""])


def _arrow(direction: str) -> str:
    return "higher is better" if direction == "maximize" else "lower is better"


def _describe(task: Any) -> dict[str, Any]:
    described = task.describe()
    reference = described.get("reference") or {}
    params = reference.get("params") or {}
    described["reference_text"] = (
        f"{reference.get('optimizer', '-')} "
        + (" ".join(f"{k}={format_value(v)}" for k, v in params.items()) or "(defaults)")
    )
    described["plugin"], described["version"] = task.plugin, task.version
    return described


@click.command(name="train")
@click.option("--task", "task_name", required=True, help=task_help.TO_TRAIN)
@click.option("--optimizer", "optimizer_name", required=True,
              help="Optimizer name (see `tuner optimizers list`).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="An optimizer hyperparameter, e.g. --param lr=1e-3 (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed of data split, weights, order.")
@click.option("--schedule", type=click.Choice(
    ["constant", "cosine", "linear", "step", "plateau"]), default="constant",
    show_default=True, help="Learning-rate schedule after warmup.")
@click.option("--warmup", default=0, show_default=True, help="Steps of linear lr warmup.")
@click.option("--budget", type=int, default=None, help="Optimizer steps (default: the task's).")
@click.option("--batch-size", type=int, default=None, help="Batch size (default: the task's).")
@click.option("--eval-every", type=int, default=None, help="Steps between evaluations.")
@click.option("--clip-norm", type=float, default=None, help="Clip the gradient norm to this.")
@click.option("--accumulate", default=1, show_default=True,
              help="Batches whose gradients make one step.")
@click.option("--patience", type=int, default=None,
              help="Early stopping: evaluations without improvement before stopping.")
@click.option("--floor", default=0.0, show_default=True,
              help="Where cosine and linear schedules end, as a fraction of the lr.")
@click.option("--decay-exclude", is_flag=True,
              help="No weight decay on biases and normalisation parameters.")
@click.option("--precision", type=click.Choice(["float32", "float64", "bf16", "fp16"]),
              default="float32", show_default=True, help="Numeric precision of training.")
@click.option("--task-param", "task_params", multiple=True, metavar="NAME=VALUE",
              help="A parameter of the task, e.g. --task-param width=256 (repeatable).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--threads", type=int, default=None, metavar="N",
              help="Torch CPU threads (default: 1 for a small model, more for a large one).")
@output_options
def train_command(
    task_name: str, optimizer_name: str, params: tuple[str, ...], seed: int, schedule: str,
    warmup: int, budget: int | None, batch_size: int | None, eval_every: int | None,
    clip_norm: float | None, accumulate: int, patience: int | None, floor: float,
    decay_exclude: bool, precision: str, task_params: tuple[str, ...], device: str,
    threads: int | None, as_json: bool,
) -> None:
    """Train one task with one optimizer once, and print its curve.

    A first look at a task, or a check of one configuration:

        tuner train --task digits-mlp --optimizer adam --param lr=3e-3 --schedule cosine

    The curve and the result are printed however the run ends; the exit status says how it
    ended:

    \b
    0  the run completed (early stopping included)
    1  nothing was trained: an unknown name or an invalid value (one line says which)
    2  a usage error: an unknown or missing option
    3  the run failed: an exception in the task's or the optimizer's code (printed
       with the file and line where it happened in the task's code)
    4  the run diverged: its loss blew up or became NaN
    """
    from tuner.plugin.registry import get_registry
    from tuner.task.params import parse_flags
    from tuner.training.loop import train

    registry = get_registry()
    task = registry.task(task_name).with_params(parse_flags(task_params))
    plugin = registry.optimizer(optimizer_name)
    values = plugin.space.parse(params, owner=plugin.name)
    result = train(
        task, plugin, values, seed, schedule=schedule, warmup=warmup, budget=budget,
        batch_size=batch_size, eval_every=eval_every, clip_norm=clip_norm,
        accumulate=accumulate, patience=patience, floor=floor, decay_exclude=decay_exclude,
        precision=precision, device=device, threads=threads,
    )
    if as_json:
        print_json(result.to_dict())
        _exit_unless_complete(result)
        return
    hyper = " ".join(f"{k}={format_value(v)}" for k, v in result.params.items())
    click.echo(f"{task.name} with {plugin.name} ({hyper}), seed {seed}, on {result.device}")
    print_table(
        ([p.step, p.train_loss, p.metric, p.lr, p.seconds] for p in result.curve),
        ["step", "train loss", task.metric, "lr", "seconds"],
    )
    summary = (
        f"{result.status} after {result.steps} steps in {result.wall_seconds:.2f} s: "
        f"final {task.metric} {format_value(result.final_metric)}, "
        f"best {format_value(result.best_metric)}"
    )
    if result.steps_to_target is not None:
        summary += (
            f"; target {format_value(task.target)} reached at step {result.steps_to_target} "
            f"({result.seconds_to_target:.2f} s)"
        )
    elif math.isfinite(task.target):  # a task without a target (nan) has none to reach
        summary += f"; target {format_value(task.target)} not reached"
    if result.stopped_early:
        summary += " (stopped early)"
    click.echo(summary)
    _exit_unless_complete(result)


EXIT_FAILED = 3
"""``tuner train``'s exit status when the run failed (an exception in training)."""

EXIT_DIVERGED = 4
"""``tuner train``'s exit status when the run diverged."""


def _exit_unless_complete(result: Any) -> None:
    """One line on standard error and a non-zero exit for a run that failed or diverged."""
    if result.status == "failed":
        click.echo(f"Error: the run failed: {result.error or 'no error was recorded'}", err=True)
        raise SystemExit(EXIT_FAILED)
    if result.status == "diverged":
        click.echo(f"Error: the run diverged at step {result.steps}: its loss blew up or "
                   "became NaN (a smaller learning rate may help)", err=True)
        raise SystemExit(EXIT_DIVERGED)
