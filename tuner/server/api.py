"""The JSON API's reads: one data function per URL; each page is a template over the same data.

A data function takes the request and returns a JSON-ready dict; :func:`json_view` serves it
under ``/api/`` and :func:`tuner.server.pages.page_view` renders it into a page (datasette's
habit: every page has its JSON twin). Each is declared with :func:`~tuner.server.openapi.declare`:
the parameters it reads through (the same objects), its answer and its errors, which are its
entry in the OpenAPI document (``/api/openapi.json``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tuner.errors import TunerError
from tuner.server import sources
from tuner.server.openapi import (
    Answer,
    BadParameter,
    Choice,
    Names,
    Number,
    Operation,
    PathId,
    PathText,
    Text,
    Whole,
    check_choice,
    declare,
)
from tuner.server.responses import DataResponse
from tuner.server.security import BodyTooLarge, handle_error
from tuner.store.browse import MAX_PAGE, TRIAL_SORTS, Page, runs_page, trials_page
from tuner.store.models import RUN_STATUSES, TRIAL_STATUSES

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


# -- parameters (read by the endpoints, described by the schema) -----------------------------

LARGEST = 2**31 - 1
TASK_ID = PathId("task_id", "the task's id (its record in the store: /api/tasks)")
STUDY = PathText("name", "the study's name")
OPTIMIZER_NAME = PathText("optimizer", "the optimizer's name (one ranked on the task)")
TRIAL_ID = PathId("trial_id", "the trial's id (in the study's trials)")
TOLERANCE = Text("tolerance", "what counts as within reach of the best: 2% or 0.05")
BUDGET = Whole("budget", 1, LARGEST, description="the protocol's budget to rank (default: "
               "the most measured)")
MEMORY_BUDGET = Text("memory_budget", "optimizer state allowed, in parameter copies: 0n, 1n, 2n")
OPTIMIZERS = Names("optimizers", "optimizers a,b (default: the top two)")
TASK_IDS = Names("tasks", "task ids 1,2 (default: every task)")
OFFSET = Whole("offset", 0, LARGEST, 0, "rows to skip (newest first)")
LIMIT = Whole("limit", 1, MAX_PAGE, DEFAULT_PAGE, "rows in the page")
OPTIMIZER = Text("optimizer", "only this optimizer's rows (one of the study's)")
TRIAL_STATUS = Choice("status", TRIAL_STATUSES, description="only trials with this status")
MIN_VALUE = Number("min_value", "only trials whose value is at least this")
MAX_VALUE = Number("max_value", "only trials whose value is at most this")
TRIAL_SORT = Choice("sort", TRIAL_SORTS, "newest", "newest or oldest first, or by value: "
                    "lowest first (value) or highest first (-value), trials without one last")
RUN_STATUS = Choice("status", RUN_STATUSES, description="only runs with this status")
FORMAT = Choice("format", ("csv", "json"), "csv", "CSV (a spreadsheet's) or a JSON list")

PAGE_KEYS = {"items": "the rows, newest first (or as sorted)", "total": "rows that match",
             "offset": "rows skipped", "limit": "rows asked for", "filters": "as applied"}


def _task(request: Request) -> sources.TaskView:
    return sources.get_task(request.app.state.store, TASK_ID.read(request))


def study_name(request: Request) -> str:
    return STUDY.read(request)


def study_commands(request: Request, name: str) -> dict[str, str]:
    """The commands that start (or resume) a study's workers, with the password masked."""
    db = request.app.state.display_url
    return {
        "run": f"tuner study run {name} --db {db}",
        "worker": f"tuner worker {name} --db {db}",
    }


# -- tasks ---------------------------------------------------------------------------------------


def _task_summary(store: Any, task: sources.TaskView) -> dict[str, Any]:
    summary = task.to_dict() | {"winner": None, "optimizers": 0, "studies": 0, "problem": None,
                                "protocol": None}
    try:
        ranking = sources.ranking(store, task.name)
    except TunerError as error:  # no runs yet, or a task the store cannot rank
        summary["problem"] = str(error)
        return summary
    summary["optimizers"], summary["studies"] = len(ranking.optimizers), ranking.studies
    summary["metric"], summary["direction"] = ranking.metric, ranking.direction
    summary["protocol"] = ranking.protocol_text()
    winner = ranking.winner
    if winner is not None:
        summary["winner"] = {
            "optimizer": winner.optimizer, "mean": winner.mean, "std": winner.std,
            "seeds": winner.seeds, "lr": winner.lr, "lr_meaning": winner.lr_meaning,
            "good_lr": list(winner.good_lr) if winner.good_lr else None,
        }
    return summary


@declare(Operation(
    "Everything at a glance (the home page's data)",
    answer=Answer("the tasks and the studies", {
        "tasks": "each task with its record, winner and good-lr range",
        "studies": "each study with its progress and its task's id",
        "read_only": "whether writes are refused", "poll_seconds": "how often pages ask"}),
))
def home(request: Request) -> dict[str, Any]:
    """The tasks in the store with their current winners, and the studies with their progress.
    """
    store = request.app.state.store
    return {
        "tasks": [_task_summary(store, task) for task in sources.list_tasks(store)],
        "studies": _listed_studies(store),
        "read_only": not request.app.state.token,
        "poll_seconds": POLL_SECONDS,
    }


def _listed_studies(store: Any) -> list[dict[str, Any]]:
    """``tuner study list --json``, each study with its task's id (None for a task the store
    has no record of)."""
    ids = task_ids(store)
    return [study | {"task_id": ids.get(study["task"])} for study in sources.list_studies(store)]


@declare(Operation(
    "List the tasks",
    answer=Answer("the tasks", {"tasks": "id, name, kind, metric, direction, target, winner, "
                                "protocol (what the winner was trained under)"}),
))
def tasks(request: Request) -> dict[str, Any]:
    """The tasks in the store, each with its record, current winner and good-lr range.
    """
    store = request.app.state.store
    return {"tasks": [_task_summary(store, task) for task in sources.list_tasks(store)]}


@declare(Operation(
    "A task's page data",
    (TASK_ID, TOLERANCE, BUDGET),
    Answer("its ranking, advice, lr points, curves and budget curves", {
        "task": "its record", "ranking": "as /ranking (null without runs)",
        "advice": "as /advice (null without runs)", "lr_points": "as /lr-points",
        "curves": "as /curves", "budget_curves": "as /budget-curves",
        "problem": "why there is no ranking (null when there is)",
        "lr_left_out": "optimizers left out of the lr points, each with why (an lr that is "
        "not a step size)"}),
    errors={404: "no such task"},
))
def task_detail(request: Request) -> dict[str, Any]:
    """One task: ranking, advice, lr points, best learning curves, budget curves (its page).
    """
    store = request.app.state.store
    task = _task(request)
    budget = BUDGET.read(request)
    data: dict[str, Any] = {
        "task": task.to_dict(), "ranking": None, "advice": None, "lr_points": {},
        "lr_left_out": {}, "curves": {}, "budget_curves": [], "problem": None,
    }
    try:
        advice = sources.advice(store, task.name, tolerance=TOLERANCE.read(request),
                                budget=budget)
    except TunerError as error:
        if type(error).__name__ == "AdviceError":
            raise
        data["problem"] = str(error)
        return data
    data["advice"] = advice.to_dict()
    data["ranking"] = advice.ranking.to_dict()
    protocol = advice.ranking.protocol.key if advice.ranking.protocol else None
    data["lr_points"], data["lr_left_out"] = sources.lr_points(
        store, task.name, advice.ranking.direction, protocol)
    data["curves"] = sources.curves(store, advice.ranking)
    data["budget_curves"] = sources.budget_curves(store, advice.ranking)
    return data


@declare(Operation(
    "A task's ranking (tuner best --task T --json)",
    (TASK_ID, TOLERANCE, BUDGET),
    Answer("the ranking", {
        "task": "the task's name", "metric": "what is compared", "direction": "min or max",
        "protocol": "the budget and options the ranked runs were trained under",
        "optimizers": "the standings, best first", "certainty": "P(best) and ties"}),
    errors={404: "no such task, or no runs of it"},
))
def task_ranking(request: Request) -> dict[str, Any]:
    """The optimizers ranked on a task: the same data as ``tuner best --task T --json``.
    """
    task = _task(request)
    return sources.ranking(
        request.app.state.store, task.name, TOLERANCE.read(request),
        BUDGET.read(request),
    ).to_dict()


@declare(Operation(
    "A task's advice (tuner advise --task T --json)",
    (TASK_ID, MEMORY_BUDGET, TOLERANCE, BUDGET),
    Answer("the advice", {
        "advice": "the recommendation in one sentence", "optimizer": "the one to use",
        "lr": "its learning rate", "good_lr": "every lr within the tolerance of the best",
        "ranking": "the ranking it comes from"}),
    errors={404: "no such task, or no runs of it"},
))
def task_advice(request: Request) -> dict[str, Any]:
    """The recommendation for a task: the same data as ``tuner advise --task T --json``.
    """
    task = _task(request)
    return sources.advice(
        request.app.state.store, task.name, memory_budget=MEMORY_BUDGET.read(request),
        tolerance=TOLERANCE.read(request), budget=BUDGET.read(request),
    ).to_dict()


@declare(Operation(
    "A task's lr-sensitivity points",
    (TASK_ID, BUDGET),
    Answer("each optimizer's configurations", {
        "task": "the task's name", "direction": "min or max",
        "protocol": "the protocol ranked", "points": "per optimizer: lr, mean, std, seeds, "
        "diverged, params, lr_meaning of each configuration",
        "left_out": "optimizers left out, each with why (an lr that is not a step size)"}),
    errors={404: "no such task, or no runs of it"},
))
def task_lr_points(request: Request) -> dict[str, Any]:
    """Every configuration of each optimizer as an lr-sensitivity point, with its parameters;
    optimizers whose lr is not a step size (a multiplier) are left out, with the reason.
    """
    task = _task(request)
    ranked = sources.ranking(request.app.state.store, task.name, budget=BUDGET.read(request))
    protocol = ranked.protocol.key if ranked.protocol else None
    points, left_out = sources.lr_points(request.app.state.store, task.name, ranked.direction,
                                         protocol)
    return {
        "task": task.name, "direction": ranked.direction,
        "protocol": ranked.protocol_text(), "points": points, "left_out": left_out,
    }


@declare(Operation(
    "A task's best learning curves",
    (TASK_ID,),
    Answer("the curves", {"task": "the task's name", "metric": "the curves' values",
                          "curves": "per optimizer: one {steps, values} per seed"}),
    errors={404: "no such task, or no runs of it"},
))
def task_curves(request: Request) -> dict[str, Any]:
    """The learning curves (metric per step, one per seed) of each optimizer's best configuration.
    """
    task = _task(request)
    ranking = sources.ranking(request.app.state.store, task.name)
    return {
        "task": task.name, "metric": ranking.metric,
        "curves": sources.curves(request.app.state.store, ranking),
    }


@declare(Operation(
    "A task's expected best after k trials",
    (TASK_ID, BUDGET),
    Answer("the budget curves", {
        "task": "the task's name", "metric": "what is expected", "direction": "min or max",
        "protocol": "the protocol ranked", "trials_compared": "k at most",
        "budget_curves": "per optimizer: trials, expected, low, high, seed_noise"}),
    errors={404: "no such task, or no runs of it"},
))
def task_budget_curves(request: Request) -> dict[str, Any]:
    """Each optimizer's expected best result after k trials of tuning, k = 1..its trials, with
    its 5%..95% interval (the task page's third chart, the report's figure).
    """
    store = request.app.state.store
    task = _task(request)
    ranking = sources.ranking(store, task.name, budget=BUDGET.read(request), settle=False)
    return {
        "task": task.name, "metric": ranking.metric, "direction": ranking.direction,
        "protocol": ranking.protocol_text(), "trials_compared": ranking.trials_compared,
        "budget_curves": sources.budget_curves(store, ranking),
    }


@declare(Operation(
    "An optimizer on a task: what matters to tune, each hyperparameter's slice, every "
    "configuration",
    (TASK_ID, OPTIMIZER_NAME, BUDGET),
    Answer("its standing, importance and configurations", {
        "task": "its record", "optimizer": "the optimizer's name", "metric": "what is compared",
        "direction": "min or max", "protocol": "the budget and options its configurations "
        "were trained under (the ranking's)", "standing": "its row of the ranking",
        "importance": "tuner best --importance for it: configurations, shares (each "
        "hyperparameter's share of the variation in its results, largest first), sentence",
        "parameters": "an axis per hyperparameter, the most important first: name, scale "
        "(log, linear or categorical), low, high, choices",
        "configurations": "every configuration (best first, diverged last): mean, std, seeds, "
        "diverged, params"}),
    errors={404: "no such task, or no runs of this optimizer on it"},
))
def task_optimizer(request: Request) -> dict[str, Any]:
    """One optimizer on one task, under the protocol the ranking compares: its hyperparameters'
    importance (``tuner best --importance``), a slice of each hyperparameter against the metric
    and its configurations for parallel coordinates (its page).
    """
    from tuner.server.axes import parameter_axes

    store = request.app.state.store
    task = _task(request)
    ranking = sources.ranking(store, task.name, budget=BUDGET.read(request), settle=False)
    standing = ranking.standing(OPTIMIZER_NAME.read(request))
    importance = sources.importance(store, ranking, standing.optimizer)
    protocol = ranking.protocol.key if ranking.protocol else None
    configurations = [
        {key: point[key] for key in ("mean", "std", "seeds", "diverged", "params")}
        for point in sources.configurations(store, task.name, standing.optimizer,
                                            ranking.direction, protocol)
    ]
    return {
        "task": task.to_dict(), "optimizer": standing.optimizer, "metric": ranking.metric,
        "direction": ranking.direction, "protocol": ranking.protocol_text(),
        "standing": standing.to_dict(),
        "importance": importance.to_dict() | {"sentence": importance.sentence()},
        "parameters": parameter_axes(configurations, list(importance.shares)),
        "configurations": configurations,
    }


@declare(Operation(
    "Compare optimizers on a task",
    (TASK_ID, OPTIMIZERS, TOLERANCE),
    Answer("the optimizers side by side", {
        "task": "its record", "metric": "what is compared", "direction": "min or max",
        "tolerance": "as applied", "protocol": "the budget and options the runs were trained "
        "under", "optimizers": "their standings, in the order asked",
        "all_optimizers": "every ranked optimizer", "ties": "each pair: tied within noise?",
        "lr_points": "as /lr-points, for these", "curves": "as /curves, for these",
        "lr_left_out": "as /lr-points' left_out, for these"}),
    errors={404: "no such task or optimizer"},
))
def task_compare(request: Request) -> dict[str, Any]:
    """Two or more optimizers of a task side by side: standings, ties, points and curves.
    """
    from tuner.advice import tied_within_noise

    store = request.app.state.store
    task = _task(request)
    ranking = sources.ranking(store, task.name, TOLERANCE.read(request))
    names = OPTIMIZERS.read(request) or [s.optimizer for s in ranking.optimizers[:2]]
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
    protocol = ranking.protocol.key if ranking.protocol else None  # what the ranking compares
    points, left_out = sources.lr_points(store, task.name, ranking.direction, protocol)
    curves = sources.curves(store, ranking)
    return {
        "task": task.to_dict(), "metric": ranking.metric, "direction": ranking.direction,
        "tolerance": str(ranking.tolerance), "protocol": ranking.protocol_text(),
        "optimizers": [s.to_dict() for s in standings],
        "all_optimizers": [s.optimizer for s in ranking.optimizers],
        "ties": ties,
        "lr_points": {name: found for name, found in points.items() if name in chosen},
        "lr_left_out": {name: why for name, why in left_out.items() if name in chosen},
        "curves": {name: found for name, found in curves.items() if name in chosen},
    }


@declare(Operation(
    "Compare optimizers across tasks (tuner compare --json)",
    (TASK_IDS, TOLERANCE),
    Answer("ranks per task, mean rank, wins, defaults", {
        "tasks": "the tasks compared, by name", "task_ids": "each task's id, by name",
        "optimizers": "mean rank, wins, profile", "per_task": "each task's standings",
        "defaults": "recommended configurations against tuned ones"}),
    errors={404: "no such task, or no runs"},
))
def compare_tasks(request: Request) -> dict[str, Any]:
    """Optimizers across tasks: the same data as ``tuner compare --json``, with each task's id.
    """
    store = request.app.state.store
    names = None
    ids = TASK_IDS.read(request)
    if ids is not None:
        names = [sources.get_task(store, _task_id(text)).name for text in ids]
    answer = sources.comparison(store, names, TOLERANCE.read(request)).to_dict()
    known = task_ids(store)
    answer["task_ids"] = {name: known.get(name) for name in answer["tasks"]}
    return answer


def _task_id(text: str) -> int:
    """A task id given in a query (a whole number in ASCII digits; 400 otherwise: ``str.isdigit``
    also takes ``²``, which ``int`` refuses)."""
    if not (text.isascii() and text.isdigit()):
        raise BadParameter(f"tasks are named by their ids (see /api/tasks), got {text!r}")
    return int(text)


def task_ids(store: Any) -> dict[str, int]:
    """Each task's id by its name (links to a task's page name it by id)."""
    return {task.name: task.id for task in sources.list_tasks(store)}


# -- studies -------------------------------------------------------------------------------------


@declare(Operation(
    "List the studies",
    answer=Answer("the studies", {"studies": "each with its status, progress and task_id"}),
))
def studies(request: Request) -> dict[str, Any]:
    """The studies in the store with their progress: ``tuner study list --json``, with their
    tasks' ids.
    """
    return {"studies": _listed_studies(request.app.state.store)}


@declare(Operation(
    "A study's page data (tuner study show --json and more)",
    (STUDY,),
    Answer("the study", {
        "study": "status and progress per optimizer; task_id names its task",
        "commands": "the commands that run it", "trials": "its latest trials (as /trials)",
        "history": "per optimizer: trials, best (so far), values: the history plot",
        "note": "the note kept beside it (PUT /api/studies/{name}/note; \"\" when none)",
        "trial_statuses": "the statuses a trial may have (the trials table's filter)",
        "read_only": "whether writes are refused", "poll_seconds": "how often pages ask"}),
    errors={404: "no such study"},
))
def study_detail(request: Request) -> dict[str, Any]:
    """A study: status and progress per optimizer, its latest trials, the commands to run it.
    """
    store = request.app.state.store
    name = study_name(request)
    status = sources.study_status(store, name)
    status["task_id"] = task_ids(store).get(status["task"])
    return {
        "study": status, "commands": study_commands(request, name),
        "trials": trials_page(store, name, limit=DEFAULT_PAGE).to_dict(),
        "history": sources.study_history(store, name, status["direction"]),
        "note": sources.study_note(store, name), "trial_statuses": list(TRIAL_STATUSES),
        "read_only": not request.app.state.token, "poll_seconds": POLL_SECONDS,
    }


@declare(Operation(
    "A trial's page data: its parameters, each seed's run and curve",
    (STUDY, TRIAL_ID),
    Answer("the trial", {
        "study": "name, task, task_id, metric, direction, status",
        "trial": "id, optimizer, number, slot, status, value, params, origin, started_at, "
        "finished_at, worker, runs (seed, status, final_metric, best_metric, steps, "
        "wall_seconds, device, error, curve {steps, values})"}),
    errors={404: "no such study, or no such trial of it"},
))
def study_trial(request: Request) -> dict[str, Any]:
    """One trial of a study: its parameters, each seed's run with its curve, and the whole
    error of a run that failed."""
    store = request.app.state.store
    name = study_name(request)
    found = sources.trial(store, name, TRIAL_ID.read(request))
    status = sources.study_status(store, name)
    study = {key: status[key] for key in ("name", "task", "metric", "direction", "status")}
    study["task_id"] = task_ids(store).get(status["task"])
    return {"study": study, "trial": found}


def _study_page(
    request: Request, page: Callable[..., Page], status: Choice, **more: Any
) -> dict[str, Any]:
    """One page of a study's rows (:func:`~tuner.store.browse.trials_page` or
    :func:`~tuner.store.browse.runs_page`) as the query asks: offset, limit, and filters that
    name one of the study's optimizers and one of the statuses (400 otherwise: an empty page
    would say "none"); ``more`` goes to ``page`` as it is."""
    store = request.app.state.store
    name = study_name(request)
    optimizers = sources.study_optimizers(store, name)
    return page(
        store, name, offset=OFFSET.read(request), limit=LIMIT.read(request),
        optimizer=check_choice(OPTIMIZER.name, OPTIMIZER.read(request), optimizers),
        status=status.read(request), **more,
    ).to_dict()


@declare(Operation(
    "A study's trials (paged, filtered, sorted)",
    (STUDY, OFFSET, LIMIT, OPTIMIZER, TRIAL_STATUS, MIN_VALUE, MAX_VALUE, TRIAL_SORT),
    Answer("a page of trials", PAGE_KEYS),
    errors={404: "no such study"},
))
def study_trials(request: Request) -> dict[str, Any]:
    """A study's trials, a page at a time: newest first unless ``sort`` says otherwise, of one
    optimizer, with one status and a value within bounds when asked (the study page's table).
    """
    return _study_page(request, trials_page, TRIAL_STATUS, sort=TRIAL_SORT.read(request),
                       min_value=MIN_VALUE.read(request), max_value=MAX_VALUE.read(request))


@declare(Operation(
    "A study's runs (paged)",
    (STUDY, OFFSET, LIMIT, OPTIMIZER, RUN_STATUS),
    Answer("a page of runs", PAGE_KEYS),
    errors={404: "no such study"},
))
def study_runs(request: Request) -> dict[str, Any]:
    """A study's runs (one per seed of a trial), newest first, a page at a time.
    """
    return _study_page(request, runs_page, RUN_STATUS)


@declare(Operation(
    "Export a study's runs (tuner study export)",
    (STUDY, FORMAT),
    Answer("every run", content={
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}),
    errors={404: "no such study"},
))
async def study_export(request: Request) -> Response:
    """Every run of a study, one row each with its parameters flattened (``tuner study export``).
    """
    try:
        fmt = FORMAT.read(request)
        name = study_name(request)
        rows = await run_in_threadpool(sources.export_rows, request.app.state.store, name)
    except Exception as error:
        return await handle_error(request, error)
    if fmt == "json":
        return DataResponse(rows)
    from tuner.report.csv_export import runs_csv

    filename = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return Response(
        runs_csv(rows), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )
