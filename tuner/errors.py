"""The one exception family users see: each carries a single line that says what is wrong."""

from __future__ import annotations


class TunerError(Exception):
    """A user-facing error; the CLI prints its message as one line and exits non-zero."""


class PluginError(TunerError):
    """A plugin failed to import or registered something invalid; the message names it."""


class UnknownNameError(TunerError, KeyError):
    """An optimizer, task or study name that does not exist; the message lists valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
