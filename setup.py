"""Which packages the wheel holds: found from the folders, never listed by hand.

Three source folders install under other names (``package-dir`` in pyproject.toml): ``tuner/``
as ``tuner``, ``plugins/`` as ``tuner_plugins`` and ``alembic/`` as ``tuner.migrations``. Plain
discovery sees only the first, so each folder is walked here and every folder below it that holds
Python code becomes a package under its installed name. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"tuner": "tuner", "tuner_plugins": "plugins", "tuner.migrations": "alembic"}


def packages() -> list[str]:
    """Every installed package name: a folder below a root that holds a ``.py`` file."""
    found = []
    for name, folder in ROOTS.items():
        root = Path(__file__).parent / folder
        for directory in sorted({path.parent for path in root.rglob("*.py")}):
            if "__pycache__" in directory.parts:
                continue
            inside = directory.relative_to(root).parts
            found.append(".".join((name, *inside)))
    return found


setup(packages=packages())
