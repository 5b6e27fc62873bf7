"""The help of every ``--task`` option: a registered name, or a reference to one's own code."""

from __future__ import annotations

from tuner.task.loading import REFERENCE_FORMS

TO_TRAIN = (
    f"The task: a registered name (tuner tasks list), or your own as {REFERENCE_FORMS} "
    "(NAME: a tuner.Task subclass, an instance, or a function returning one)."
)
"""For commands that build the task and train it."""

IN_STORE = (
    "The task: its name in the store, or the reference its studies were created from "
    f"({REFERENCE_FORMS})."
)
"""For commands that read a task's runs from the store."""
