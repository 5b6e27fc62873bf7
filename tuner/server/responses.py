"""What the server answers with: JSON data, pages rendered from the templates, and errors as
either (``{"error": "<one line>"}``, or the error page for a page's URL).

Every module of the server builds its responses here; this module imports no other part of the
server.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from tuner.errors import first_line
from tuner.report.templating import environment
from tuner.store.values import plain_json
from tuner.version import __version__

TEMPLATES = Path(__file__).with_name("templates")
STYLESHEET_URL = f"/static/style.css?v={__version__}"
"""Where a page finds the shared stylesheet (:data:`tuner.report.templating.STYLESHEET`), served
under ``/static`` beside the server's own assets."""


@functools.lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    """The template set (loaded once): the server's pages first, then the layout and filters
    they share with the report (:mod:`tuner.report.templating`)."""
    return Jinja2Templates(
        env=environment(STYLESHEET_URL, jinja2.FileSystemLoader(TEMPLATES))
    )


def render(request: Request, template: str, data: dict[str, Any], status: int = 200) -> Response:
    """``template`` over ``data``, with a link to the page's JSON twin."""
    twin = "/api" + request.url.path if request.url.path != "/" else "/api/"
    if request.url.query:
        twin += "?" + request.url.query
    return templates().TemplateResponse(
        request, template, {"data": data, "api_path": twin}, status_code=status
    )


def error_page(request: Request, status: int, message: str) -> Response:
    """The error page: the status and the one-line message."""
    return render(request, "error.html", {"status": status, "error": message}, status)


class DataResponse(JSONResponse):
    """JSON that never fails on NaN or infinity (they are written as null)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            plain_json(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}`` with ``status``."""
    return DataResponse({"error": one_line(message)}, status_code=status, headers=headers)


def one_line(message: str) -> str:
    """The first non-empty line of a message (a user error is one line by contract)."""
    return first_line(message) or "error"
