"""The page templates that the report and the server share: one Jinja environment, its filters,
the base layout (``templates/base.html``) and its stylesheet (``static/style.css``).

The report renders its ``index.html`` here; the server (above this layer) builds its template set
from :func:`environment` with its own templates searched first, and serves :data:`STATIC` beside
its own assets, so a report and a live page look alike. Every value is escaped (autoescape): no
name, parameter or caption from the store is ever read as HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from tuner.version import __version__

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
STYLESHEET = STATIC / "style.css"


def environment(stylesheet: str, *loaders: jinja2.BaseLoader) -> jinja2.Environment:
    """A template environment over ``loaders`` (searched first) and then the shared templates.

    ``stylesheet`` is where a page finds :data:`STYLESHEET` (the server's URL for it, or the
    copy beside a report); the filters ``lr``, ``number``, ``params`` and ``when`` write values
    as every page shows them.
    """
    templates = jinja2.Environment(
        loader=jinja2.ChoiceLoader([*loaders, jinja2.FileSystemLoader(TEMPLATES)]),
        autoescape=True,
    )
    templates.policies["json.dumps_kwargs"] = {"sort_keys": False, "allow_nan": False}
    templates.filters["lr"] = _format_lr
    templates.filters["metric"] = _format_metric
    templates.filters["spread"] = _format_spread
    templates.filters["plural"] = _plural
    templates.filters["number"] = _format_number
    templates.filters["params"] = _format_params
    templates.filters["when"] = _format_time
    templates.globals["version"] = __version__
    templates.globals["stylesheet"] = stylesheet
    return templates


def _format_lr(value: Any) -> str:
    """A learning rate as the advice writes it; ``-`` for none."""
    from tuner.advice import format_lr as advice_lr

    return advice_lr(value) if isinstance(value, (int, float)) else "-"


def _format_metric(value: Any, metric: str | None) -> str:
    """A value of ``metric`` as everywhere else (an accuracy in percent: tuner.js's
    ``metricText`` follows the same rule)."""
    from tuner.advice.formatting import format_metric

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return format_metric(float(value) + 0.0, metric or "")  # + 0.0: no "-0"


def _format_spread(value: Any, metric: str | None) -> str:
    """A spread of ``metric`` in the metric's own format; ``?`` where it is unknown."""
    from tuner.advice.formatting import format_spread

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "?"
    return format_spread(float(value) + 0.0, metric or "")


def _plural(count: Any, word: str, many: str | None = None) -> str:
    """``1 seed``, ``2 seeds`` (``many`` for a plural that is not word + s)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def _format_number(value: Any) -> str:
    """Four significant digits for a float, ``-`` for none, JSON's words for a bool."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value + 0.0:.4g}"  # + 0.0: no "-0"
    return str(value)


def _format_params(params: Any) -> str:
    """``lr=1e-3, beta1=0.9``: a learning rate as learning rates are written; ``-`` for none."""
    if not isinstance(params, dict) or not params:
        return "-"
    return ", ".join(
        f"{key}={_format_lr(value) if key == 'lr' else _format_number(value)}"
        for key, value in params.items()
    )


def _format_time(value: Any) -> str:
    """An ISO timestamp as ``2025-01-31 12:00:05`` (UTC)."""
    return str(value).replace("T", " ")[:19] if value else "-"
