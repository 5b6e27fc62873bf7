"""The task layer: what a task is, and how a user's own task is found.

- :mod:`~tuner.task.contract`: :class:`Task` and :class:`Problem`, the contract a task plugin
  meets.
- :mod:`~tuner.task.builders`: :func:`from_function`, a task from plain functions.
- :mod:`~tuner.task.params`: task parameters (``digits-mlp[width=256]`` is a task of its own).
- :mod:`~tuner.task.reference`: references to a user's task (``file.py:NAME``, ``module:NAME``),
  the fingerprint of its code, and the check that it has not changed under a study.
- :mod:`~tuner.task.loading`: loading the object a reference names.
- :mod:`~tuner.task.hints`: "did you mean ...?" for a reference that names nothing.
- :mod:`~tuner.task.failures`: an exception in the user's code as one line at the user's file
  and line.

The names below are handed out on first use (importing this package imports no torch).
"""

from tuner._faces import lazy_face

__all__ = ["DIRECTIONS", "KINDS", "Problem", "Task", "from_function"]

__getattr__ = lazy_face(__name__, {
    "Task": "contract", "Problem": "contract", "KINDS": "contract", "DIRECTIONS": "contract",
    "from_function": "builders",
})
