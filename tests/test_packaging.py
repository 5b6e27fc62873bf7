"""The wheel is what a user installs: built from the sdist, installed (not editable) into a fresh
virtual environment, it runs the commands of a first session, plugins and server included.

The fresh environment must not download torch (several GB): the wheel is installed with
``--no-deps`` and the environment reaches the test environment's packages through a ``.pth``
file naming a folder of links to them. tuner's own editable install (its dist-info, its
``__editable__`` finder) and any other distribution that registers ``tuner`` plugins are left
out of that folder, so each entry point registers once, from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "tuner", "plugins", "alembic")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel that ``python -m build`` makes from a clean copy of the source
    tree (the wheel is built from the sdist, so the sdist is checked too; no build isolation:
    offline)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(work / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = (work / "dist").glob("tuner-*.tar.gz")
    (wheel,) = (work / "dist").glob("tuner-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def source_packages() -> set[str]:
    """Every folder of the source tree that holds Python code, by its installed path."""
    roots = {"tuner": "tuner", "plugins": "tuner_plugins", "alembic": "tuner/migrations"}
    found = set()
    for folder, installed in roots.items():
        for module in (REPO / folder).rglob("*.py"):
            if "__pycache__" not in module.parts:
                inside = module.parent.relative_to(REPO / folder).as_posix()
                found.add(installed if inside == "." else f"{installed}/{inside}")
    return found


def test_the_wheel_holds_every_package_and_its_data(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    folders = {name.rsplit("/", 1)[0] for name in names if name.endswith(".py")}
    assert source_packages() <= folders, source_packages() - folders
    for module in REPO.joinpath("tuner").rglob("*.py"):
        if "__pycache__" not in module.parts:
            assert module.relative_to(REPO).as_posix() in names
    assert {"tuner/migrations/env.py", "tuner/migrations/script.py.mako"} <= names
    for script in (REPO / "alembic" / "versions").glob("*.py"):
        assert f"tuner/migrations/versions/{script.name}" in names
    shipped = [p for p in (REPO / "plugins" / "tasks" / "data").iterdir() if p.is_file()]
    assert shipped and all(f"tuner_plugins/tasks/data/{p.name}" in names for p in shipped)
    static = [p for p in (REPO / "tuner").rglob("*") if p.is_file()
              and p.parent.name in ("static", "templates")]  # the server's and the report's
    assert static and all(p.relative_to(REPO).as_posix() in names for p in static)
    assert not any(name.startswith(("alembic/", "plugins/")) for name in names)


def test_a_missing_package_would_be_seen(tmp_path):
    """The check above compares against the folders on disk: a new package is in the list."""
    assert {"tuner/batched", "tuner/store", "tuner_plugins/optimizers",
            "tuner/migrations/versions"} <= source_packages()


# -- installed into a fresh environment ------------------------------------------------------


def _registers_tuner_plugins(info: Path) -> bool:
    points = info / "entry_points.txt"
    return points.exists() and "[tuner]" in points.read_text()


def shared_packages(folder: Path) -> Path:
    """A folder of links to the test environment's installed packages, without tuner itself
    (editable or not) and without other distributions of ``tuner`` plugins."""
    folder.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    left_out = {"tuner", "tuner_plugins"}
    for entry in site.iterdir():
        name = entry.name
        if name.endswith(".dist-info") and (
                name.split("-")[0].lower() == "tuner" or _registers_tuner_plugins(entry)):
            top = entry / "top_level.txt"
            left_out |= set(top.read_text().split()) if top.exists() else set()
            continue
        if name.startswith("__editable__") or name.endswith(".pth"):
            continue
        (folder / name).symlink_to(entry)
    for name in left_out:
        for candidate in (folder / name, folder / f"{name}.py"):
            if candidate.is_symlink():
                candidate.unlink()
    return folder


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (no dependencies: they come from
    the test environment through a .pth file); returns its ``bin`` folder."""
    work = tmp_path_factory.mktemp("fresh")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (site / "test-environment.pth").write_text(str(shared_packages(work / "shared")) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(built["wheel"])],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return venv / "bin"


def run_installed(bin_folder: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "TUNER_DB", "TUNER_PLUGINS")}
    env |= {"TUNER_DB": f"sqlite:///{cwd / 'tuner.db'}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(bin_folder / "tuner"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_installed_wheel_runs_a_first_session(installed, tmp_path):
    def ok(*args: str) -> str:
        done = run_installed(installed, tmp_path, *args)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done.stdout

    where = subprocess.run(
        [str(installed / "python"), "-c",
         "import tuner, tuner_plugins, tuner.migrations; "
         "print(tuner.__file__); print(tuner_plugins.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(path).is_relative_to(installed.parent) for path in where), where

    assert ok("--version").strip().endswith("0.1.0")
    optimizers = ok("optimizers", "list")
    shipped = ("adamw", "lion", "lookahead-", "bfgs", "schedulefree-adamw")
    assert all(name in optimizers for name in shipped)
    tasks = ok("tasks", "list")
    assert all(name in tasks for name in ("logreg", "digits-mlp", "charlm"))
    ok("db", "upgrade")
    ok("study", "create", "one", "--task", "logreg", "--optimizers", "adamw", "--trials", "1",
       "--seeds", "1", "--budget", "20")
    ok("study", "run", "one")
    assert "adamw" in ok("best", "--task", "logreg")

    from server_fixtures import free_port

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "TUNER_DB": f"sqlite:///{tmp_path / 'tuner.db'}"}
    env.pop("PYTHONPATH", None)
    server = subprocess.Popen([str(installed / "tuner"), "serve", "--port", str(port)],
                              cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        page = None
        for _ in range(300):  # at most 60 s for the server to answer
            if server.poll() is not None:
                break
            try:
                with urllib.request.urlopen(base + "/", timeout=5) as answer:
                    page = answer.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert page is not None, (tmp_path / "serve.log").read_text()
        assert "logreg" in page
        with urllib.request.urlopen(base + "/static/chart.umd.js", timeout=5) as answer:
            assert answer.status == 200 and len(answer.read()) > 10_000
        # the stylesheet the server shares with the report ships in the report's package
        with urllib.request.urlopen(base + "/static/style.css", timeout=5) as answer:
            assert answer.read() == (REPO / "tuner/report/static/style.css").read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_migrations_run_from_the_unpacked_wheel(built, tmp_path):
    """An installed tuner finds its migrations inside the package, not in a source checkout."""
    unpacked = tmp_path / "site"
    zipfile.ZipFile(built["wheel"]).extractall(unpacked)
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
