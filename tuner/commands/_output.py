"""Output helpers shared by the commands: ``--json`` or a table."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_options(function: F) -> F:
    """Add ``--json`` to a command: print JSON instead of a table."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
    )(function)


def print_json(data: Any) -> None:
    from tuner.store.values import plain_json  # on use: the store's package loads SQLAlchemy

    click.echo(json.dumps(plain_json(data), indent=2))


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def print_table(
    rows: Iterable[Sequence[Any]], columns: Sequence[str], title: str | None = None
) -> None:
    """A plain-text table (rich draws it; no colour when the output is not a terminal).

    Every text is shown as it is, never read as rich markup: a task named
    ``digits-mlp[width=32]`` keeps its brackets."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title is not None else None, box=None,
                  header_style="bold", pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(Text(column), no_wrap=index == 0)  # names are never wrapped or cut
    for row in rows:
        table.add_row(*(Text(format_value(v)) for v in row))
    # On a terminal, fit it; into a file or a pipe, never wrap a row.
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 400
    Console(width=width).print(table)
