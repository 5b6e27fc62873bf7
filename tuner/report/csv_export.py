"""A study's runs as CSV that a spreadsheet cannot run: ``tuner study export`` and the API's.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be
read by Excel, LibreOffice or Google Sheets as a formula (``=HYPERLINK(...)`` in a task or
parameter name becomes a live link; worse ones run commands). As the OWASP guidance on CSV
injection says, such a cell is written with a ``'`` in front, which makes the spreadsheet show
it as text, and every text cell is quoted (its quotes doubled), so no comma, quote or line
break inside a value can start a cell of its own. Numbers are written bare, as numbers
(``-0.5`` is a number, not a formula). The cost: a program reading the CSV sees the ``'``; the
JSON export keeps every text exactly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from tuner.store.values import plain_json

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection")."""

EMPTY_COLUMNS = ("study", "optimizer", "seed", "status")
"""The header of an export with no run."""


def inert(value: Any) -> Any:
    """A cell's value as a spreadsheet may open it: text that would start a formula gets a
    leading ``'``; anything else is unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def runs_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows (``tuner.store.studies.export_rows``) as CSV text: a header, one line each;
    non-finite numbers are empty cells, formula-like text is made inert."""
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else list(EMPTY_COLUMNS)
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([inert(column) for column in columns])
    for row in plain_json(list(rows)):
        writer.writerow([inert(row.get(column)) for column in columns])
    return buffer.getvalue()
