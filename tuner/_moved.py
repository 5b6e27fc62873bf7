"""Old module paths that keep working for one release: the old module is replaced, on import, by
the module that now holds its code, with a :class:`DeprecationWarning` that names the new path."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings


def moved(old: str, new: str) -> None:
    """Make ``import old`` give the module ``new`` (the same object, so classes stay identical);
    for a package, each of its submodules too (``tuner.batched.sign``)."""
    warnings.warn(
        f"{old} moved to {new}; the old path will be removed in the next release",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        sys.modules[f"{old}.{info.name}"] = importlib.import_module(f"{new}.{info.name}")
