"""``tuner db ...``: where the store lives and which schema it is at; migrations.

The database is ``--db URL``, else ``$TUNER_DB``, else an SQLite file in the user's data
directory (``tuner db url`` prints which). Other commands take the same option: use
:func:`db_option`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tuner.commands._output import output_options, print_json

F = TypeVar("F", bound=Callable[..., Any])


def db_option(function: F) -> F:
    """Add ``--db URL`` to a command (passed as ``db``; None means ``$TUNER_DB`` or default)."""
    return click.option(
        "--db",
        "db",
        metavar="URL",
        default=None,
        help="Database URL (sqlite:///path or postgresql://...); default $TUNER_DB, "
        "else tuner.db in the user data directory.",
    )(function)


@click.group()
def db() -> None:
    """The SQL store: its location, schema revision and migrations."""


@db.command(name="upgrade")
@db_option
def upgrade_command(db: str | None) -> None:
    """Create tuner's tables, or migrate them to this tuner's schema.

    Safe to run on a database that Optuna already uses (its tables are left alone), and on one
    that is up to date (nothing happens).
    """
    from tuner.store import display_url, resolve_url, upgrade

    url = resolve_url(db)
    before, after = upgrade(url)
    if before == after:
        click.echo(f"{display_url(url)} is already at schema revision {after} (head).")
    else:
        click.echo(f"Upgraded {display_url(url)} from {before or 'an empty schema'} to {after}.")


@db.command(name="current")
@db_option
@output_options
def current_command(db: str | None, as_json: bool) -> None:
    """Show the database's schema revision and this tuner's (changes nothing)."""
    from tuner.store import HEAD_REVISION, display_url, resolve_url, schema_problem, schema_state

    url = resolve_url(db)
    state = schema_state(url)
    problem = schema_problem(state, url)
    if as_json:
        print_json(
            {
                "url": display_url(url),
                "revision": state.revision,
                "head": HEAD_REVISION,
                "state": state.state,
                "tuner_version": state.meta.get("tuner_version"),
                "problem": problem,
            }
        )
        return
    if state.state == "current":
        click.echo(f"{display_url(url)}: schema revision {state.revision} (head)")
    else:
        click.echo(f"{display_url(url)}: schema revision {state.revision or 'none'}")
        click.echo(problem)


@db.command(name="url")
def url_command() -> None:
    """Print the database URL commands use here (password masked)."""
    from tuner.store import display_url, resolve_url

    click.echo(display_url(resolve_url(None)))
