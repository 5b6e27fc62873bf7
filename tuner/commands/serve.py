"""``tuner serve``: the store over HTTP, a JSON API under ``/api/`` and live pages."""

from __future__ import annotations

import os
import socket

import click

from tuner.commands.db import db_option

TOKEN_ENV = "TUNER_TOKEN"


class ServeError(click.ClickException):
    """The server cannot start (the address is taken, the store cannot be opened)."""


def _check_address(host: str, port: int) -> None:
    """Fail with one line before uvicorn starts when the address cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ServeError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ServeError(
                f"cannot listen on {host}:{port}: {error.strerror or error}"
            ) from None


@click.command(name="serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
def serve_command(db: str | None, host: str, port: int) -> None:
    """Serve the store: pages and a JSON API for tasks, advice and studies; Ctrl-C stops.

    Read-only unless $TUNER_TOKEN is set; then creating, stopping and deleting studies need
    the header Authorization: Bearer <token>. The server never trains: start workers with
    the command each study's page shows.
    """
    token = os.environ.get(TOKEN_ENV) or None
    _check_address(host, port)
    import uvicorn

    from tuner.server import create_app

    app = create_app(db, token=token)
    shown = f"[{host}]" if ":" in host else host
    mode = "writes need $TUNER_TOKEN" if token else "read-only (set $TUNER_TOKEN to allow writes)"
    click.echo(f"tuner serve: {app.state.display_url} at http://{shown}:{port}/ ({mode})")
    if token and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("Note: plain HTTP carries the token in the clear; put TLS in front of it.")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
    finally:
        app.state.store.dispose()
