"""tuner: which optimizer, and which learning rate, for this model, answered from measurements.

The public face, for users and plugin authors alike, is the names in ``__all__``::

    from tuner import OptimizerPlugin, Float, hookimpl      # a plugin
    from tuner import Task, Study, train, best, advise       # your own model, studies, advice

Importing ``tuner`` is cheap: each name is loaded on first use (torch, optuna and sqlalchemy load
only when something that needs them is used), and is the object itself, with its own signature
and documentation. Where things live, by layer: :mod:`tuner.task`, :mod:`tuner.plugin`,
:mod:`tuner.training`, :mod:`tuner.study`, :mod:`tuner.store`, :mod:`tuner.advice`,
:mod:`tuner.driver`, :mod:`tuner.report`, :mod:`tuner.server`, :mod:`tuner.commands`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tuner.version import __version__

if TYPE_CHECKING:
    from tuner.advice.ranking import best
    from tuner.advice.recommend import advise
    from tuner.plugin.optimizer import OptimizerPlugin
    from tuner.plugin.space import Categorical, Float, Int
    from tuner.study_api import Study
    from tuner.task.builders import from_function
    from tuner.task.contract import Task
    from tuner.training.loop import train

__all__ = [
    "__version__", "Categorical", "Float", "Int", "OptimizerPlugin", "Study", "Task", "advise",
    "best", "from_function", "hookimpl", "optimizers", "tasks", "train",
]

_FACE = {
    **dict.fromkeys(["Categorical", "Float", "Int"], "tuner.plugin.space"),
    "OptimizerPlugin": "tuner.plugin.optimizer",
    "Task": "tuner.task.contract",
    "from_function": "tuner.task.builders",
    "train": "tuner.training.loop",
    "best": "tuner.advice.ranking",
    "advise": "tuner.advice.recommend",
    "Study": "tuner.study_api",
}


def __getattr__(name: str) -> Any:
    """A public name, loaded on first use; ``hookimpl`` is the decorator for a plugin's hook
    implementations (``@tuner.hookimpl``), made on first use so that commands that load no plugin
    skip pluggy."""
    if name == "hookimpl":
        import pluggy

        marker = globals()["hookimpl"] = pluggy.HookimplMarker("tuner")
        return marker
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module 'tuner' has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(module), name)
    return value


def optimizers() -> dict[str, Any]:
    """All registered optimizer plugins, by name."""
    from tuner.plugin.registry import get_registry

    return dict(get_registry().optimizers)


def tasks() -> dict[str, Any]:
    """All registered task plugins, by name."""
    from tuner.plugin.registry import get_registry

    return dict(get_registry().tasks)
