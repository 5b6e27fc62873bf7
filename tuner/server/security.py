"""The server's guards: the write token, the request body limit, and errors as one JSON line.

* Without a token the server is read-only: every write answers 403 and touches nothing. With
  ``TUNER_TOKEN`` set, a write needs ``Authorization: Bearer <token>`` (compared in constant
  time); a missing or wrong one answers 401. Every write endpoint is a :func:`write_view`.
* A request body larger than :data:`MAX_BODY_BYTES` is refused with 413 before it is read whole.
* A path with an encoded slash (``%2F``) is not found (:class:`EncodedSlash`).
* Every error is ``{"error": "<one line>"}`` with its status (an HTML page for the pages);
  an unexpected exception is logged on the server and answers 500 without a traceback.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuner.errors import TunerError
from tuner.server.responses import error_page, error_response, one_line
from tuner.store.retry import first_line, is_disconnect

MAX_BODY_BYTES = 64 * 1024
"""The largest request body accepted (a study definition is well under a kilobyte)."""

logger = logging.getLogger("tuner.server")


class ApiError(TunerError):
    """An error of the request itself (its token, its body), to answer with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def require_writer(request: Request) -> None:
    """Let a write through only with the configured token; raise ApiError otherwise."""
    token: str | None = request.app.state.token
    if not token:
        raise ApiError(
            403, "this server is read-only: start it with TUNER_TOKEN set to allow writes"
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise ApiError(
            401, "a write needs the header Authorization: Bearer <token>",
            {"WWW-Authenticate": 'Bearer realm="tuner"'},
        )


WriteHandler = Callable[[Request], Awaitable[Response]]


def write_view(handler: WriteHandler) -> WriteHandler:
    """A write endpoint: the token is checked first (:func:`require_writer`), and any error,
    raised there or by ``handler``, is answered as one JSON line with its status; a body over
    the limit is left to :class:`BodyLimit`, which answers 413."""

    @functools.wraps(handler)
    async def view(request: Request) -> Response:
        try:
            require_writer(request)
            return await handler(request)
        except BodyTooLarge:
            raise
        except Exception as error:
            return await handle_error(request, error)

    return view


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes with 413 (JSON)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = True
            if too_big:
                await self._refuse(scope, receive, send)
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"the request body is larger than {self.limit} bytes")
        await response(scope, receive, send)


class BodyTooLarge(Exception):
    """Raised while a view reads a body past the limit; :class:`BodyLimit` answers 413."""


class EncodedSlash:
    """ASGI middleware: a path holding an encoded slash (``%2F``) names nothing: 404.

    The router matches the decoded path, where ``%2F`` is a real ``/``: ``/api/studies/
    q1%2Ftrials`` would answer as the trials of study ``q1``. No name in a URL of tuner's can
    hold a ``/`` (study names cannot, tasks are ids), so such a path is not found, as JSON or
    as the error page.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = bytes(scope.get("raw_path") or b"").split(b"?", 1)[0]
        if scope["type"] == "http" and b"%2f" in path.lower():
            request = Request(scope, receive)
            message = "Not Found: a name in a URL cannot hold '/' (%2F)"
            response = await handle_error(request, HTTPException(404, message))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


SECURITY_HEADERS = {
    # Scripts only from tuner's own files: an injected inline handler could not run even if
    # a value escaped its escaping. Styles likewise (the charts set theirs through the DOM).
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """ASGI middleware: the headers above on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)


RETRY_AFTER_SECONDS = "5"
"""What a 503 asks the client to wait (the database is away, or restarting)."""


def _wants_page(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.url.path != "/api"


async def handle_error(request: Request, error: Exception) -> Response:
    """Every error the app raises or meets, as JSON (or an HTML page for a page's URL)."""
    headers: dict[str, str] | None = None
    if isinstance(error, HTTPException):
        status, message = error.status_code, str(error.detail)
        headers = dict(error.headers or {}) or None
    elif isinstance(error, TunerError):  # each carries its own status (tuner.errors)
        status, message = error.status, str(error)
        headers = getattr(error, "headers", None) or None
        if status == 503:
            headers = {**(headers or {}), "Retry-After": RETRY_AFTER_SECONDS}
    elif is_disconnect(error):  # the database is away: the pool reconnects once it is back
        status, message = 503, f"the database is unreachable: {first_line(error)}"
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
        logger.warning("%s %s: %s", request.method, request.url.path, one_line(message))
    else:
        logger.error(
            "%s %s failed: %s: %s", request.method, request.url.path, type(error).__name__,
            one_line(str(error)), exc_info=(type(error), error, error.__traceback__),
        )
        status, message = 500, "internal error; the server's log has the details"
    if _wants_page(request) and request.method in ("GET", "HEAD"):
        return error_page(request, status, one_line(message))
    return error_response(status, message, headers)


def exception_handlers() -> dict[Any, Any]:
    """The handlers to give Starlette: HTTP errors, tuner's errors and anything else."""
    return {HTTPException: handle_error, Exception: handle_error}
