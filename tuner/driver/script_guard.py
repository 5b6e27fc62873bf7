"""Refusing study calls that a starting worker process makes by re-running the user's script.

Local worker processes are spawned (:mod:`tuner.driver.processes`): each starts a fresh
interpreter that first re-runs the script that started the study, as the module
``__mp_main__``. A script whose ``tuner.Study.create(...)`` / ``study.run(...)`` are not under
``if __name__ == "__main__":`` would so create and run the study again in every worker, each
failing its own way while the study itself never runs.

:func:`refuse_in_starting_worker` stops that at the first such call, before anything is written:
in one of tuner's workers (a process named ``tuner-worker-N``) the process exits at once with
:data:`UNGUARDED_EXIT_CODE` and says nothing, and the driver that started it raises
:class:`UnguardedScriptError`, once; in a process someone else started, the error is raised
there. The module imports nothing heavy: a starting worker stops within a fraction of a second.
"""

from __future__ import annotations

import os
import sys

from tuner.errors import TunerError

WORKER_NAME_PREFIX = "tuner-worker-"
"""The start of the name of every local worker process (``tuner-worker-0``, ...)."""

UNGUARDED_EXIT_CODE = 78
"""The exit status of a worker process that stopped while starting because the script it re-ran
calls tuner's study API unguarded (78 is ``EX_CONFIG`` of BSD's sysexits)."""

REIMPORTED_MAIN = "__mp_main__"
"""The module name under which a spawned process re-runs its parent's main script."""


class UnguardedScriptError(TunerError, SystemExit):
    """A script calls ``tuner.Study.create``/``run`` outside ``if __name__ == "__main__":``.

    It is a :class:`~tuner.errors.TunerError` like any other, and also a ``SystemExit``: when
    the script does not catch it, Python ends the script with the one line of its message and
    exit status 1, without a traceback (the traceback would only point at the call the
    message is about)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message  # what SystemExit prints, and exit status 1


def guard_message() -> str:
    """The one line that says what is wrong and shows the guard."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    rerun = f" (each re-runs {os.path.basename(script)})" if script else ""
    return (
        f"tuner.Study.create/run was called while a worker process was starting{rerun}: the "
        'script that calls it must guard it with  if __name__ == "__main__":'
    )


def starting_worker_process() -> bool:
    """Whether this call comes from a parent's main script that a spawned process is re-running
    while it starts (a module-level frame of ``__mp_main__`` is on the stack)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and (
            frame.f_globals.get("__name__") == REIMPORTED_MAIN
        ):
            return True
        frame = frame.f_back
    return False


def refuse_in_starting_worker() -> None:
    """Stop a call of the study API made by a script re-run in a starting process: a tuner
    worker exits with :data:`UNGUARDED_EXIT_CODE` (its parent reports it), any other process
    gets :class:`UnguardedScriptError`."""
    if not starting_worker_process():
        return
    multiprocessing = sys.modules.get("multiprocessing")
    name = multiprocessing.current_process().name if multiprocessing is not None else ""
    if name.startswith(WORKER_NAME_PREFIX):
        raise SystemExit(UNGUARDED_EXIT_CODE)
    raise UnguardedScriptError(guard_message())
