"""The pages in a real headless Chromium (Debian's package, driven by Selenium).

One browser and one finished study serve every test here. A worker process runs a second
study while the home page is open: its progress must advance without a reload. A second store
holds hostile text (names, parameters, descriptions like ``<img src=x onerror=alert(1)>``):
the pages must show it as text, through the templates, the live updates and the chart's
tooltips alike, and never run or insert anything.

The README's pictures are made by ``python docs/screenshots.py`` (a real server over a study
of its own), not here.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_fixtures import (
    Server,
    create_study,
    finished_sqlite,
    more_configurations,
    serve,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = '"><script>alert(2)</script>'
TOKEN = "browser-token"

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "browser tests need Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver; .ci/run installs them)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="browser tests need selenium")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module; nothing is downloaded (Selenium Manager off)."""
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1300,1000", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)),
                              options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def finished_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite store with one finished study (shared by the tests, copied for hostile)."""
    folder = tmp_path_factory.mktemp("browser")
    finished_sqlite(folder)
    return folder / "tuner.db"


@pytest.fixture(scope="module")
def live(finished_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The finished store plus a study that a worker process is running, served."""
    folder = tmp_path_factory.mktemp("live")
    path = folder / "tuner.db"
    finished_sqlite(folder)
    url = f"sqlite:///{path}"
    create_study(url, name="live", trials=30, budget=150)
    worker = subprocess.Popen(
        [sys.executable, "-m", "tuner", "study", "run", "live", "--db", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    server = serve(url, folder / "serve.log")
    try:
        yield server
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        server.stop()


def no_alert(driver: webdriver.Chrome) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"a dialog opened: {text!r}")


def nothing_injected(driver: webdriver.Chrome) -> None:
    """No dialog, no element the data could have made (the pages have no <img> at all)."""
    no_alert(driver)
    assert driver.find_elements(By.TAG_NAME, "img") == []
    sources = [s.get_attribute("src") or "inline" for s in
               driver.find_elements(By.TAG_NAME, "script")]
    assert all(s.split("?")[0].endswith(("/chart.umd.js", "/tuner.js")) or s == "inline"
               for s in sources), sources
    assert len([s for s in sources if s == "inline"]) == 1  # the page-data JSON element only
    assert driver.execute_script("return window.__xss === undefined")


def progress_of(driver: webdriver.Chrome, study: str) -> float:
    return float(driver.execute_script(
        """for (const row of document.querySelectorAll('#studies-body tr')) {
             if (row.dataset.study === arguments[0]) return row.querySelector('progress').value;
           } return -1;""", study))


def test_home_shows_live_progress_then_the_task_page(
    browser: webdriver.Chrome, live: Server, tmp_path: Path
) -> None:
    browser.get(live.base + "/")
    browser.execute_script("window.__loaded_once = true")
    start = progress_of(browser, "live")
    assert start >= 0, "the running study is listed"
    WebDriverWait(browser, 90, poll_frequency=0.5).until(
        lambda d: progress_of(d, "live") > start)
    assert browser.execute_script("return window.__loaded_once === true"), "no reload"
    assert int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-updates")) >= 1

    browser.find_element(By.LINK_TEXT, "quadratic").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "ranking"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#ranking tbody tr")
    assert [r.find_element(By.CLASS_NAME, "optimizer").text for r in rows][:2] != []
    assert re.match(r"On quadratic( \([^)]*\))?, use ", browser.find_element(By.ID, "advice").text)
    drawn = browser.execute_script(
        "const c = window.tunerCharts; return [c.lr.getDatasetMeta(0).data.length,"
        " c.curves.getDatasetMeta(0).data.length]")
    assert drawn[0] > 0 and drawn[1] > 0
    budget = browser.execute_script(
        "const canvas = document.getElementById('budget-chart'); const c = Chart.getChart(canvas);"
        " const lines = c.data.datasets.filter((d) => d.role === 'expected');"
        " const colours = (chart) => Object.fromEntries("
        "   chart.data.datasets.map((d) => [d.label, d.borderColor]));"
        " c.tooltip.setActiveElements([{datasetIndex: c.data.datasets.indexOf(lines[0]),"
        "   index: 1}], {x: 0, y: 0}); c.update();"
        " return {width: canvas.clientWidth, height: canvas.clientHeight,"
        "   same: c === window.tunerCharts.budget, colours: colours(c),"
        "   lr: colours(window.tunerCharts.lr), optimizers: lines.map((d) => d.label),"
        "   points: lines.map((d) => c.getDatasetMeta(c.data.datasets.indexOf(d)).data.length),"
        "   tooltip: c.tooltip.body.flatMap((b) => b.lines)}")
    assert budget["width"] > 0 and budget["height"] > 0 and budget["same"]
    assert budget["optimizers"] and all(n > 1 for n in budget["points"])
    # one colour per optimizer across the page's charts
    assert all(budget["colours"][name] == budget["lr"][name] for name in budget["optimizers"])
    (line,) = budget["tooltip"]
    assert re.fullmatch(rf"{re.escape(budget['optimizers'][0])}, 2 trials: \S+ \(\S+ - \S+\)",
                        line), line
    shot = tmp_path / "task-page.png"
    tall = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1300, max(1300, tall + 200))  # the whole page, charts included
    try:
        time.sleep(0.5)  # the charts follow the new size
        browser.save_screenshot(str(shot))
    finally:
        browser.set_window_size(1300, 1000)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    nothing_injected(browser)


LOOK = """
const look = {colours: {}, named: {}, axes: []};
for (const [key, chart] of Object.entries(window.tunerCharts)) {
  for (const set of chart.data.datasets) {
    if (set.role === "band") continue;
    const name = set.label.replace(/ [(]diverged[)]$/, "");
    look.colours[name] = [...(look.colours[name] || []), set.borderColor];
    look.named[name] = window.tunerColour(name);
  }
  for (const id of ["x", "y"]) {
    const scale = chart.scales[id];
    const values = chart.data.datasets.flatMap((set) => set.data.map((p) => p[id]))
      .filter((v) => typeof v === "number" && Number.isFinite(v));
    const ticks = scale.ticks.filter((t) => t.label !== "" && t.label !== undefined)
      .map((t) => t.value);
    look.axes.push({chart: key, axis: id, low: Math.min(...values), high: Math.max(...values),
                    ticks});
  }
}
return look;
"""

NUMBERS = [1.193e-06, 0.9667, 105.0, 12345.6, -0.5, 0.0, 1e-4, 0.00012345, 99999.5, 3.14159,
           2.5e-05, 0.004378037992864847, 40.03, 1.0, 0.99999]


def task_page_id(server: Server) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(server.base + "/api/tasks") as answer:
        return int(json.load(answer)["tasks"][0]["id"])


def test_one_look_across_pages(browser: webdriver.Chrome, live: Server) -> None:
    """The issue's looks: an optimizer's colour is its own on every page (from its name); every
    axis has a labelled tick beyond every point; the lr tooltip names the lr once; numbers are
    written one way (a value of a metric as the server's templates write it, an accuracy in
    percent), whether the server or the page's script writes them."""
    from tuner.report.templating import _format_metric, _format_number, _format_spread

    ident = task_page_id(live)
    looks = []
    for page in (f"/tasks/{ident}", f"/tasks/{ident}/compare"):
        browser.get(live.base + page)
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "return window.tunerCharts && window.tunerCharts.lr !== undefined"))
        looks.append(browser.execute_script(LOOK))
        nothing_injected(browser)
    task, compare = looks
    for look in looks:
        for name, colours in look["colours"].items():
            assert set(colours) == {look["named"][name]}, (name, colours)
    shared = set(task["colours"]) & set(compare["colours"])
    assert shared >= {"adam", "sgd"}
    assert all(task["named"][name] == compare["named"][name] for name in shared)
    assert task["named"]["adam"] != task["named"]["sgd"]
    # and tell apart at a glance: any two optimizers on a page at least 60 apart in RGB (of 441
    # at most; the closest pair of the palette, brown and grey, is 67 apart; the teals adam and
    # sgd once got from the hash were 23 apart)
    rgb = {name: [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
           for name, colour in task["named"].items()}
    for first in rgb:
        for second in rgb:
            if first < second:
                assert math.dist(rgb[first], rgb[second]) >= 60, (first, second, rgb)
    for axis in task["axes"] + compare["axes"]:
        where = (axis["chart"], axis["axis"])
        assert axis["ticks"], where
        if where == ("curves", "x") and axis["low"] == 0:
            assert min(axis["ticks"]) == 0  # steps start at 0: no negative step
        else:
            assert min(axis["ticks"]) < axis["low"], axis
        assert max(axis["ticks"]) > axis["high"], axis

    browser.get(live.base + f"/tasks/{ident}")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return window.tunerCharts && window.tunerCharts.lr !== undefined"))
    lines = browser.execute_script(
        "const c = window.tunerCharts.lr; const i = c.data.datasets.findIndex("
        "(d) => d.data.length > 0); c.tooltip.setActiveElements([{datasetIndex: i, index: 0}],"
        " {x: 0, y: 0}); c.update(); return c.tooltip.body.flatMap((b) => b.lines);")
    assert len([line for line in lines if line.startswith("lr")]) == 1, lines
    assert any(re.fullmatch(r"lr=\d(\.\d)?e-?\d+", line) for line in lines), lines
    assert re.fullmatch(r"loss \S+ ± \S+ \(2 seeds\)", lines[0]), lines

    for metric in ("loss", "val_accuracy"):
        written = browser.execute_script(
            "return arguments[0].map((v) => [window.tunerFormat.metricText(v, arguments[1]),"
            " window.tunerFormat.spreadText(v, arguments[1]), window.tunerFormat.number(v)])",
            NUMBERS, metric)
        assert written == [[_format_metric(v, metric), _format_spread(v, metric),
                            _format_number(v)] for v in NUMBERS], metric
    assert _format_metric(1.193e-06, "loss") == "1.193e-06"
    assert _format_metric(0.9667, "val_accuracy") == "96.7%"


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The page's console errors since the last call (the log is read once)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def test_the_study_history_and_a_trial_page_render(
    browser: webdriver.Chrome, live: Server
) -> None:
    """The new views in Chromium, with data and without a console error: the study page's
    history (best so far against trials, per optimizer) and a trial's page (each seed's
    curve), reached from the trials table."""
    console_errors(browser)
    browser.get(live.base + "/studies/tiny")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return window.tunerCharts && window.tunerCharts.history !== undefined"))
    history = browser.execute_script(
        "const c = window.tunerCharts.history; return c.data.datasets.filter("
        "(d) => d.role === 'best').map((d) => [d.label, d.data.length, d.borderColor,"
        " window.tunerColour(d.label)]);")
    assert sorted(name for name, *_ in history) == ["adam", "sgd"]
    assert all(points == 3 and drawn == named for _, points, drawn, named in history), history
    link = browser.find_element(By.CSS_SELECTOR, "#trials-body a.trial-link")
    number = link.text
    link.click()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return window.tunerCharts && window.tunerCharts.curves !== undefined"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith(f"Trial {number} of ")
    curves = browser.execute_script(
        "return window.tunerCharts.curves.data.datasets.map((d) => [d.seed, d.data.length])")
    assert [seed for seed, _ in curves] == [0, 1] and all(n >= 2 for _, n in curves)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#trial-runs tbody tr")) == 2
    assert console_errors(browser) == []
    nothing_injected(browser)


def make_hostile(url: str, marker: str = "") -> None:
    """Write hostile text where the store keeps names, parameters and descriptions."""
    from sqlalchemy import select, update

    from tuner.store import Run, Study, Trial, open_store

    store = open_store(url, create=False)
    try:
        with store.engine.begin() as connection:
            study = connection.execute(select(Study.id, Study.options)).first()
            options = dict(study.options or {}) | {"description": HOSTILE + HOSTILE_SCRIPT}
            connection.execute(update(Study).where(Study.id == study.id).values(options=options))
            for table in (Trial, Run):
                for row in connection.execute(select(table.id, table.params)).all():
                    params = dict(row.params or {}) | {HOSTILE + marker: HOSTILE_SCRIPT}
                    connection.execute(
                        update(table).where(table.id == row.id).values(params=params))
            first = connection.execute(select(Trial.id).order_by(Trial.id)).scalar()
            connection.execute(update(Trial).where(Trial.id == first).values(optimizer=HOSTILE))
            try:
                from tuner.store.models import TaskRow
            except ImportError:  # a store without task records
                return
            connection.execute(update(TaskRow).values(kind=HOSTILE))
    finally:
        store.dispose()


def unfinish(url: str) -> None:
    """One more trial per optimizer for the study: unfinished (idle), so its page polls."""
    from sqlalchemy import update

    from tuner.store import Study, open_store

    with open_store(url, create=False) as store, store.engine.begin() as connection:
        connection.execute(update(Study).values(
            trials_per_optimizer=Study.trials_per_optimizer + 1))


def api_fetches(driver: webdriver.Chrome, path: str) -> int:
    """How many times the page has asked for ``path`` (the browser's resource timing)."""
    return int(driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter((e) => new URL(e.name).pathname === arguments[0]).length", path))


def test_a_deleted_study_says_so_and_its_page_stops_asking(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    """The issue: a deleted study's open page kept saying "created" and polled 404s forever.
    A finished study's page does not poll at all (it changes no more)."""
    from tuner.driver import delete_study

    url = finished_sqlite(tmp_path)
    create_study(url, name="doomed")
    server = serve(url, tmp_path / "serve.log")
    try:
        browser.get(server.base + "/studies/doomed")
        WebDriverWait(browser, 30, poll_frequency=0.2).until(
            lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-updates")
                          or 0) >= 1)
        assert browser.find_element(By.ID, "study-status").text == "created"
        delete_study("doomed", url)
        WebDriverWait(browser, 30, poll_frequency=0.2).until(
            lambda d: d.find_elements(By.ID, "study-gone"))
        assert browser.find_element(By.ID, "study-status").text == "deleted"
        assert "was deleted" in browser.find_element(By.ID, "study-gone").text
        body = browser.find_element(By.TAG_NAME, "body")
        assert body.get_attribute("data-polling") == "off"
        asked = api_fetches(browser, "/api/studies/doomed")
        time.sleep(2.5 * 2)  # two polling intervals
        assert api_fetches(browser, "/api/studies/doomed") == asked

        browser.get(server.base + "/studies/tiny")
        assert browser.find_element(By.ID, "study-status").text == "finished"
        time.sleep(2.5)
        assert api_fetches(browser, "/api/studies/tiny") == 0
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-polling") is None
        nothing_injected(browser)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hostile(finished_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "tuner.db"
    finished_sqlite(folder)
    make_hostile(f"sqlite:///{path}")
    unfinish(f"sqlite:///{path}")
    # enough configurations of adam for an importance estimate, with a hostile parameter
    more_configurations(f"sqlite:///{path}",
                        cycled=(HOSTILE, (HOSTILE_SCRIPT, "plain", HOSTILE + "!")))
    server = serve(f"sqlite:///{path}", folder / "serve.log", token=TOKEN)
    server.url = f"sqlite:///{path}"  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def test_hostile_text_is_shown_as_text_everywhere(
    browser: webdriver.Chrome, hostile: Server
) -> None:
    browser.get(hostile.base + "/")
    nothing_injected(browser)
    assert HOSTILE in browser.find_element(By.ID, "tasks").text

    browser.find_element(By.CSS_SELECTOR, "a.task-link").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "lr-chart"))
    nothing_injected(browser)
    assert HOSTILE in browser.find_element(By.ID, "ranking").text
    # Hover the first point of the lr chart: its tooltip lists the (hostile) parameters.
    canvas = browser.find_element(By.ID, "lr-chart")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    x, y, width, height = browser.execute_script(
        "const c = window.tunerCharts.lr;"
        " const meta = c.data.datasets.map((_, i) => c.getDatasetMeta(i))"
        "   .find(m => m.data.length > 0);"
        " const p = meta.data[0]; return [p.x, p.y, c.width, c.height];")
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - width / 2), int(y - height / 2)).perform()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "return window.tunerCharts.lr.tooltip.getActiveElements().length > 0"))
    lines = browser.execute_script(
        "return window.tunerCharts.lr.tooltip.body.flatMap(b => b.lines)")
    assert any(HOSTILE in line and HOSTILE_SCRIPT in line for line in lines), lines
    nothing_injected(browser)

    browser.get(hostile.base + "/studies/tiny/trials/1")  # its optimizer is hostile too
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return window.tunerCharts && window.tunerCharts.curves !== undefined"))
    nothing_injected(browser)
    assert browser.find_element(By.ID, "trial-optimizer").text == HOSTILE
    assert HOSTILE in browser.find_element(By.ID, "trial-params").text
    assert HOSTILE_SCRIPT in browser.find_element(By.ID, "trial-params").text

    browser.get(hostile.base + "/studies/tiny")
    nothing_injected(browser)
    assert HOSTILE in browser.execute_script(
        "return window.tunerCharts.history.data.datasets.map((d) => d.label).join(' ')")
    assert browser.find_element(By.ID, "study-description").text == HOSTILE + HOSTILE_SCRIPT
    assert HOSTILE in browser.find_element(By.ID, "trials").text
    # A live update that brings new hostile text: it must arrive, as text.
    make_hostile(hostile.url, marker="-live")  # type: ignore[attr-defined]
    WebDriverWait(browser, 30, poll_frequency=0.3).until(
        lambda d: HOSTILE + "-live" in d.find_element(By.ID, "trials").text)
    nothing_injected(browser)
    time.sleep(0.5)
    no_alert(browser)


def wait_for_chart(driver: webdriver.Chrome, name: str) -> None:
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return window.tunerCharts && window.tunerCharts[arguments[0]] !== undefined", name))


def tooltip_lines(driver: webdriver.Chrome, chart: str, dataset: int = 0, index: int = 0
                  ) -> list[str]:
    """The tooltip of one point of a chart (``chart``: JavaScript naming it), as hovered."""
    return driver.execute_script(
        f"const c = {chart}; c.tooltip.setActiveElements([{{datasetIndex: arguments[0],"
        " index: arguments[1]}], {x: 0, y: 0}); c.update();"
        " return c.tooltip.body.flatMap((b) => b.lines);", dataset, index)


def test_the_optimizer_page_and_the_trials_table_sort_and_filter(
    browser: webdriver.Chrome, live: Server
) -> None:
    """The views optuna-dashboard users expect, in Chromium with data and no console error:
    an optimizer's page reached from the task's ranking (a slice per hyperparameter, parallel
    coordinates on [0, 1]); the study's trials sorted by a header's click (the value column
    asks the server, others sort what is shown) and filtered by status, optimizer and value."""
    console_errors(browser)
    # tiny's protocol (40 steps) beside the live study's: the link keeps the one shown
    browser.get(live.base + f"/tasks/{task_page_id(live)}?budget=40")
    link = browser.find_element(By.CSS_SELECTOR, "#ranking a.optimizer-link")
    name = link.text
    link.click()
    wait_for_chart(browser, "parallel")
    assert browser.find_element(By.ID, "optimizer-name").text == name
    assert "trained under 40 steps ·" in browser.find_element(By.ID, "protocol").text
    drawn = browser.execute_script(
        "const data = JSON.parse(document.getElementById('page-data').textContent);"
        " const c = window.tunerCharts;"
        " return {parameters: data.parameters.map((p) => p.name),"
        "  measured: data.configurations.filter((c) => c.mean !== null).length,"
        "  slices: c.slices.map((s) => s.getDatasetMeta(0).data.length),"
        "  lines: c.parallel.data.datasets.length,"
        "  labels: c.parallel.data.labels.map((l) => l[0]),"
        "  positions: c.parallel.data.datasets.flatMap((d) => d.data)}")
    assert drawn["parameters"] and len(drawn["slices"]) == len(drawn["parameters"])
    assert all(points >= 1 for points in drawn["slices"]), drawn
    assert drawn["lines"] == drawn["measured"] >= 1
    assert drawn["labels"][:-1] == drawn["parameters"] and drawn["labels"][-1] == "loss"
    assert all(p is None or 0 <= p <= 1 for p in drawn["positions"]), drawn["positions"]
    assert console_errors(browser) == []

    browser.get(live.base + "/studies/tiny")
    body = browser.find_element(By.TAG_NAME, "body")

    def loads() -> int:
        return int(body.get_attribute("data-trial-loads") or 0)

    def column(index: int) -> list[str]:
        return [row.find_elements(By.TAG_NAME, "td")[index].text
                for row in browser.find_elements(By.CSS_SELECTOR, "#trials-body tr")]

    value = browser.find_element(By.CSS_SELECTOR, "#trials th[data-sort=value]")
    value.click()
    WebDriverWait(browser, 10).until(lambda d: loads() == 1)
    values = [float(text) for text in column(4)]
    assert values == sorted(values) and len(values) == 6
    assert value.get_attribute("aria-sort") == "ascending"
    value.click()
    WebDriverWait(browser, 10).until(lambda d: loads() == 2)
    assert [float(text) for text in column(4)] == sorted(values, reverse=True)
    assert value.get_attribute("aria-sort") == "descending"

    Select(browser.find_element(By.NAME, "optimizer")).select_by_visible_text("adam")
    WebDriverWait(browser, 10).until(lambda d: loads() == 3)
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("complete")
    WebDriverWait(browser, 10).until(lambda d: loads() == 4)
    assert set(column(1)) == {"adam"} and len(column(1)) == 3
    assert browser.find_element(By.ID, "trials-count").text == "(3 of 3 matching)"
    adam = sorted(float(text) for text in column(4))
    bound = browser.find_element(By.NAME, "max_value")
    bound.send_keys(repr(adam[1]) + Keys.TAB)  # the change event: leaving the field
    WebDriverWait(browser, 10).until(lambda d: loads() == 5)
    assert sorted(float(text) for text in column(4)) == adam[:2]
    bound.send_keys(Keys.BACKSPACE * 30 + "-1000" + Keys.TAB)
    WebDriverWait(browser, 10).until(lambda d: loads() == 6)
    assert column(0) == ["No trial matches these filters."]

    browser.find_element(By.CSS_SELECTOR, "#trial-filters button[type=reset]").click()
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "trials-count").text == "(6 of 6 matching)")
    number = browser.find_element(By.CSS_SELECTOR, "#trials th[data-sort=number]")
    number.click()  # no filter, another column: the rows shown, sorted here
    numbers = [int(text) for text in column(0)]
    assert numbers == sorted(numbers) and loads() == 7
    assert value.get_attribute("aria-sort") == "none"
    links = browser.find_elements(By.CSS_SELECTOR, "#trials-body a.trial-link")
    assert len(links) == 6 and all("/studies/tiny/trials/" in a.get_attribute("href")
                                   for a in links)
    assert console_errors(browser) == []
    nothing_injected(browser)


def test_hostile_text_stays_text_on_the_optimizer_page_and_in_a_note(
    browser: webdriver.Chrome, hostile: Server
) -> None:
    """Hyperparameter names and values, in the importance bars, the slices' captions, ticks and
    hovers, and the parallel coordinates; a note saved from the page with the token, then shown
    by the page, live and after a reload."""
    console_errors(browser)
    browser.get(hostile.base + f"/tasks/{task_page_id(hostile)}/optimizers/adam")
    wait_for_chart(browser, "parallel")
    nothing_injected(browser)
    bars = browser.execute_script("return window.tunerCharts.importance.data.labels")
    assert HOSTILE in bars
    captions = [f.text for f in browser.find_elements(By.CSS_SELECTOR, ".slice-name")]
    index = captions.index(HOSTILE + " (choices)")
    ticks = browser.execute_script(
        "return window.tunerCharts.slices[arguments[0]].scales.x.ticks.map((t) => t.label)",
        index)
    assert HOSTILE_SCRIPT in ticks
    lines = tooltip_lines(browser, f"window.tunerCharts.slices[{index}]")
    assert f"{HOSTILE}={HOSTILE_SCRIPT}" in lines, lines
    labels = browser.execute_script("return window.tunerCharts.parallel.data.labels")
    choices = (HOSTILE_SCRIPT, "plain", HOSTILE + "!")
    column = [label[0] for label in labels].index(HOSTILE)
    assert labels[column][1].startswith(HOSTILE + "! | " + HOSTILE_SCRIPT[:5])  # the range
    lines = tooltip_lines(browser, "window.tunerCharts.parallel", 0, column)
    assert lines[0] in {f"{HOSTILE} {choice}" for choice in choices}, lines
    nothing_injected(browser)
    assert console_errors(browser) == []

    note = HOSTILE + "\n" + HOSTILE_SCRIPT
    browser.get(hostile.base + "/studies/tiny")
    browser.find_element(By.CSS_SELECTOR, "#note-edit summary").click()
    area = browser.find_element(By.CSS_SELECTOR, "#note-form textarea")
    area.clear()
    area.send_keys(note)
    browser.find_element(By.CSS_SELECTOR, "#note-form input[name=token]").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#note-form button[type=submit]").click()
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "note-message").text == "Saved.")
    shown = "return document.getElementById('study-note').textContent"
    assert browser.execute_script(shown) == note
    nothing_injected(browser)
    browser.refresh()
    assert browser.execute_script(shown) == note
    WebDriverWait(browser, 30).until(  # a live update brings it again, as text
        lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-updates")
                      or 0) >= 1)
    assert browser.execute_script(shown) == note
    nothing_injected(browser)
    assert console_errors(browser) == []
