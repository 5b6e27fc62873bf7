"""``tuner study ...`` and ``tuner worker``: create, run, extend, inspect, export and delete
studies.

A study trains every optimizer under the same budget (N trials x K seeds) on one task. ``tuner
study run NAME --workers W`` runs W local worker processes; ``tuner worker NAME --db URL`` joins
the same study from any host that reaches the database. The database is the only coordinator.
``tuner study extend NAME`` adds trials (and seeds) to a study and runs them.
"""

from __future__ import annotations

import json
from typing import Any

import click

from tuner.commands import _task_help as task_help
from tuner.commands._output import format_value, output_options, print_json, print_table
from tuner.commands.db import db_option


def _grace_option(function: Any) -> Any:
    return click.option(
        "--grace-period", "grace", type=float, default=None, metavar="SECONDS",
        help="How long a silent worker's trial is waited for before it is retried "
        "(default $TUNER_GRACE_SECONDS, else 60).",
    )(function)


def _batch_option(function: Any) -> Any:
    return click.option(
        "--batch", type=int, default=None, metavar="K",
        help="Train up to K trials of one optimizer together, as one vectorised run (each "
        "run as it would be alone; default: the study's batch, else 1).",
    )(function)


def _threads_option(function: Any) -> Any:
    return click.option(
        "--threads", type=int, default=None, metavar="N",
        help="Torch CPU threads of every run (default: the study's threads, else 1 for a "
        "small model and more for a large one, within the worker's share of the cores).",
    )(function)


def _allow_changed_option(function: Any) -> Any:
    return click.option(
        "--allow-changed", is_flag=True,
        help="Run a task given by reference even though its code changed since the study was "
        "created (each run records the hash of the code it ran).",
    )(function)


def _retry_given_up_option(function: Any) -> Any:
    return click.option(
        "--retry-given-up", is_flag=True,
        help="Once the cause is fixed, retry the slots given up after failing again and again "
        "(their failed attempts stay on record).",
    )(function)


def _reopen_given_up(name: str, db: str | None) -> None:
    """Reopen the study's given-up slots and say how many."""
    from tuner.driver.supervision import retry_given_up

    reopened = retry_given_up(db, name)
    if not reopened:
        click.echo(f"Study {name!r} has no given-up slots to retry.")
        return
    click.echo(f"Reopened {len(reopened)} given-up slot(s) of study {name!r} "
               f"({', '.join(reopened)}); their failed attempts stay on record.")


def _check_task_code(name: str, db: str | None, allow_changed: bool) -> None:
    """Refuse, before any worker starts, a study whose task code changed (unless allowed);
    workers spawned by this command inherit the permission through the environment."""
    from tuner.driver.study_task import load_study_task
    from tuner.store import open_store
    from tuner.store.studies import get_study
    from tuner.task.reference import allowing_changed

    click.get_current_context().with_resource(allowing_changed(allow_changed))
    store = open_store(db, create=False, readonly=True)
    try:
        spec = get_study(store, name)
    finally:
        store.dispose()
    if spec.task_ref:
        load_study_task(spec)


@click.group()
def study() -> None:
    """Studies: every optimizer tuned on one task under an equal budget."""


@study.command(name="create")
@click.argument("name", required=False)
@click.option("--from", "from_file", metavar="FILE", help="Read the study from a TOML file; "
              "flags given as well override it.")
@click.option("--task", help=task_help.TO_TRAIN)
@click.option("--optimizers", metavar="A,B,...", help="Comma-separated optimizer names.")
@click.option("--trials", type=int, help="Optuna trials per optimizer (the equal budget).")
@click.option("--seeds", type=int, help="Training runs (seeds) per trial.")
@click.option("--first-seed", type=int, metavar="K", help="The first training seed: each trial "
              "trains on seeds K .. K+seeds-1 (default 0).")
@click.option("--sampler", metavar="tpe|random|qmc|grid", help="Optuna sampler (default tpe).")
@click.option("--pruner", metavar="none|median|hyperband|wilcoxon",
              help="Optuna pruner (default median).")
@click.option("--budget", type=int, metavar="STEPS", help="Optimizer steps per run "
              "(default: the task's).")
@click.option("--schedule", help="Learning-rate schedule of every run (default constant).")
@click.option("--param-range", "ranges", multiple=True, metavar="[OPT.]PARAM=LOW:HIGH",
              help="Replace a parameter's range, for every optimizer that has it or for one.")
@click.option("--train", "training", multiple=True, metavar="OPTION=VALUE|LOW:HIGH|A,B",
              help="A training option, fixed or tuned: --train warmup=100, --train "
              "batch_size=16:256, --train schedule=constant,cosine (repeatable).")
@click.option("--budget-unit", type=click.Choice(["examples", "steps"]), default=None,
              help="With a tuned batch size, what the equal budget counts (default examples).")
@click.option("--task-param", "task_params", multiple=True, metavar="NAME=VALUE",
              help="A parameter of the task, e.g. --task-param width=256 (repeatable).")
@click.option("--seed", type=int, help="Seed of the sampler (default 0).")
@click.option("--warm-start", is_flag=True, help="Start from the store's best known "
              "configurations of this task and narrow each lr range to its good interval.")
@db_option
def create_command(
    name: str | None, from_file: str | None, task: str | None, optimizers: str | None,
    trials: int | None, seeds: int | None, first_seed: int | None, sampler: str | None,
    pruner: str | None, budget: int | None, schedule: str | None, ranges: tuple[str, ...],
    training: tuple[str, ...], budget_unit: str | None, task_params: tuple[str, ...],
    seed: int | None, warm_start: bool, db: str | None,
) -> None:
    """Create a study NAME; everything is checked before anything is written."""
    from tuner.study.spec import load_study_file, parse_range_flag
    from tuner.study.training import parse_flag
    from tuner.task.params import parse_flags

    file_settings = load_study_file(from_file) if from_file else None
    flags = {
        "name": name, "task": task, "optimizers": optimizers, "trials": trials,
        "seeds": seeds, "sampler": sampler, "pruner": pruner, "budget": budget,
        "schedule": schedule, "seed": seed, "ranges": [parse_range_flag(r) for r in ranges],
        "training": dict(parse_flag(t) for t in training), "budget_unit": budget_unit,
        "task_params": parse_flags(task_params), "first_seed": first_seed,
    }
    from tuner.driver.create import create_studies
    from tuner.store import display_url, resolve_url

    specs = create_studies(flags, db, file_settings=file_settings, warm_start=warm_start)
    for spec in specs:
        _say_created(spec, display_url(resolve_url(db)))
    if len(specs) > 1:
        click.echo("Run the sweep with: " + " && ".join(f"tuner study run {s.name}"
                                                        for s in specs))


def _say_created(spec, where: str) -> None:
    click.echo(
        f"Created study {spec.name!r} in {where}: task {spec.task}, "
        f"{len(spec.optimizers)} optimizers x {spec.trials} trials x "
        f"{_seeds_text(spec)} ({spec.sampler} sampler, {spec.pruner} pruner)."
    )
    if spec.fixed:
        click.echo(f"Fixed settings, one trial each: {', '.join(spec.fixed)}.")
    from tuner.driver.create import untried_choices_warning

    warning = untried_choices_warning(spec)
    if warning is not None:
        click.echo(warning, err=True)
    if spec.pruner == "wilcoxon" and spec.seeds < 4:
        click.echo("Note: the wilcoxon pruner compares seeds and cannot prune with fewer than 4.")
    click.echo(f"Run it with: tuner study run {spec.name}")


def _seeds_text(spec) -> str:
    """``3 seeds``, or ``2 seeds (10..11)`` when they do not start at 0."""
    text = f"{spec.seeds} seed" + ("s" if spec.seeds != 1 else "")
    if spec.first_seed:
        text += f" ({spec.seed_list[0]}..{spec.seed_list[-1]})"
    return text


@study.command(name="run")
@click.argument("name")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Local worker processes.")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Start no new trial after this long (running trials finish).")
@_grace_option
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Run the workers as local processes or as Ray tasks.")
@click.option("--address", default=None, metavar="auto|ray://HOST:PORT",
              help="The Ray cluster (--backend ray; default: a local Ray started for the run).")
@click.option("--cpus-per-worker", type=float, default=None, metavar="C",
              help="CPUs each Ray worker asks for (--backend ray; default 1).")
@click.option("--gpus-per-worker", type=float, default=None, metavar="G",
              help="GPUs each Ray worker asks for, fractions allowed (--backend ray).")
@click.option("--gpus", default=None, metavar="0,1|all",
              help="Spread the local workers over these GPUs (several per GPU allowed).")
@_batch_option
@_threads_option
@_allow_changed_option
@_retry_given_up_option
@db_option
def run_command(
    name: str, workers: int, timeout: float | None, grace: float | None, backend: str,
    address: str | None, cpus_per_worker: float | None, gpus_per_worker: float | None,
    gpus: str | None, batch: int | None, threads: int | None, allow_changed: bool,
    retry_given_up: bool, db: str | None,
) -> None:
    """Run a study to the end (or resume it); Ctrl-C stops it cleanly (exit 130).

    Workers are local processes, or Ray tasks with --backend ray (docs/cluster.md)."""
    from tuner.driver import WorkerReport, run_study
    from tuner.driver.processes import current_status

    if workers < 1:
        raise click.ClickException(f"--workers must be at least 1, got {workers}")
    from tuner.driver.settings import check_batch, check_threads

    check_batch(batch)
    check_threads(threads, backend)
    placement = _placement(backend, address, cpus_per_worker, gpus_per_worker, gpus, db)
    gpu_list: list[str] = []
    if gpus is not None:
        from tuner.driver.gpus import parse_gpus

        gpu_list = parse_gpus(gpus)
    if not retry_given_up and current_status(db, name).status in ("finished", "incomplete"):
        _say_how_it_ended(name, db, WorkerReport(already_finished=True))
        return
    _check_task_code(name, db, allow_changed)
    if retry_given_up:
        _reopen_given_up(name, db)
        if current_status(db, name).status in ("finished", "incomplete"):
            _say_how_it_ended(name, db, WorkerReport(already_finished=True))
            return
    try:
        with _Progress() as bar:
            report = run_study(
                name, db, workers=workers, timeout=timeout, grace_seconds=grace,
                on_progress=bar.update, gpus=gpu_list, backend=backend, ray=placement,
                batch=batch, threads=threads,
            )
    except KeyboardInterrupt:
        _say_how_it_ended(name, db, WorkerReport(stopped="interrupted"))
        raise SystemExit(130) from None
    _say_how_it_ended(name, db, report)


@study.command(name="extend")
@click.argument("name")
@click.option("--trials", type=int, default=None, metavar="N",
              help="Add N trials to each of --optimizers, then run them.")
@click.option("--optimizers", metavar="A,B,...", default=None,
              help="With --trials: the optimizers to add to (default: all of the study's).")
@click.option("--until-settled", is_flag=True,
              help="Add rounds of trials to the optimizers still in contention (and seeds to "
              "their best configurations) until the winner's P(best) reaches 0.9 or the cap.")
@click.option("--max-trials", type=int, default=None, metavar="N",
              help="With --until-settled: at most N trials per optimizer (default: 8 times "
              "the study's trials).")
@click.option("--round", "round_size", type=int, default=None, metavar="R",
              help="With --until-settled: add R trials per round (default: as many as the "
              "ranking says would settle it).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Local worker processes.")
@_batch_option
@_threads_option
@_allow_changed_option
@db_option
def extend_command(
    name: str, trials: int | None, optimizers: str | None, until_settled: bool,
    max_trials: int | None, round_size: int | None, workers: int, batch: int | None,
    threads: int | None, allow_changed: bool, db: str | None,
) -> None:
    """Add trials to study NAME and run them: --trials N (of --optimizers), or --until-settled.

    Each round of --until-settled prints what it added and where the ranking of the study's own
    runs stands after it. A killed extend resumes: run the same command again (or `tuner study
    run NAME` for the round in flight)."""
    from tuner.driver.extend import check_request
    from tuner.driver.settings import check_batch, check_threads

    check_request(trials, optimizers, until_settled, max_trials, round_size)
    if workers < 1:
        raise click.ClickException(f"--workers must be at least 1, got {workers}")
    check_batch(batch)
    check_threads(threads)
    _check_task_code(name, db, allow_changed)
    running = {"workers": workers, "batch": batch, "threads": threads}
    if until_settled:
        _extend_until_settled(name, db, max_trials, round_size, running)
    else:
        _extend_by(name, db, trials, optimizers, running)


def _extend_by(name: str, db: str | None, trials: int | None, optimizers: str | None,
               running: dict[str, Any]) -> None:
    """``--trials N``: add them, then run the study as ``tuner study run`` does (``running``:
    its workers, batch and threads)."""
    from tuner.driver.extend import add_trials, added_text

    spec, additions = add_trials(name, db, trials, optimizers)
    click.echo(added_text(spec, additions))
    report = _run_interruptibly(name, db, running)
    _say_how_it_ended(name, db, report)


def _extend_until_settled(name: str, db: str | None, max_trials: int | None,
                          round_size: int | None, running: dict[str, Any]) -> None:
    """``--until-settled``: rounds until settled or the cap, one line each, then how it
    ended."""
    from tuner.driver import WorkerReport
    from tuner.driver.extend import extend_until_settled
    from tuner.driver.processes import current_status

    report = extend_until_settled(
        name, db, lambda: _run_interruptibly(name, db, running),
        max_trials=max_trials, round_size=round_size, say=click.echo,
    )
    click.echo(f"Study {name!r} {report.summary()}.")
    if current_status(db, name).status == "incomplete":
        _say_how_it_ended(name, db, WorkerReport())  # names the slots given up; exit 1


def _run_interruptibly(name: str, db: str | None, running: dict[str, Any]) -> Any:
    """Run the study's pending slots (``running``: with these workers, batch and threads)
    with a progress display; Ctrl-C says how to resume and exits 130."""
    from tuner.driver import WorkerReport, run_study

    try:
        with _Progress() as bar:
            return run_study(name, db, on_progress=bar.update, **running)
    except KeyboardInterrupt:
        _say_how_it_ended(name, db, WorkerReport(stopped="interrupted"))
        raise SystemExit(130) from None


def _placement(
    backend: str, address: str | None, cpus: float | None, gpus: float | None,
    local_gpus: str | None, db: str | None,
) -> Any:
    """The Ray placement of ``--backend ray`` (checked before anything is written), else None;
    the Ray flags without it, or ``--gpus`` with it, are refused."""
    ray_flags = {"--address": address, "--cpus-per-worker": cpus, "--gpus-per-worker": gpus}
    if backend != "ray":
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given:
            raise click.ClickException(f"{', '.join(given)} only with --backend ray")
        return None
    if local_gpus is not None:
        raise click.ClickException("--gpus places local workers; with --backend ray use "
                                   "--gpus-per-worker (Ray assigns the GPUs)")
    from tuner.driver.ray_backend import RayPlacement, check_database, import_ray

    placement = RayPlacement(address, 1.0 if cpus is None else cpus, gpus or 0.0)
    check_database(db, placement)
    import_ray()
    return placement


@click.command(name="worker")
@click.argument("name")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Start no new trial after this long (running trials finish).")
@_grace_option
@_batch_option
@_threads_option
@_allow_changed_option
@_retry_given_up_option
@db_option
def worker_command(
    name: str, timeout: float | None, grace: float | None, batch: int | None,
    threads: int | None, allow_changed: bool, retry_given_up: bool, db: str | None,
) -> None:
    """Join study NAME as one more worker (on any host that reaches the database)."""
    from tuner.driver import Worker, WorkerSettings, graceful_signals
    from tuner.driver.processes import current_status

    settings = WorkerSettings.from_env(grace, batch, threads)
    _check_task_code(name, db, allow_changed)
    if retry_given_up:
        _reopen_given_up(name, db)
    with _Progress() as bar:
        worker = Worker(name, db, settings=settings, timeout=timeout,
                        on_trial=lambda: bar.update(current_status(db, name)))
        with graceful_signals():
            report = worker.run()
        bar.update(current_status(db, name))
    _say_how_it_ended(name, db, report)
    if report.stopped == "interrupted":
        raise SystemExit(130)


def _say_how_it_ended(name: str, db: str | None, report: Any) -> None:
    """One line on how the run ended; exit 1 when slots were given up or when every run
    diverged at its first evaluation (the task is broken)."""
    from tuner.driver.processes import current_status

    status = current_status(db, name)
    done = status.progress_text()
    if status.task_problem is not None:
        click.echo(f"Study {name!r} at {done}: {status.task_problem}.", err=True)
        if status.status != "incomplete":
            raise SystemExit(1)
    if status.status == "incomplete":
        groups = status.grouped_errors()
        shown = "; ".join(f"{_slots_text(slots)}: {error}" for slots, error in groups[:3])
        more = f" (and {len(groups) - 3} other errors)" if len(groups) > 3 else ""
        click.echo(
            f"Study {name!r} ended incomplete: {done}, {status.given_up} slot(s) given up "
            f"after failing again and again ({shown}{more}). See: tuner study show {name}; "
            f"once fixed, retry them: tuner study run {name} --retry-given-up",
            err=True,
        )
        raise SystemExit(1)
    if report.already_finished:
        click.echo(f"Study {name!r} is already finished ({done}); nothing to do.")
    elif report.stopped == "interrupted":
        click.echo(f"Stopped study {name!r} at {done}; run it again to resume.")
    elif report.stopped == "stopped":
        click.echo(f"Study {name!r} stopped at {done}, as asked; run it again to resume.")
    elif status.status == "finished":
        click.echo(f"Study {name!r} finished: {done}. See: tuner study show {name}")
    else:
        click.echo(f"Study {name!r} paused at {done} ({report.stopped or 'stopped'}); "
                   "run it again to resume.")


def _slots_text(slots: list[str], shown: int = 4) -> str:
    """``adam/0, adam/1, sgd/0, sgd/1 and 6 more``."""
    more = f" and {len(slots) - shown} more" if len(slots) > shown else ""
    return ", ".join(slots[:shown]) + more


class _Progress:
    """A rich progress display: one bar per optimizer (best so far) and the total with an ETA."""

    def __enter__(self) -> _Progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self.tasks: dict[str, Any] = {}
        self.progress.start()
        return self

    def update(self, status: Any) -> None:
        """Show ``status``: each optimizer's slots (trial slots and seed slots) done."""
        if not self.tasks:
            for item in status.optimizers:
                self.tasks[item.optimizer] = self.progress.add_task(
                    item.optimizer, total=item.total + item.seed_slots_total, best="",
                    completed=item.done + item.seed_slots_done,
                )
            self.tasks[""] = self.progress.add_task(
                "all", total=status.total + status.seed_slots_total, best="",
                completed=status.done + status.seed_slots_done,
            )
        for item in status.optimizers:
            best = "" if item.best_value is None else f"best {status.metric} {item.best_value:.4g}"
            self.progress.update(self.tasks[item.optimizer], best=best,
                                 completed=item.done + item.seed_slots_done)
        self.progress.update(self.tasks[""], completed=status.done + status.seed_slots_done)

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()


@study.command(name="list")
@output_options
@db_option
def list_command(as_json: bool, db: str | None) -> None:
    """List the studies in the store with their progress."""
    from tuner.store import open_store
    from tuner.store.studies import list_studies

    with open_store(db, create=False, readonly=True) as store:
        studies = list_studies(store)
    if as_json:
        print_json([s.describe() for s in studies])
        return
    if not studies:
        click.echo("No studies yet: tuner study create NAME --task T --optimizers A,B ...")
        return
    print_table(
        ([s.spec.name, s.spec.task, ", ".join(s.spec.optimizers),
          f"{s.done}/{s.total}", s.spec.seeds, s.status] for s in studies),
        ["study", "task", "optimizers", "trials", "seeds", "status"],
    )


def _training_text(value, untried=()) -> str:
    """A study training option for people: ``100``, ``16..256`` (tuned), ``a|b`` (tuned), and
    the choices no finished trial has tried: ``a|b (tuned; b not tried)``."""
    if isinstance(value, dict) and "range" in value:
        low, high = value["range"]
        return f"{format_value(low)}..{format_value(high)} (tuned)"
    if isinstance(value, dict):
        note = f"; {', '.join(map(str, untried))} not tried" if untried else ""
        return "|".join(str(v) for v in value["choices"]) + f" (tuned{note})"
    return format_value(value)


@study.command(name="show")
@click.argument("name")
@output_options
@db_option
def show_command(name: str, as_json: bool, db: str | None) -> None:
    """Show a study: status, and the best result per optimizer with its parameters."""
    from tuner.driver.processes import current_status
    from tuner.study_api import Study

    status = current_status(db, name)
    note = Study(name, db).note
    if as_json:
        print_json({**status.describe(), "note": note})
        return
    c = status.spec
    click.echo(
        f"Study {c.name!r}: {status.status}, {status.progress_text()}. Task {c.task} "
        f"({status.direction} {status.metric}), {_seeds_text(c)} per trial, "
        f"{c.sampler} sampler, {c.pruner} pruner."
    )
    if note:
        click.echo(f"Note: {note}")
    if c.training:
        click.echo("Training: " + ", ".join(
            f"{key}={_training_text(value, status.untried_choices.get(key, ()))}"
            for key, value in c.training.items()
        ) + ".")
    if status.task_problem is not None:
        click.echo(f"Task problem: {status.task_problem}.")
    for slots, error in status.grouped_errors():
        click.echo(f"Given up: {', '.join(slots)}: {error}")
    rows = []
    for item in status.optimizers:
        params = ", ".join(
            f"{key}={format_value(value)}" for key, value in (item.best_params or {}).items()
        )
        seeded = ([f"{item.seed_slots_done}/{item.seed_slots_total}"]
                  if status.seed_slots_total else [])
        rows.append([
            item.optimizer, f"{item.done}/{item.total}", *seeded, item.complete, item.pruned,
            item.diverged, item.best_value, params or None,
        ])
    direction = "lowest" if status.direction == "minimize" else "highest"
    print_table(
        rows,
        ["optimizer", "done", *(["seed slots"] if status.seed_slots_total else []),
         "complete", "pruned", "diverged", f"best mean {status.metric} ({direction})",
         "its parameters"],
    )
    advice = _study_advice(name, c.task, db)
    if advice is not None:
        click.echo(f"From this study's runs alone: {advice}")


def _study_advice(name: str, task: str, db: str | None) -> str | None:
    """The advice drawn from one study's runs (None before any run of it completed)."""
    from tuner.advice import NoRunsError, advise

    try:
        return advise(task, db=db, study=name).text
    except NoRunsError:
        return None


@study.command(name="stop")
@click.argument("name")
@db_option
def stop_command(name: str, db: str | None) -> None:
    """Ask a study's workers, on every host, to finish the trial in hand and exit.

    Workers see the request at their next heartbeat; `tuner study run NAME` resumes the study.
    A study with no worker attached (created, idle, finished) has nothing to stop: an error.
    """
    from tuner.store import open_store
    from tuner.store.studies import stop_study

    with open_store(db, create=False) as store:
        stop_study(store, name)
    click.echo(f"Asked the workers of study {name!r} to stop after their current trial; "
               f"resume with: tuner study run {name}")


@study.command(name="note")
@click.argument("name")
@click.argument("text", required=False)
@db_option
def note_command(name: str, text: str | None, db: str | None) -> None:
    """Show the note kept beside a study, or keep TEXT as its note ("" removes it).

    Free text, at most 10,000 characters, that the study's page shows (`tuner serve`): why the
    study was run, what was changed between its runs. Nothing else reads it.
    """
    from tuner.study_api import Study

    study = Study(name, db)
    if text is None:
        click.echo(study.note)
        return
    study.note = text
    click.echo(f"Kept the note of study {name!r}." if text else
               f"Removed the note of study {name!r}.")


@study.command(name="delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
def delete_command(name: str, yes: bool, db: str | None) -> None:
    """Delete a study: its trials, runs and curves, and its Optuna studies."""
    from tuner.driver import delete_study
    from tuner.store import open_store
    from tuner.store.studies import get_study

    with open_store(db, create=False, readonly=True) as store:
        get_study(store, name)  # an unknown name fails before the question
    if not yes:
        click.confirm(
            f"Delete study {name!r} with all its runs and its Optuna studies?", abort=True,
        )
    runs = delete_study(name, db)
    click.echo(f"Deleted study {name!r} ({runs} runs).")


@study.command(name="export")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="CSV (one line per run) or a JSON list.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of standard output.")
@db_option
def export_command(name: str, fmt: str, output: str | None, db: str | None) -> None:
    """Export every run of a study, one row per run with its parameters flattened."""
    from tuner.store import open_store
    from tuner.store.studies import export_rows

    with open_store(db, create=False, readonly=True) as store:
        rows = export_rows(store, name)
    if fmt == "json":
        from tuner.store.values import plain_json

        text = json.dumps(plain_json(rows), indent=2) + "\n"
    else:
        from tuner.report.csv_export import runs_csv

        text = runs_csv(rows)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as error:
            raise click.ClickException(
                f"cannot write {output}: {error.strerror or error}"
            ) from None
        click.echo(f"Wrote {len(rows)} runs to {output}.", err=True)
    else:
        click.echo(text, nl=False)

