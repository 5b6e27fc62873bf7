"""The JSON API's reads: one data function per URL; each page is a template over the same data.

A data function takes the request and returns a JSON-ready dict; :func:`json_view` serves it
under ``/api/`` and :func:`tuner.server.pages.page_view` renders it into a page (datasette's
habit: every page has its JSON twin). The YAML after ``---`` in each docstring is that
endpoint's entry in the OpenAPI schema (``/api/openapi.json``).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tuner.errors import TunerError
from tuner.server import sources
from tuner.server.responses import DataResponse
from tuner.server.security import ApiError, BodyTooLarge, handle_error
from tuner.store.browse import MAX_PAGE, Page, runs_page, trials_page
from tuner.store.values import plain_json

DataFunction = Callable[[Request], dict[str, Any]]

DEFAULT_PAGE = 50
POLL_SECONDS = 2.0
"""How often the live pages ask for fresh data."""

def json_view(function: DataFunction) -> Callable[[Request], Response]:
    """Serve a data function as JSON; errors become ``{"error": ...}`` with their status."""

    @functools.wraps(function)
    async def view(request: Request) -> Response:
        async def encoded() -> bytes:
            return DataResponse(await read(function, request)).body

        try:
            body = await request.app.state.cache.get(("json", *cache_key(function, request)),
                                                     encoded)
        except BodyTooLarge:
            raise
        except Exception as error:  # every error is one JSON line, never a traceback
            return await handle_error(request, error)
        return Response(body, media_type="application/json")

    return view


def cache_key(function: DataFunction, request: Request) -> tuple[Any, ...]:
    """What makes one answer of a data function: its name, path parameters and query."""
    return (function.__qualname__, tuple(sorted(request.path_params.items())),
            request.url.query)


async def read(function: DataFunction, request: Request) -> dict[str, Any]:
    """A data function's answer, from the app's one-second memory when fresh (a page and its
    JSON twin share it)."""
    return await request.app.state.cache.get(
        cache_key(function, request), lambda: run_in_threadpool(function, request)
    )


def wrote(request: Request) -> None:
    """Forget remembered reads after a write, so its author sees it at once."""
    request.app.state.cache.clear()


# -- reading parameters --------------------------------------------------------------------------


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within ``low..high`` (400 otherwise)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return value


def budget_param(request: Request) -> int | None:
    """The ``budget`` query parameter (which protocol to rank), None when absent."""
    return int_param(request, "budget", 0, 1, 2**31 - 1) or None


def text_param(request: Request, name: str) -> str | None:
    """A text query parameter, None when absent or empty."""
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    if "\x00" in raw or len(raw) > 1000:
        raise ApiError(400, f"{name} is not a usable value")
    return raw.strip()


def list_param(request: Request, name: str) -> list[str] | None:
    """A list query parameter (``a,b`` or repeated), None when absent."""
    parts = []
    for raw in request.query_params.getlist(name):
        if "\x00" in raw or len(raw) > 1000:
            raise ApiError(400, f"{name} is not a usable value")
        parts += [part.strip() for part in raw.split(",") if part.strip()]
    return parts or None


def _task(request: Request) -> sources.TaskView:
    return sources.get_task(request.app.state.store, int(request.path_params["task_id"]))


def study_name(request: Request) -> str:
    return str(request.path_params["name"])


def study_commands(request: Request, name: str) -> dict[str, str]:
    """The commands that start (or resume) a study's workers, with the password masked."""
    db = request.app.state.display_url
    return {
        "run": f"tuner study run {name} --db {db}",
        "worker": f"tuner worker {name} --db {db}",
    }


# -- tasks ---------------------------------------------------------------------------------------


def _task_summary(store: Any, task: sources.TaskView) -> dict[str, Any]:
    summary = task.to_dict() | {"winner": None, "optimizers": 0, "studies": 0, "problem": None}
    try:
        ranking = sources.ranking(store, task.name)
    except TunerError as error:  # no runs yet, or a task the store cannot rank
        summary["problem"] = str(error)
        return summary
    summary["optimizers"], summary["studies"] = len(ranking.optimizers), ranking.studies
    summary["metric"], summary["direction"] = ranking.metric, ranking.direction
    winner = ranking.winner
    if winner is not None:
        summary["winner"] = {
            "optimizer": winner.optimizer, "mean": winner.mean, "std": winner.std,
            "seeds": winner.seeds, "lr": winner.lr,
            "good_lr": list(winner.good_lr) if winner.good_lr else None,
        }
    return summary


def home(request: Request) -> dict[str, Any]:
    """The tasks in the store with their current winners, and the studies with their progress.
    ---
    summary: Everything at a glance (the home page's data)
    responses:
      200: {description: "{tasks: [...], studies: [...], read_only: bool}"}
    """
    store = request.app.state.store
    return {
        "tasks": [_task_summary(store, task) for task in sources.list_tasks(store)],
        "studies": sources.list_studies(store),
        "read_only": not request.app.state.token,
        "poll_seconds": POLL_SECONDS,
    }


def tasks(request: Request) -> dict[str, Any]:
    """The tasks in the store, each with its record, current winner and good-lr range.
    ---
    summary: List the tasks
    responses:
      200: {description: "{tasks: [{id, name, kind, metric, direction, target, winner}]}"}
    """
    store = request.app.state.store
    return {"tasks": [_task_summary(store, task) for task in sources.list_tasks(store)]}


def task_detail(request: Request) -> dict[str, Any]:
    """One task: ranking, advice, lr points, best learning curves, budget curves (its page).
    ---
    summary: A task's page data
    parameters:
      - {name: task_id, in: path, required: true, schema: {type: integer, minimum: 1}}
      - {name: tolerance, in: query, schema: {type: string}, description: "2% or 0.05"}
      - {name: budget, in: query, schema: {type: integer, minimum: 1}, description: "the
        protocol's budget (default: the most measured)"}
    responses:
      200: {description: "{task, ranking, advice, lr_points, curves, budget_curves, problem}"}
      404: {description: no such task}
    """
    store = request.app.state.store
    task = _task(request)
    budget = budget_param(request)
    data: dict[str, Any] = {
        "task": task.to_dict(), "ranking": None, "advice": None, "lr_points": {},
        "curves": {}, "budget_curves": [], "problem": None,
    }
    try:
        advice = sources.advice(store, task.name, tolerance=text_param(request, "tolerance"),
                                budget=budget)
    except TunerError as error:
        if type(error).__name__ == "AdviceError":
            raise
        data["problem"] = str(error)
        return data
    data["advice"] = advice.to_dict()
    data["ranking"] = advice.ranking.to_dict()
    protocol = advice.ranking.protocol.key if advice.ranking.protocol else None
    data["lr_points"] = sources.lr_points(store, task.name, advice.ranking.direction, protocol)
    data["curves"] = sources.curves(store, advice.ranking)
    data["budget_curves"] = sources.budget_curves(store, advice.ranking)
    return data


def task_ranking(request: Request) -> dict[str, Any]:
    """The optimizers ranked on a task: the same data as ``tuner best --task T --json``.
    ---
    summary: A task's ranking (TaskRanking.to_dict())
    parameters:
      - {name: task_id, in: path, required: true, schema: {type: integer, minimum: 1}}
      - {name: tolerance, in: query, schema: {type: string}, description: "2% or 0.05"}
      - {name: budget, in: query, schema: {type: integer, minimum: 1}}
    responses:
      200: {description: the ranking}
      404: {description: "no such task, or no runs of it"}
    """
    task = _task(request)
    return sources.ranking(
        request.app.state.store, task.name, text_param(request, "tolerance"),
        budget_param(request),
    ).to_dict()


def task_advice(request: Request) -> dict[str, Any]:
    """The recommendation for a task: the same data as ``tuner advise --task T --json``.
    ---
    summary: A task's advice (Advice.to_dict())
    parameters:
      - {name: task_id, in: path, required: true, schema: {type: integer, minimum: 1}}
      - {name: memory_budget, in: query, schema: {type: string}, description: "0n, 1n, 2n"}
      - {name: tolerance, in: query, schema: {type: string}, description: "2% or 0.05"}
      - {name: budget, in: query, schema: {type: integer, minimum: 1}}
    responses:
      200: {description: 'the advice, its sentence in "advice"'}
      404: {description: "no such task, or no runs of it"}
    """
    task = _task(request)
    return sources.advice(
        request.app.state.store, task.name, memory_budget=text_param(request, "memory_budget"),
        tolerance=text_param(request, "tolerance"), budget=budget_param(request),
    ).to_dict()


def task_lr_points(request: Request) -> dict[str, Any]:
    """Every configuration of each optimizer as an lr-sensitivity point, with its parameters.
    ---
    summary: A task's lr-sensitivity points
    parameters:
      - {name: task_id, in: path, required: true, schema: {type: integer, minimum: 1}}
    responses:
      200:
        description: "{task, direction, points: {optimizer: [{lr, mean, std, seeds,
          diverged, params}]}}"
      404: {description: no such task}
    """
    task = _task(request)
    ranked = sources.ranking(request.app.state.store, task.name, budget=budget_param(request))
    protocol = ranked.protocol.key if ranked.protocol else None
    return {
        "task": task.name, "direction": ranked.direction,
        "protocol": ranked.protocol_text(),
        "points": sources.lr_points(request.app.state.store, task.name, ranked.direction,
                                    protocol),
    }


def task_curves(request: Request) -> dict[str, Any]:
    """The learning curves (metric per step, one per seed) of each optimizer's best configuration.
    ---
    summary: A task's best learning curves
    parameters:
      - {name: task_id, in: path, required: true, schema: {type: integer, minimum: 1}}
    responses:
      200: {description: "{task, metric, curves: {optimizer: [{steps, values}]}}"}
      404: {description: "no such task, or no runs of it"}
    """
    task = _task(request)
    ranking = sources.ranking(request.app.state.store, task.name)
    return {
        "task": task.name, "metric": ranking.metric,
        "curves": sources.curves(request.app.state.store, ranking),
    }


def task_budget_curves(request: Request) -> dict[str, Any]:
    """Each optimizer's expected best result after k trials of tuning, k = 1..its trials, with
    its 5%..95% interval (the task page's third chart, the report's figure).
    ---
    summary: A task's expected best after k trials
    parameters:
      - {name: task_id, in: path, required: true, schema: {type: integer, minimum: 1}}
      - {name: budget, in: query, schema: {type: integer, minimum: 1}, description: "the
        protocol's budget (default: the most measured)"}
    responses:
      200:
        description: "{task, metric, direction, protocol, trials_compared, budget_curves:
          [{optimizer, trials, expected, low, high, seed_noise}]}"
      404: {description: "no such task, or no runs of it"}
    """
    store = request.app.state.store
    task = _task(request)
    ranking = sources.ranking(store, task.name, budget=budget_param(request), settle=False)
    return {
        "task": task.name, "metric": ranking.metric, "direction": ranking.direction,
        "protocol": ranking.protocol_text(), "trials_compared": ranking.trials_compared,
        "budget_curves": sources.budget_curves(store, ranking),
    }


def task_compare(request: Request) -> dict[str, Any]:
    """Two or more optimizers of a task side by side: standings, ties, points and curves.
    ---
    summary: Compare optimizers on a task
    parameters:
      - {name: task_id, in: path, required: true, schema: {type: integer, minimum: 1}}
      - name: optimizers
        in: query
        schema: {type: string}
        description: "a,b (default: the top two)"
      - {name: tolerance, in: query, schema: {type: string}}
    responses:
      200: {description: "{task, metric, direction, optimizers, ties, lr_points, curves}"}
      404: {description: no such task or optimizer}
    """
    from tuner.advice import tied_within_noise

    store = request.app.state.store
    task = _task(request)
    ranking = sources.ranking(store, task.name, text_param(request, "tolerance"))
    names = list_param(request, "optimizers") or [s.optimizer for s in ranking.optimizers[:2]]
    standings = [ranking.standing(name) for name in dict.fromkeys(names)]
    ties = []
    for position, first in enumerate(standings):
        for second in standings[position + 1:]:
            tied = None
            if first.rank == 1 or second.rank == 1:  # the advice's own rule (the resample)
                tied = (second if first.rank == 1 else first).tied_with_winner
            elif first.mean is not None and second.mean is not None:
                tied = tied_within_noise(
                    first.mean, first.standard_error, second.mean, second.standard_error
                )
            ties.append({"optimizers": [first.optimizer, second.optimizer], "tied": tied})
    chosen = {s.optimizer for s in standings}
    points = sources.lr_points(store, task.name, ranking.direction)
    curves = sources.curves(store, ranking)
    return {
        "task": task.to_dict(), "metric": ranking.metric, "direction": ranking.direction,
        "tolerance": str(ranking.tolerance),
        "optimizers": [s.to_dict() for s in standings],
        "all_optimizers": [s.optimizer for s in ranking.optimizers],
        "ties": ties,
        "lr_points": {name: found for name, found in points.items() if name in chosen},
        "curves": {name: found for name, found in curves.items() if name in chosen},
    }


def compare_tasks(request: Request) -> dict[str, Any]:
    """Optimizers across tasks: the same data as ``tuner compare --json``.
    ---
    summary: Compare optimizers across tasks (Comparison.to_dict())
    parameters:
      - {name: tasks, in: query, schema: {type: string}, description: "a,b (default: all)"}
      - {name: tolerance, in: query, schema: {type: string}}
    responses:
      200: {description: "ranks per task, mean rank, wins, defaults"}
      404: {description: no runs}
    """
    return sources.comparison(
        request.app.state.store, list_param(request, "tasks"), text_param(request, "tolerance")
    ).to_dict()


# -- studies -------------------------------------------------------------------------------------


def studies(request: Request) -> dict[str, Any]:
    """The studies in the store with their progress: ``tuner study list --json``.
    ---
    summary: List the studies
    responses:
      200: {description: "{studies: [...]}"}
    """
    return {"studies": sources.list_studies(request.app.state.store)}


def study_detail(request: Request) -> dict[str, Any]:
    """A study: status and progress per optimizer, its latest trials, the commands to run it.
    ---
    summary: A study's page data (``tuner study show --json`` and more)
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{study, trials, commands, read_only, poll_seconds}"}
      404: {description: no such study}
    """
    store = request.app.state.store
    name = study_name(request)
    status = sources.study_status(store, name)
    return {
        "study": status, "commands": study_commands(request, name),
        "trials": trials_page(store, name, limit=DEFAULT_PAGE).to_dict(),
        "read_only": not request.app.state.token, "poll_seconds": POLL_SECONDS,
    }


def _study_page(request: Request, page: Callable[..., Page]) -> dict[str, Any]:
    """One page of a study's rows (:func:`~tuner.store.browse.trials_page` or
    :func:`~tuner.store.browse.runs_page`) as the query asks: offset, limit and filters."""
    name = study_name(request)
    sources.check_study_name(name)
    return page(
        request.app.state.store, name,
        offset=int_param(request, "offset", 0, 0, 2**31 - 1),
        limit=int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE),
        optimizer=text_param(request, "optimizer"), status=text_param(request, "status"),
    ).to_dict()


def study_trials(request: Request) -> dict[str, Any]:
    """A study's trials, newest first, a page at a time.
    ---
    summary: A study's trials (paged)
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, default: 0}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 50}}
      - {name: optimizer, in: query, schema: {type: string}}
      - {name: status, in: query, schema: {type: string}}
    responses:
      200: {description: "{items, total, offset, limit, filters}"}
      404: {description: no such study}
    """
    return _study_page(request, trials_page)


def study_runs(request: Request) -> dict[str, Any]:
    """A study's runs (one per seed of a trial), newest first, a page at a time.
    ---
    summary: A study's runs (paged)
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, default: 0}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 50}}
      - {name: optimizer, in: query, schema: {type: string}}
      - {name: status, in: query, schema: {type: string}}
    responses:
      200: {description: "{items, total, offset, limit, filters}"}
      404: {description: no such study}
    """
    return _study_page(request, runs_page)


async def study_export(request: Request) -> Response:
    """Every run of a study, one row each with its parameters flattened (``tuner study export``).
    ---
    summary: Export a study's runs
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: format, in: query, schema: {type: string, enum: [csv, json], default: csv}}
    responses:
      200: {description: CSV (text/csv) or a JSON list}
      404: {description: no such study}
    """
    try:
        fmt = text_param(request, "format") or "csv"
        if fmt not in ("csv", "json"):
            raise ApiError(400, f"format must be csv or json, got {fmt!r}")
        name = study_name(request)
        rows = await run_in_threadpool(sources.export_rows, request.app.state.store, name)
    except Exception as error:
        return await handle_error(request, error)
    if fmt == "json":
        return DataResponse(rows)
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else ["study", "optimizer", "seed", "status"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(plain_json(rows))
    filename = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return Response(
        buffer.getvalue(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )
