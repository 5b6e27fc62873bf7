"""The wheel ships what an installed tuner needs: migrations, their template, the plugins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean copy of the source tree (no build isolation: offline)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    for folder in ("tuner", "plugins", "alembic"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
         "--no-build-isolation", "-q", "-w", str(work / "dist")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (built,) = (work / "dist").glob("tuner-*.whl")
    return built


def test_wheel_contains_migrations_and_plugins(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tuner/migrations/env.py", "tuner/migrations/script.py.mako"} <= names
    for script in (REPO / "alembic" / "versions").glob("*.py"):
        assert f"tuner/migrations/versions/{script.name}" in names
    assert "tuner/store/models.py" in names and "tuner/commands/db.py" in names
    optimizers = sorted((REPO / "plugins" / "optimizers").glob("*.py"))
    assert optimizers
    for module in optimizers:
        assert f"tuner_plugins/optimizers/{module.name}" in names
    assert not any(name.startswith(("alembic/", "plugins/")) for name in names)


def test_migrations_run_from_the_unpacked_wheel(wheel, tmp_path):
    """An installed tuner finds its migrations inside the package, not in a source checkout."""
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    url = f"sqlite:///{tmp_path / 'from-wheel.db'}"
    code = (
        "import sys\n"
        "from tuner.store import upgrade\n"
        "from tuner.store.database import migrations_directory\n"
        "print(migrations_directory())\n"
        "print(upgrade(sys.argv[1]))\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(unpacked)}
    result = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                            cwd=tmp_path, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    location, revisions = result.stdout.strip().splitlines()
    assert Path(location) == (unpacked / "tuner" / "migrations").resolve()
    from tuner.store import HEAD_REVISION

    assert revisions == f"(None, '{HEAD_REVISION}')"
