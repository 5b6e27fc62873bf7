"""The API's writes: create, extend, stop and delete a study; each needs the token
(:func:`tuner.server.security.write_view`, which also answers their errors).

Creating takes the fields of ``tuner study create`` as JSON and hands them to the same driver
function, so the checks and their one-line messages are the command's; extending takes those of
``tuner study extend --trials``. The server never runs a study: the answer names the commands
that start its workers.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tuner.errors import UnknownNameError
from tuner.server import sources
from tuner.server.api import study_commands, study_name, wrote
from tuner.server.responses import DataResponse
from tuner.server.security import ApiError, write_view

CREATE_KEYS = (
    "name", "task", "optimizers", "trials", "seeds", "sampler", "pruner", "budget", "schedule",
    "param_range", "seed", "description", "warm_start", "training", "task_params", "first_seed",
)
"""The fields of a create request: ``tuner study create``'s flags, by the same names."""

EXTEND_KEYS = ("trials", "optimizers")
"""The fields of an extend request: ``tuner study extend --trials N --optimizers A,B``."""


def _create_settings(body: Any) -> tuple[dict[str, Any], bool]:
    """The flags of ``tuner study create`` from a request body, with their types checked."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object of study settings")
    unknown = sorted(set(body) - set(CREATE_KEYS))
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r}; the fields are: {', '.join(CREATE_KEYS)}"
        )
    settings = {key: body.get(key) for key in CREATE_KEYS if key != "warm_start"}
    for key in ("name", "task", "sampler", "pruner", "schedule", "description"):
        value = settings[key]
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"{key} must be a string, got {value!r}")
    for key in ("trials", "seeds", "budget", "seed", "first_seed"):
        value = settings[key]
        # the range of the store's integer columns; resolve() checks the rest, as for the CLI
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**31 - 1:
            raise ApiError(400, f"{key} must be at most {2**31 - 1}, got {value!r}")
    optimizers = settings["optimizers"]
    if isinstance(optimizers, list) and all(isinstance(name, str) for name in optimizers):
        settings["optimizers"] = ",".join(optimizers)
    elif optimizers is not None and not isinstance(optimizers, str):
        raise ApiError(400, "optimizers must be a list of names or a string 'a,b'")
    ranges = settings["param_range"]
    if ranges is None:
        settings["param_range"] = []
    elif not isinstance(ranges, list) or not all(isinstance(text, str) for text in ranges):
        raise ApiError(400, "param_range must be a list of strings like 'adamw.lr=1e-4:1e-1'")
    for key, value in settings.items():
        if isinstance(value, str) and "\x00" in value:
            raise ApiError(400, f"{key} must not contain a NUL character")
    for key in ("training", "task_params"):
        value = settings[key]
        if value is None:
            settings[key] = {}
        elif not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ApiError(400, f"{key} must be a JSON object of names and values")
    settings["training"] = _training(settings["training"])
    task = settings["task"]
    if task is not None and not sources.PLAIN_NAME.match(task):
        raise ApiError(
            400, f"task {task!r} is not an installed task's name: the server creates studies "
            "of installed tasks only (tuner tasks list), never of a file or module reference",
        )
    warm_start = body.get("warm_start", False)
    if not isinstance(warm_start, bool):
        raise ApiError(400, f"warm_start must be true or false, got {warm_start!r}")
    return settings, warm_start


def _training(values: dict[str, Any]) -> dict[str, Any]:
    """Training options as a study file writes them: a value, ``[low, high]`` (tuned) or a list
    of choices; each value a number, a bool or a string."""
    from tuner.study.training import from_file_value

    plain = (int, float, bool, str)
    for name, value in values.items():
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, plain) for item in items):
            raise ApiError(400, f"training option {name!r}: give a value, [low, high] or a "
                           f"list of choices, got {value!r}")
    return {name: from_file_value(value) for name, value in values.items()}


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None


@write_view
async def create_study(request: Request) -> Response:
    """Create a study, checked as ``tuner study create`` checks it; it is run by workers.
    ---
    summary: Create a study (needs the token)
    security: [{bearer: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [name, task, optimizers, trials, seeds]
            properties:
              name: {type: string}
              task: {type: string, description: an installed task's name}
              optimizers: {type: array, items: {type: string}}
              trials: {type: integer, minimum: 1}
              seeds: {type: integer, minimum: 1}
              sampler: {type: string, enum: [tpe, random, qmc, grid]}
              pruner: {type: string, enum: [none, median, hyperband, wilcoxon]}
              budget: {type: integer, minimum: 1}
              schedule: {type: string}
              param_range: {type: array, items: {type: string}}
              seed: {type: integer, minimum: 0}
              first_seed: {type: integer, minimum: 0, description: "the first training seed
                (seeds first_seed .. first_seed + seeds - 1; default 0)"}
              description: {type: string}
              warm_start: {type: boolean}
              training:
                type: object
                description: "training options, fixed (a value) or tuned ([low, high], or a
                  list of choices), as a study file's [training] table"
              task_params: {type: object, description: "the task's parameters (width, ...)"}
    responses:
      201: {description: "{study, commands}: the study and the commands that run it"}
      400: {description: a setting that cannot be used (the CLI's message)}
      401: {description: missing or wrong token}
      403: {description: the server is read-only}
      409: {description: the name is taken}
      413: {description: body too large}
    """
    settings, warm_start = _create_settings(await _json_body(request))
    store = request.app.state.store
    try:
        name = await run_in_threadpool(
            sources.create_study, store, settings, warm_start=warm_start
        )
    except UnknownNameError as error:  # a task or optimizer named in the body: bad input
        raise ApiError(400, str(error)) from None
    wrote(request)
    status = await run_in_threadpool(sources.study_status, store, name)
    return DataResponse(
        {"study": status, "commands": study_commands(request, name)}, status_code=201
    )


def _extend_settings(body: Any) -> tuple[Any, Any]:
    """``(trials, optimizers)`` of an extend request, with their JSON types checked (the
    driver checks the rest, as for the command)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object: {\"trials\": N, "
                            "\"optimizers\": [...]}")
    unknown = sorted(set(body) - set(EXTEND_KEYS))
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r}; the fields are: {', '.join(EXTEND_KEYS)} "
            "(--until-settled is a command-line and Python loop: the server never trains)"
        )
    trials, optimizers = body.get("trials"), body.get("optimizers")
    if isinstance(trials, bool) or not isinstance(trials, int):
        raise ApiError(400, f"trials must be a whole number, got {trials!r}")
    if optimizers is not None and not (
            isinstance(optimizers, list) and all(isinstance(o, str) for o in optimizers)):
        raise ApiError(400, "optimizers must be a list of names")
    return trials, optimizers


@write_view
async def extend_study(request: Request) -> Response:
    """Add trials to some optimizers of a study (``tuner study extend --trials``); workers run
    them. Adding rounds until the ranking is settled (``--until-settled``) is a loop of the
    command line and of ``tuner.Study.extend``, which train between the rounds: the server
    never trains, so it has no such request.
    ---
    summary: Add trials to a study (needs the token)
    security: [{bearer: []}]
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            additionalProperties: false
            required: [trials]
            properties:
              trials: {type: integer, minimum: 1, description: more trials of each optimizer}
              optimizers:
                type: array
                items: {type: string}
                description: "the optimizers to add to (default: every one of the study)"
    responses:
      200: {description: "{study, commands}: the study and the commands that run the trials"}
      400: {description: a count or an optimizer that cannot be used (the CLI's message)}
      401: {description: missing or wrong token}
      403: {description: the server is read-only}
      404: {description: no such study}
      413: {description: body too large}
    """
    trials, optimizers = _extend_settings(await _json_body(request))
    store, name = request.app.state.store, study_name(request)
    await run_in_threadpool(sources.extend_study, store, name, trials, optimizers)
    wrote(request)
    status = await run_in_threadpool(sources.study_status, store, name)
    return DataResponse({"study": status, "commands": study_commands(request, name)})


@write_view
async def stop_study(request: Request) -> Response:
    """Ask a study's workers to finish the trial in hand and exit; ``tuner study run`` resumes.
    ---
    summary: Stop a study (needs the token)
    security: [{bearer: []}]
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{study}: its status after the stop"}
      401: {description: missing or wrong token}
      403: {description: the server is read-only}
      404: {description: no such study}
    """
    store, name = request.app.state.store, study_name(request)
    await run_in_threadpool(sources.stop_study, store, name)
    wrote(request)
    status = await run_in_threadpool(sources.study_status, store, name)
    return DataResponse({"study": status})


@write_view
async def delete_study(request: Request) -> Response:
    """Delete a study: its trials, runs, curves and Optuna studies.
    ---
    summary: Delete a study (needs the token)
    security: [{bearer: []}]
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{deleted, runs}"}
      401: {description: missing or wrong token}
      403: {description: the server is read-only}
      404: {description: no such study}
    """
    name = study_name(request)
    runs = await run_in_threadpool(sources.delete_study, request.app.state.store, name)
    wrote(request)
    return DataResponse({"deleted": name, "runs": runs})
