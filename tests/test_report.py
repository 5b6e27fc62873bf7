"""The HTML report and its plots, from a real study: files exist, are PNGs, and are linked."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from tuner.advice.budgets import BudgetCurve
from tuner.cli import cli
from tuner.report import (
    LrPoint,
    SeedCurve,
    Trajectory,
    TrajectoryPanel,
    plot_budget_curves,
    plot_learning_curves,
    plot_lr_sensitivity,
    plot_performance_profile,
    plot_trajectories,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<img src=x onerror=alert(1)>"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


class Sections(HTMLParser):
    """Each <section> of a page: its heading, its text and its images' sources."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, list[str]]] = {}
        self._current: dict[str, list[str]] | None = None
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._current = {"heading": [], "text": [], "images": []}
        elif tag == "h2" and self._current is not None:
            self._in_heading = True
        elif tag == "img" and self._current is not None:
            self._current["images"] += [v for name, v in attrs if name == "src" and v]

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False
        elif tag == "section" and self._current is not None:
            self.sections["".join(self._current["heading"])] = self._current
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current["heading" if self._in_heading else "text"].append(data)


class ImageSources(HTMLParser):
    """Collects every <img src=...> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources += [value for name, value in attrs if name == "src" and value]


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 5000, f"{path} looks empty"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture(scope="module")
def studied(tmp_path_factory) -> str:
    """A store with a tiny real study of the quadratic bowl (adam and sgd, 2 seeds)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'tuner.db'}"
    # lr ranges where both optimizers reach the bowl's target, so every plot has data
    created = invoke("study", "create", "bowl", "--task", "quadratic", "--seeds", "2",
                     "--optimizers", "adam,sgd", "--trials", "4", "--pruner", "none",
                     "--param-range", "sgd.lr=0.03:0.09", "--param-range", "adam.lr=0.05:0.3",
                     "--db", url)
    assert created.exit_code == 0, created.output
    assert invoke("study", "run", "bowl", "--db", url).exit_code == 0
    return url


def test_report_writes_pngs_that_the_index_links(studied, tmp_path):
    out = tmp_path / "report"
    result = invoke("report", "--task", "quadratic", "--out", str(out), "--db", studied)
    assert result.exit_code == 0, result.output
    index = out / "index.html"
    parser = ImageSources()
    parser.feed(index.read_text(encoding="utf-8"))
    names = {Path(source).name for source in parser.sources}
    # quadratic records a trajectory, and its runs reach the target: every kind of plot is there
    assert names == {"lr_sensitivity.png", "learning_curves.png", "budget_curves.png",
                     "trajectories.png", "performance_profile.png"}
    for source in parser.sources:
        assert_png(out / source)
    page = index.read_text(encoding="utf-8")
    assert "On quadratic, use" in page and "<table>" in page


def test_report_draws_the_expected_best_after_k_trials(studied, tmp_path):
    report = write_report("quadratic", tmp_path / "report", db=studied)
    figure = tmp_path / "report" / "budget_curves.png"
    assert figure in report.images
    assert_png(figure)
    parser = Sections()
    parser.feed(report.index.read_text(encoding="utf-8"))
    section = parser.sections["Expected best after k trials"]
    assert section["images"] == ["budget_curves.png"]
    caption = " ".join("".join(section["text"]).split())
    assert "random-search equivalent" in caption and "under TPE" in caption
    assert "count both the seeds and which configurations were drawn" in caption  # 2 seeds
    assert "compares the optimizers at 4 trials" in caption


def copy_of(url: str, tmp_path: Path) -> str:
    """A copy of an SQLite store (WAL included), to change without touching the original."""
    import sqlite3

    copy = tmp_path / "copy.db"
    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{copy}"


def test_report_draws_the_stored_paths_without_training(studied, tmp_path, monkeypatch):
    import tuner.training
    from tuner.advice import advise
    from tuner.plugin.registry import get_registry
    from tuner.report import stored_trajectories
    from tuner.store import open_store

    calls = []
    real_train = tuner.training.train

    def counting_train(*args, **kwargs):
        calls.append(args)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(tuner.training, "train", counting_train)
    out = tmp_path / "report"
    result = invoke("report", "--task", "quadratic", "--out", str(out), "--db", studied)
    assert result.exit_code == 0, result.output
    assert calls == []  # nothing was trained to draw the paths
    assert_png(out / "trajectories.png")
    assert "No stored path" not in (out / "index.html").read_text(encoding="utf-8")

    store = open_store(studied, create=False)
    try:
        paths, pathless = stored_trajectories(store, advise("quadratic", db=store).ranking)
    finally:
        store.dispose()
    start = tuple(get_registry().task("quadratic").start)
    assert sorted(paths) == ["adam", "sgd"] and pathless == []
    for runs in paths.values():
        assert len(runs) == 1 and runs[0].seed == 0  # the first seed's run
        assert runs[0].points[0] == pytest.approx(start) and len(runs[0].points) > 10
    assert calls == []


def test_runs_without_a_stored_path_are_left_out_and_the_page_says_so(studied, tmp_path):
    from sqlalchemy import text

    from tuner.store import make_engine

    url = copy_of(studied, tmp_path)
    engine = make_engine(url)
    with engine.begin() as connection:  # as if sgd's runs were recorded before 0005
        connection.execute(text("UPDATE tuner_runs SET trajectory = NULL WHERE optimizer = 'sgd'"))
    engine.dispose()
    out = tmp_path / "partial"
    assert invoke("report", "--task", "quadratic", "--out", str(out), "--db", url).exit_code == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "No stored path for sgd" in page and "left out of the path plot" in page
    assert_png(out / "trajectories.png")  # adam's path is still drawn

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE tuner_runs SET trajectory = NULL"))
    engine.dispose()
    out = tmp_path / "none"
    assert invoke("report", "--task", "quadratic", "--out", str(out), "--db", url).exit_code == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "No stored path for adam, sgd" in page or "No stored path for sgd, adam" in page
    assert not (out / "trajectories.png").exists() and "trajectories.png" not in page


def test_the_report_and_the_live_pages_share_one_layout_and_one_stylesheet(studied, tmp_path):
    """The report's page extends the server's base template and links the same CSS file,
    copied beside it; the server serves that file from the report's package."""
    from starlette.testclient import TestClient

    from tuner.server import create_app

    report = write_report("quadratic", tmp_path / "report", db=studied)
    page = report.index.read_text(encoding="utf-8")
    assert '<link rel="stylesheet" href="style.css">' in page
    copied = (tmp_path / "report" / "style.css").read_bytes()
    with TestClient(create_app(studied)) as client:
        live = client.get("/").text
        (link,) = re.findall(r'<link rel="stylesheet" href="([^"]+)">', live)
        served = client.get(link)
        assert served.status_code == 200 and served.content == copied
        assert client.get("/static/tuner.js").status_code == 200  # the server's own assets
    (footer,) = re.findall(r"<footer>.*</footer>", live)
    assert footer in page
    assert "<script" not in page  # the live pages' data and scripts stay on the server


def test_the_report_escapes_what_it_shows(studied, tmp_path):
    """A name from the store is shown as text, never read as HTML: here sgd renamed, in a copy
    of the store, to markup."""
    from sqlalchemy import text

    from tuner.store import make_engine

    url = copy_of(studied, tmp_path)
    engine = make_engine(url)
    with engine.begin() as connection:
        for table in ("tuner_config_stats", "tuner_seed_stats", "tuner_runs", "tuner_trials"):
            connection.execute(text(f"UPDATE {table} SET optimizer = :name "
                                    "WHERE optimizer = 'sgd'"), {"name": HOSTILE})
    engine.dispose()
    out = tmp_path / "report"
    assert invoke("report", "--task", "quadratic", "--out", str(out), "--db", url).exit_code == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in page  # in the ranking table
    assert HOSTILE not in page and "<img src=x" not in page


def test_one_drawing_of_paths_serves_the_report_and_tuner_plot():
    """``tuner plot trajectories`` trains its runs, then draws them with the report's function."""
    import tuner
    import tuner.report.plots as plots
    from tuner.report.trajectories import plot_trajectories as drawing

    assert plot_trajectories is drawing and plots.plot_trajectories is drawing
    source = Path(tuner.__file__).parent
    defined = [path.relative_to(source).as_posix() for path in sorted(source.rglob("*.py"))
               if "def plot_trajectories(" in path.read_text(encoding="utf-8")]
    assert defined == ["report/trajectories.py"]


def test_report_on_an_empty_store_says_so(sqlite_url, tmp_path):
    result = invoke("report", "--task", "quadratic", "--out", str(tmp_path / "r"),
                    "--db", sqlite_url)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: no tuner store at {sqlite_url}; run a study first"


def test_plot_functions_on_synthetic_data(tmp_path):
    points = {
        "adam": [LrPoint(1e-4, 0.8, 0.01, 3, False), LrPoint(1e-3, 0.97, 0.005, 3, False),
                 LrPoint(1e-2, 0.9, 0.02, 3, False), LrPoint(1e-1, None, None, 0, True)],
        "sgd": [LrPoint(1e-2, 0.85, 0.01, 2, False), LrPoint(1e-1, 0.95, 0.01, 2, False)],
    }
    assert_png(plot_lr_sensitivity(points, "val_accuracy", "maximize", tmp_path / "s.png",
                                   good_lr={"adam": (5e-4, 3e-3)}, best_lr={"adam": 1e-3}))
    curves = {"adam": [SeedCurve([0, 10, 20], [0.1, 0.6, 0.9]),
                       SeedCurve([0, 10, 20], [0.1, 0.5, 0.95])]}
    assert_png(plot_learning_curves(curves, "val_accuracy", tmp_path / "c.png", target=0.9))

    def bowl(points):
        return points[..., 0] ** 2 + 10 * points[..., 1] ** 2

    paths = {"sgd": [Trajectory([(4.0, 3.0), (3.0, -1.0), (2.0, 0.5), (0.1, 0.0)])]}
    assert_png(plot_trajectories([TrajectoryPanel("sgd on the bowl", paths)], tmp_path / "t.png",
                                 function=bowl, minimum=(0.0, 0.0)))
    costs = {"a": {"adam": 100.0, "sgd": 300.0}, "b": {"adam": None, "sgd": 50.0}}
    assert_png(plot_performance_profile(costs, tmp_path / "p.png"))
    few = BudgetCurve("adam", 3, [0.9, 0.95, 0.96], [0.85, 0.92, 0.94], [0.93, 0.97, 0.98])
    rising = [0.8 + 0.005 * k for k in range(30)]
    many = BudgetCurve("sgd", 30, rising, [v - 0.02 for v in rising], [v + 0.02 for v in rising])
    assert_png(plot_budget_curves({"adam": few, "sgd": many}, "val_accuracy", "maximize",
                                  tmp_path / "b.png"))  # 30 trials: a log x axis


def test_report_without_the_task_plugin_draws_the_paths_alone(studied, tmp_path):
    """Everything a report shows comes from the store; only the loss contours need the task's
    plugin, and without it the stored paths are drawn on their own, with a note."""
    import os
    import subprocess
    import sys

    out = tmp_path / "report"
    environment = {**os.environ, "TUNER_PLUGINS": "sign", "MPLCONFIGDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "tuner", "report", "--task", "quadratic", "--out", str(out),
         "--db", studied], capture_output=True, text=True, timeout=300, env=environment,
    )
    assert result.returncode == 0, result.stderr
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Paths in the plane" in page and "Paths over the loss contours" not in page
    assert "the loss contours are left out" in page.lower()
    for name in ("lr_sensitivity.png", "learning_curves.png", "trajectories.png"):
        assert_png(out / name)
