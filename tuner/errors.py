"""The one exception family users see: each carries a single line that says what is wrong, and
the HTTP status the server answers it with (``status``): 400 unless a subclass says otherwise."""

from __future__ import annotations

LONGEST_LINE = 300
"""Characters of an error line kept by :func:`first_line` (a longer one ends in ``...``)."""


class TunerError(Exception):
    """A user-facing error; the CLI prints its message as one line and exits non-zero."""

    status = 400


class NotFoundError(TunerError):
    """What was asked for does not exist (a study, a task, runs of a task)."""

    status = 404


class AlreadyExistsError(TunerError):
    """What was to be created exists already (a study name is taken)."""

    status = 409


class ConflictError(TunerError):
    """What was asked does not fit the present state (stopping a study nobody runs)."""

    status = 409


class UnavailableError(TunerError):
    """A service tuner needs cannot be reached now (the database); trying again may work."""

    status = 503


class PluginError(TunerError):
    """A plugin failed to import or registered something invalid; the message names it."""


class UnknownNameError(NotFoundError, KeyError):
    """An optimizer, task or study name that does not exist; the message lists valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotInstalledError(UnknownNameError):
    """A name registered by a plugin whose package is not installed here; the message names
    the package and the command that installs it."""


def first_line(text: str, longest: int = LONGEST_LINE) -> str:
    """The first non-blank line of ``text``, stripped and cut to ``longest`` characters."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= longest else line[: longest - 3] + "..."


def describe_exception(error: BaseException) -> str:
    """``"TypeName: first line of the message"`` (or the type alone): one line for any error."""
    message = first_line(str(error))
    return first_line(f"{type(error).__name__}: {message}" if message else type(error).__name__)
