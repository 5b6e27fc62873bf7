"""The JSON API's declarations, read by the endpoints and written into its OpenAPI 3.1 document.

Each parameter is one object: the endpoint reads the request's value through it
(:meth:`Param.read`, a 400 with one line when the value cannot be used) and the document
describes it from the same fields (name, range, default, choices), so the two cannot disagree.
:func:`declare` attaches an endpoint's :class:`Operation` (summary, parameters, body, answers);
:func:`document` gathers the operations of the app's routes into the document served at
``/api/openapi.json``, which ``openapi-spec-validator`` accepts (tests/test_server_api.py).

An answer's schema names the keys of the JSON object it is (each described, types left open:
the data is the CLI's ``--json``, documented with its command); errors are ``{"error": "<one
line>"}``. Every operation with a query parameter or a body may answer 400; every write may
answer 401, 403 and 413, and 415 when it takes a body.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from tuner.errors import TunerError

OPENAPI_VERSION = "3.1.0"
ERROR = {"$ref": "#/components/schemas/Error"}
LONGEST_TEXT = 1000
"""The longest text a query parameter may hold."""


class BadParameter(TunerError):
    """A query or path parameter that cannot be used (400)."""


# -- parameters ----------------------------------------------------------------------------------


class Param:
    """One parameter of the query (or of the path, :attr:`where`); :meth:`read` is its value."""

    where = "query"

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def raw(self, request: Request) -> str | None:
        """The value as sent, stripped; None when absent or empty."""
        found = request.query_params.get(self.name)
        if found is None or found.strip() == "":
            return None
        if "\x00" in found or len(found) > LONGEST_TEXT:
            raise BadParameter(f"{self.name} is not a usable value")
        return found.strip()

    def read(self, request: Request) -> Any:
        return self.raw(request)

    def to_openapi(self) -> dict[str, Any]:
        found = {"name": self.name, "in": self.where, "required": self.where == "path",
                 "schema": self.schema()}
        if self.description:
            found["description"] = self.description
        return found


class Text(Param):
    """A text: the value as sent (stripped), or None."""


class Whole(Param):
    """A whole number from ``low`` to ``high``; ``default`` when absent."""

    def __init__(self, name: str, low: int, high: int, default: int | None = None,
                 description: str = "") -> None:
        super().__init__(name, description)
        self.low, self.high, self.default = low, high, default

    def schema(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if self.default is not None:
            found["default"] = self.default
        return found

    def read(self, request: Request) -> int | None:
        text = self.raw(request)
        if text is None:
            return self.default
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or not self.low <= value <= self.high:
            raise BadParameter(
                f"{self.name} must be a whole number from {self.low} to {self.high}, got {text!r}"
            )
        return value


class Number(Param):
    """A finite number (``1e-3``, ``0.5``, ``-2``); None when absent."""

    def schema(self) -> dict[str, Any]:
        return {"type": "number"}

    def read(self, request: Request) -> float | None:
        text = self.raw(request)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise BadParameter(f"{self.name} must be a finite number, got {text!r}")
        return value


class Choice(Param):
    """One of ``choices``; ``default`` when absent."""

    def __init__(self, name: str, choices: Sequence[str], default: str | None = None,
                 description: str = "") -> None:
        super().__init__(name, description)
        self.choices, self.default = tuple(choices), default

    def schema(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "string", "enum": list(self.choices)}
        if self.default is not None:
            found["default"] = self.default
        return found

    def read(self, request: Request) -> str | None:
        return check_choice(self.name, self.raw(request) or self.default, self.choices)


class Names(Param):
    """A list of names, ``a,b`` or the parameter repeated; None when absent."""

    def read(self, request: Request) -> list[str] | None:
        parts = []
        for raw in request.query_params.getlist(self.name):
            if "\x00" in raw or len(raw) > LONGEST_TEXT:
                raise BadParameter(f"{self.name} is not a usable value")
            parts += [part.strip() for part in raw.split(",") if part.strip()]
        return parts or None


class PathText(Param):
    """A text in the path (the router has matched it)."""

    where = "path"

    def read(self, request: Request) -> str:
        return str(request.path_params[self.name])


class PathId(PathText):
    """A record's id in the path (``{name:int}`` in the route: a whole number)."""

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1}

    def read(self, request: Request) -> int:  # type: ignore[override]
        return int(request.path_params[self.name])


def check_choice(name: str, value: str | None, choices: Sequence[str]) -> str | None:
    """``value`` when it is one of ``choices`` (or None); BadParameter otherwise."""
    if value is not None and value not in choices:
        raise BadParameter(f"{name} must be one of: {', '.join(choices)}; got {value!r}")
    return value


# -- operations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A successful answer: ``keys`` of the JSON object it is, each with what it holds, or the
    ``content`` by media type (a list, a CSV text)."""

    description: str
    keys: dict[str, str] = field(default_factory=dict)
    content: dict[str, dict[str, Any]] | None = None

    def to_openapi(self) -> dict[str, Any]:
        content = self.content
        if content is None:
            schema = {"type": "object", "required": list(self.keys),
                      "properties": {key: {"description": text}
                                     for key, text in self.keys.items()}}
            content = {"application/json": {"schema": schema}}
        return {"description": self.description, "content": content}


@dataclass(frozen=True)
class Operation:
    """What one endpoint takes and answers: the parameters it reads, the JSON body it reads
    (a JSON Schema), its successful answer and status, and its other answers (status: when)."""

    summary: str
    parameters: tuple[Param, ...] = ()
    answer: Answer = Answer("the data")
    status: int = 200
    errors: dict[int, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    writes: bool = False

    def all_errors(self) -> dict[int, str]:
        """Every error status with when it is answered: the declared ones and those of the
        parameters, the body and the token."""
        found: dict[int, str] = {}
        if self.body is not None or any(p.where == "query" for p in self.parameters):
            found[400] = "a parameter or a body that cannot be used (one line says why)"
        if self.writes:
            found |= {401: "missing or wrong token", 403: "the server is read-only",
                      413: "body too large"}
        if self.body is not None:
            found[415] = "the body is not declared JSON (Content-Type: application/json)"
        return dict(sorted((found | self.errors).items()))

    def to_openapi(self, operation_id: str, description: str) -> dict[str, Any]:
        found: dict[str, Any] = {"operationId": operation_id, "summary": self.summary}
        if description:
            found["description"] = description
        if self.parameters:
            found["parameters"] = [p.to_openapi() for p in self.parameters]
        if self.body is not None:
            found["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": self.body}}}
        if self.writes:
            found["security"] = [{"bearer": []}]
        responses: dict[str, Any] = {str(self.status): self.answer.to_openapi()}
        for status, when in self.all_errors().items():
            responses[str(status)] = {
                "description": when, "content": {"application/json": {"schema": ERROR}}}
        found["responses"] = responses
        return found


F = TypeVar("F", bound=Callable[..., Any])


def declare(operation: Operation) -> Callable[[F], F]:
    """Attach ``operation`` to an endpoint (kept by ``functools.wraps`` on its views)."""

    def attach(function: F) -> F:
        function.operation = operation  # type: ignore[attr-defined]
        return function

    return attach


def operation_of(endpoint: Any) -> Operation | None:
    return getattr(endpoint, "operation", None)


# -- the document --------------------------------------------------------------------------------


def document(routes: Iterable[BaseRoute], info: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the declared operations among ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue  # a page shares its JSON twin's declaration
        operation = operation_of(route.endpoint)
        if operation is None:
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        description = inspect.cleandoc(route.endpoint.__doc__ or "").strip()
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = operation.to_openapi(
                route.endpoint.__name__, description)
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "paths": paths,
        "components": {
            "schemas": {"Error": {
                "type": "object", "required": ["error"], "additionalProperties": False,
                "properties": {"error": {"type": "string", "description": "one line"}},
            }},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
