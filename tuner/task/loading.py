"""How a task reference is written: ``path/to/file.py:NAME`` or ``package.module:NAME``.

Parsing and the stored (canonical) form only: nothing here imports the referenced code, so
advice can match a reference against the store's task records without loading a task
(:mod:`tuner.task.reference` loads it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tuner.errors import TunerError

REFERENCE_FORMS = "path/to/file.py:NAME or package.module:NAME"
"""How a task of one's own is named, for help texts and errors."""


class TaskReferenceError(TunerError):
    """A task reference that cannot be loaded; the message names the reference."""


def is_reference(text: str) -> bool:
    """Whether ``text`` names a task by reference rather than by a registered name."""
    return ":" in text


@dataclass(frozen=True)
class Reference:
    """A parsed reference: the file or module, and the attribute in it."""

    text: str
    source: str
    attribute: str
    is_file: bool

    @classmethod
    def parse(cls, text: str) -> Reference:
        source, _, attribute = text.rpartition(":")
        source, attribute = source.strip(), attribute.strip()
        if not source or not attribute or not attribute.replace(".", "_").isidentifier():
            raise TaskReferenceError(
                f"task reference {text!r}: expected {REFERENCE_FORMS}"
            )
        is_file = source.endswith(".py") or os.sep in source or "/" in source
        if is_file:
            source = str(Path(source).expanduser().resolve())
        return cls(text, source, attribute, is_file)

    @property
    def canonical(self) -> str:
        """The reference as stored: an absolute path for a file."""
        return f"{self.source}:{self.attribute}"
