"""The API's writes: create, extend, stop and delete a study, and keep a note beside it; each
needs the token (:func:`tuner.server.security.write_view`, which also answers their errors).

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
from tuner.server.api import STUDY, study_commands, study_name, wrote
from tuner.server.openapi import Answer, Operation, declare
from tuner.server.responses import DataResponse
from tuner.server.security import ApiError, write_view
from tuner.store.studies import NOTE_MAX_CHARS
from tuner.study.spec import LIMITS, PRUNERS, SAMPLERS


def _whole(key: str, description: str = "") -> dict[str, Any]:
    """A whole-number field within the command's limits (:data:`tuner.study.spec.LIMITS`)."""
    low, high = LIMITS[key]
    found: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    return found | ({"description": description} if description else {})


CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "task", "optimizers", "trials", "seeds"],
    "properties": {
        "name": {"type": "string"},
        "task": {"type": "string", "description": "an installed task's name"},
        "optimizers": {"type": ["array", "string"], "items": {"type": "string"},
                       "description": "names, as a list or 'a,b'"},
        "trials": _whole("trials", "trials per optimizer"),
        "seeds": _whole("seeds", "seeds per trial"),
        "sampler": {"type": "string", "enum": list(SAMPLERS)},
        "pruner": {"type": "string", "enum": list(PRUNERS)},
        "budget": _whole("budget", "training budget per run (the task's unit)"),
        "schedule": {"type": "string"},
        "param_range": {"type": "array", "items": {"type": "string"},
                        "description": "ranges like 'adamw.lr=1e-4:1e-1'"},
        "seed": _whole("seed", "the sampler's seed"),
        "first_seed": _whole("first_seed", "the first training seed (seeds first_seed .. "
                             "first_seed + seeds - 1)"),
        "description": {"type": "string"},
        "warm_start": {"type": "boolean"},
        "training": {"type": "object", "description": "training options, fixed (a value) or "
                     "tuned ([low, high], or a list of choices), as a study file's [training]"},
        "task_params": {"type": "object", "description": "the task's parameters (width, ...)"},
    },
}
"""A create request: ``tuner study create``'s flags, by the same names (the schema's and the
check's, :func:`_create_settings`)."""

CREATE_KEYS = tuple(CREATE_BODY["properties"])

EXTEND_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["trials"],
    "properties": {
        "trials": _whole("trials", "more trials of each optimizer"),
        "optimizers": {"type": "array", "items": {"type": "string"},
                       "description": "the optimizers to add to (default: every one)"},
    },
}
"""An extend request: ``tuner study extend --trials N --optimizers A,B``."""

EXTEND_KEYS = tuple(EXTEND_BODY["properties"])


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
        value, most = settings[key], LIMITS[key][1]
        # the command's own limits, before any use of a number too large for the store;
        # resolve() checks the rest, as for the CLI
        if isinstance(value, int) and not isinstance(value, bool) and value > most:
            raise ApiError(400, f"{key} must be at most {most:,}, got {value:,}")
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
    """The request's JSON body; 415 unless it is declared JSON (a form or text/plain body is
    what a cross-site form can send without asking)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "the request body must be JSON, sent with Content-Type: "
                            f"application/json (got {media_type or 'none'!r})")
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None


@declare(Operation(
    "Create a study (needs the token)",
    answer=Answer("the study and the commands that run it",
                  {"study": "as /api/studies/{name} has it", "commands": "run, worker"}),
    status=201, errors={409: "the name is taken"}, body=CREATE_BODY, writes=True,
))
@write_view
async def create_study(request: Request) -> Response:
    """Create a study, checked as ``tuner study create`` checks it; it is run by workers.
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


@declare(Operation(
    "Add trials to a study (needs the token)",
    (STUDY,),
    Answer("the study and the commands that run the trials",
           {"study": "as /api/studies/{name} has it", "commands": "run, worker"}),
    errors={404: "no such study"}, body=EXTEND_BODY, writes=True,
))
@write_view
async def extend_study(request: Request) -> Response:
    """Add trials to some optimizers of a study (``tuner study extend --trials``); workers run
    them. Adding rounds until the ranking is settled (``--until-settled``) is a loop of the
    command line and of ``tuner.Study.extend``, which train between the rounds: the server
    never trains, so it has no such request.
    """
    trials, optimizers = _extend_settings(await _json_body(request))
    store, name = request.app.state.store, study_name(request)
    await run_in_threadpool(sources.extend_study, store, name, trials, optimizers)
    wrote(request)
    status = await run_in_threadpool(sources.study_status, store, name)
    return DataResponse({"study": status, "commands": study_commands(request, name)})


@declare(Operation(
    "Stop a study (needs the token)",
    (STUDY,),
    Answer("its status after the stop", {"study": "as /api/studies/{name} has it"}),
    errors={404: "no such study", 409: "the study is not running: nothing to stop"},
    writes=True,
))
@write_view
async def stop_study(request: Request) -> Response:
    """Ask a study's workers to finish the trial in hand and exit; ``tuner study run`` resumes.
    """
    store, name = request.app.state.store, study_name(request)
    await run_in_threadpool(sources.stop_study, store, name)
    wrote(request)
    status = await run_in_threadpool(sources.study_status, store, name)
    return DataResponse({"study": status})


NOTE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["note"],
    "properties": {
        "note": {"type": "string", "maxLength": NOTE_MAX_CHARS,
                 "description": "the text to keep beside the study (\"\" removes it)"},
    },
}
"""A note request: ``{"note": "..."}``."""


def _note(body: Any) -> str:
    """The note of a request body, with its JSON type checked (the store checks its length)."""
    if not isinstance(body, dict) or set(body) != {"note"}:
        raise ApiError(400, 'the request body must be a JSON object {"note": "<text>"}')
    note = body["note"]
    if not isinstance(note, str):
        raise ApiError(400, f"note must be a string, got {note!r}"[:200])
    return note


@declare(Operation(
    "Keep a note beside a study (needs the token)",
    (STUDY,),
    Answer("the note as kept", {"study": "the study's name", "note": "its note"}),
    errors={404: "no such study"}, body=NOTE_BODY, writes=True,
))
@write_view
async def set_note(request: Request) -> Response:
    """Keep a note beside a study (at most 10,000 characters; an empty one removes it): free
    text its page shows, which nothing else reads.
    """
    note = _note(await _json_body(request))
    store, name = request.app.state.store, study_name(request)
    kept = await run_in_threadpool(sources.set_study_note, store, name, note)
    wrote(request)
    return DataResponse({"study": name, "note": kept})


@declare(Operation(
    "Delete a study (needs the token)",
    (STUDY,),
    Answer("what was deleted", {"deleted": "the study's name", "runs": "runs deleted"}),
    errors={404: "no such study"}, writes=True,
))
@write_view
async def delete_study(request: Request) -> Response:
    """Delete a study: its trials, runs, curves and Optuna studies.
    """
    name = study_name(request)
    runs = await run_in_threadpool(sources.delete_study, request.app.state.store, name)
    wrote(request)
    return DataResponse({"deleted": name, "runs": runs})
