"""The ASGI application of ``tuner serve``: its state, its middleware and its routing table.

:func:`create_app` opens the store once and returns a Starlette app; uvicorn serves it. The
routing table at the bottom is the whole surface: each page beside its JSON twin, then the
writes, the OpenAPI document (from the endpoints' declarations) and the shipped assets.
"""

from __future__ import annotations

import functools
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from tuner.server import api, sources, writes
from tuner.server.api import json_view
from tuner.server.cache import FRESH_SECONDS, ReadCache
from tuner.server.openapi import document
from tuner.server.pages import page_view
from tuner.server.responses import DataResponse
from tuner.server.security import (
    MAX_BODY_BYTES,
    BodyLimit,
    EncodedSlash,
    SecurityHeaders,
    exception_handlers,
)
from tuner.version import __version__

STATIC = Path(__file__).with_name("static")

INFO = {
    "title": "tuner",
    "version": __version__,
    "description": "Which optimizer, and which learning rate: the store's advice and studies. "
    "Reads are open; writes need `Authorization: Bearer <TUNER_TOKEN>`.",
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API, from the endpoints' own declarations."""
    return document(ROUTES, INFO)


def openapi(request: Request) -> Response:
    """The OpenAPI document (built once: the routes do not change)."""
    return DataResponse(_document())


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return openapi_document()


def create_app(
    db: str | None = None, *, token: str | None = None, body_limit: int = MAX_BODY_BYTES,
    store: Any = None, fresh_seconds: float = FRESH_SECONDS,
) -> Starlette:
    """The app over the store at ``db`` (``$TUNER_DB``, else the default file).

    Read-only unless ``token`` is given; then creating, stopping and deleting studies need it
    as a bearer token. The store is opened here, so a wrong URL or an old schema fails at once
    with one line; ``store`` passes an open one instead (the app does not close it). Reads are
    remembered for ``fresh_seconds`` (:mod:`tuner.server.cache`).
    """
    own = store is None
    if own:
        store = sources.open_server_store(db, writable=bool(token))

    async def close(app: Starlette) -> Any:
        yield
        if own:
            store.dispose()

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(SecurityHeaders), Middleware(BodyLimit, limit=body_limit),
                    Middleware(EncodedSlash)],
        exception_handlers=exception_handlers(),
        lifespan=asynccontextmanager(close),
    )
    app.state.store = store
    app.state.token = token or None
    app.state.display_url = store.display_url
    app.state.cache = ReadCache(fresh_seconds)
    return app


def _page_and_twin(path: str, function: api.DataFunction, template: str) -> list[Route]:
    twin = "/api/" if path == "/" else "/api" + path
    return [
        Route(path, page_view(function, template), include_in_schema=False),
        Route(twin, json_view(function), methods=["GET"]),
    ]


ROUTES: list[BaseRoute] = [
    *_page_and_twin("/", api.home, "home.html"),
    *_page_and_twin("/tasks/{task_id:int}", api.task_detail, "task.html"),
    *_page_and_twin("/tasks/{task_id:int}/compare", api.task_compare, "compare.html"),
    *_page_and_twin("/tasks/{task_id:int}/optimizers/{optimizer}", api.task_optimizer,
                    "optimizer.html"),
    *_page_and_twin("/studies/{name}", api.study_detail, "study.html"),
    *_page_and_twin("/studies/{name}/trials/{trial_id:int}", api.study_trial, "trial.html"),
    Route("/api/tasks", json_view(api.tasks), methods=["GET"]),
    Route("/api/tasks/{task_id:int}/ranking", json_view(api.task_ranking), methods=["GET"]),
    Route("/api/tasks/{task_id:int}/advice", json_view(api.task_advice), methods=["GET"]),
    Route("/api/tasks/{task_id:int}/lr-points", json_view(api.task_lr_points), methods=["GET"]),
    Route("/api/tasks/{task_id:int}/curves", json_view(api.task_curves), methods=["GET"]),
    Route("/api/tasks/{task_id:int}/budget-curves", json_view(api.task_budget_curves),
          methods=["GET"]),
    Route("/api/compare", json_view(api.compare_tasks), methods=["GET"]),
    Route("/api/studies", json_view(api.studies), methods=["GET"]),
    Route("/api/studies", writes.create_study, methods=["POST"]),
    Route("/api/studies/{name}", writes.delete_study, methods=["DELETE"]),
    Route("/api/studies/{name}/extend", writes.extend_study, methods=["POST"]),
    Route("/api/studies/{name}/stop", writes.stop_study, methods=["POST"]),
    Route("/api/studies/{name}/note", writes.set_note, methods=["PUT"]),
    Route("/api/studies/{name}/trials", json_view(api.study_trials), methods=["GET"]),
    Route("/api/studies/{name}/runs", json_view(api.study_runs), methods=["GET"]),
    Route("/api/studies/{name}/export", api.study_export, methods=["GET"]),
    Route("/api/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    # the server's scripts, then the stylesheet it shares with the report (tuner/report/static)
    Mount("/static", StaticFiles(directory=STATIC, packages=[("tuner.report", "static")]),
          name="static"),
]
