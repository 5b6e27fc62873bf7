"""tuner: which optimizer, and which learning rate, for this model, answered from measurements.

The public API is small and listed in ``__all__``. Importing ``tuner`` is cheap: torch, optuna and
sqlalchemy load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import Any

from tuner.version import __version__


def __getattr__(name: str) -> Any:
    """``tuner.hookimpl``, the decorator for a plugin's hook implementations
    (``@tuner.hookimpl``), made on first use: commands that load no plugin skip pluggy; and
    ``tuner.Study`` (:mod:`tuner.study_api`), loaded on first use."""
    if name == "Study":
        from tuner.study_api import Study

        return Study
    if name == "hookimpl":
        import pluggy

        marker = globals()["hookimpl"] = pluggy.HookimplMarker("tuner")
        return marker
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")


__all__ = ["__version__", "Study", "hookimpl", "advise", "best", "optimizers", "tasks", "train"]


def optimizers() -> dict[str, Any]:
    """All registered optimizer plugins, by name."""
    from tuner.plugins import get_registry

    return dict(get_registry().optimizers)


def tasks() -> dict[str, Any]:
    """All registered task plugins, by name."""
    from tuner.plugins import get_registry

    return dict(get_registry().tasks)


def train(*args: Any, **kwargs: Any) -> Any:
    """One training run; see :func:`tuner.training.train`."""
    from tuner.training import train as _train

    return _train(*args, **kwargs)


def best(*args: Any, **kwargs: Any) -> Any:
    """Optimizers ranked on a task from the store; see :func:`tuner.advice.best`."""
    from tuner.advice import best as _best

    return _best(*args, **kwargs)


def advise(*args: Any, **kwargs: Any) -> Any:
    """The recommendation for a task, with its evidence; see :func:`tuner.advice.advise`."""
    from tuner.advice import advise as _advise

    return _advise(*args, **kwargs)
