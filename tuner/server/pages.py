"""The pages: each one a Jinja2 template over the data its JSON twin under ``/api/`` returns.

Templates escape every value (autoescape), the page's data travels to the browser as JSON in a
``<script type="application/json">`` element (Jinja's ``tojson`` escapes ``<``, ``>`` and
``&``), and the page's script writes text with ``textContent`` only: no name, parameter or
summary from the store is ever parsed as HTML.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tuner.server.api import DataFunction, read
from tuner.server.responses import render
from tuner.server.security import handle_error
from tuner.store.values import plain_json


def page_view(function: DataFunction, template: str) -> Callable[[Request], Any]:
    """Render a data function's result into ``template`` (``data`` in the template)."""

    @functools.wraps(function)
    async def view(request: Request) -> Response:
        try:
            data = plain_json(await read(function, request))
            return render(request, template, data)
        except Exception as error:  # an error page, never a traceback
            return await handle_error(request, error)

    return view


