"""Lazy package faces: a package hands out names defined in its modules, importing each module on
first use, so that importing a package (and ``tuner`` itself) stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_face(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that returns ``names[name]`` from its module
    (``names`` maps a public name to the module, relative to ``package``, that defines it)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
