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
from tuner.store.values import plain_json
from tuner.version import __version__

TEMPLATES = Path(__file__).with_name("templates")


@functools.lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    """The template set (loaded once), escaping every value."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True
    )
    environment.policies["json.dumps_kwargs"] = {"sort_keys": False, "allow_nan": False}
    environment.filters["lr"] = _format_lr
    environment.filters["metric"] = _format_metric
    environment.filters["spread"] = _format_spread
    environment.filters["plural"] = _plural
    environment.filters["number"] = _format_number
    environment.filters["params"] = _format_params
    environment.filters["when"] = _format_time
    environment.globals["version"] = __version__
    return Jinja2Templates(env=environment)


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


def _format_lr(value: Any) -> str:
    from tuner.advice import format_lr

    return format_lr(value) if isinstance(value, (int, float)) else "-"


def _format_metric(value: Any, metric: str | None) -> str:
    """A value of ``metric`` as everywhere else (an accuracy in percent: tuner.js's
    ``metricText`` follows the same rule)."""
    from tuner.advice.formatting import format_metric

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return format_metric(float(value) + 0.0, metric or "")  # + 0.0: no "-0"


def _format_spread(value: Any, metric: str | None) -> str:
    from tuner.advice.formatting import format_spread

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "?"
    return format_spread(float(value) + 0.0, metric or "")


def _plural(count: Any, word: str, many: str | None = None) -> str:
    """``1 seed``, ``2 seeds`` (``many`` for a plural that is not word + s)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def _format_number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value + 0.0:.4g}"
    return str(value)


def _format_params(params: Any) -> str:
    """``lr=1e-3, beta1=0.9``: a learning rate as learning rates are written."""
    if not isinstance(params, dict) or not params:
        return "-"
    return ", ".join(
        f"{key}={_format_lr(value) if key == 'lr' else _format_number(value)}"
        for key, value in params.items()
    )


def _format_time(value: Any) -> str:
    """An ISO timestamp as ``2025-01-31 12:00:05`` (UTC)."""
    return str(value).replace("T", " ")[:19] if value else "-"


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
