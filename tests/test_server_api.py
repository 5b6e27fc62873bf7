"""The JSON API through Starlette's test client, on a real SQLite file and real PostgreSQL.

Each store holds a study that ``tuner study run`` finished; the endpoints must answer what the
CLI's functions answer, page correctly, refuse writes without the token (changing nothing) and
answer every error as one JSON line.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from server_fixtures import (
    OPTIMIZERS,
    SEEDS,
    STUDY,
    TRIALS,
    finished_sqlite,
    finished_store,
    more_configurations,
    postgres_database,
    serve,
)
from starlette.testclient import TestClient

from tuner.server import create_app

TOKEN = "s3cret-token-for-tests"
READ_ENDPOINTS = (
    "/api/", "/api/tasks", "/api/tasks/{id}", "/api/tasks/{id}/ranking",
    "/api/tasks/{id}/advice", "/api/tasks/{id}/lr-points", "/api/tasks/{id}/curves",
    "/api/tasks/{id}/budget-curves", "/api/tasks/{id}/compare", "/api/compare",
    "/api/tasks/{id}/optimizers/adam",
    "/api/studies", f"/api/studies/{STUDY}",
    f"/api/studies/{STUDY}/trials", f"/api/studies/{STUDY}/runs",
    f"/api/studies/{STUDY}/export", f"/api/studies/{STUDY}/trials/1", "/", "/tasks/{id}",
    "/tasks/{id}/compare", "/tasks/{id}/optimizers/adam", f"/studies/{STUDY}",
    f"/studies/{STUDY}/trials/1",
)


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=DATABASES)
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A store with one finished study, built once per module and database."""
    if request.param == "sqlite":
        yield finished_sqlite(tmp_path_factory.mktemp("api"))
    else:
        with postgres_database() as url:
            yield finished_store(url)


@pytest.fixture(scope="module")
def reader(store_url: str) -> Iterator[TestClient]:
    """A read-only server over the module's store."""
    with TestClient(create_app(store_url)) as client:
        yield client


def task_id(client: TestClient) -> int:
    (task,) = client.get("/api/tasks").json()["tasks"]
    assert task["name"] == "quadratic"
    return int(task["id"])


def test_every_read_endpoint_answers(reader: TestClient) -> None:
    ident = task_id(reader)
    for endpoint in READ_ENDPOINTS:
        response = reader.get(endpoint.format(id=ident))
        assert response.status_code == 200, (endpoint, response.text)
        if endpoint.startswith("/api/") and not endpoint.endswith("/export"):
            assert response.headers["content-type"].startswith("application/json")
        elif not endpoint.startswith("/api/"):
            assert "text/html" in response.headers["content-type"]
            assert "Content-Security-Policy" in response.headers


def test_advice_endpoints_return_what_the_cli_functions_return(
    reader: TestClient, store_url: str
) -> None:
    from tuner.advice import advise, rank_task
    from tuner.advice.ranking import what_would_settle
    from tuner.store.values import plain_json as plain

    ident = task_id(reader)
    ranking = reader.get(f"/api/tasks/{ident}/ranking").json()
    expected = rank_task("quadratic", db=store_url)
    what_would_settle(expected)  # as tuner best --json says it
    assert ranking == plain(expected.to_dict())
    assert {s["optimizer"] for s in ranking["optimizers"]} == set(OPTIMIZERS)
    advice = reader.get(f"/api/tasks/{ident}/advice?memory_budget=2n").json()
    assert advice == plain(advise("quadratic", db=store_url, memory_budget="2n").to_dict())
    assert advice["advice"].startswith("On quadratic, use ")
    page = reader.get(f"/api/tasks/{ident}").json()
    assert page["ranking"] == ranking and page["advice"]["advice"] == advice["advice"]
    points = reader.get(f"/api/tasks/{ident}/lr-points").json()["points"]
    assert set(points) == set(OPTIMIZERS)
    assert all(p["lr"] == p["params"]["lr"] for found in points.values() for p in found)
    curves = reader.get(f"/api/tasks/{ident}/curves").json()["curves"]
    assert all(len(curves[name]) == SEEDS for name in curves)
    compare = reader.get(f"/api/tasks/{ident}/compare?optimizers=sgd,adam").json()
    assert [s["optimizer"] for s in compare["optimizers"]] == ["sgd", "adam"]
    assert compare["ties"][0]["optimizers"] == ["sgd", "adam"]
    across = reader.get("/api/compare").json()
    assert across["tasks"] == ["quadratic"] and across["task_ids"] == {"quadratic": ident}
    # tasks are named by id here too (the issue: ?tasks=1 answered "no runs for task '1'")
    chosen = reader.get(f"/api/compare?tasks={ident}").json()
    assert chosen == across
    study = reader.get(f"/api/studies/{STUDY}").json()["study"]
    assert (study["task"], study["task_id"]) == ("quadratic", ident)
    assert [s["task_id"] for s in reader.get("/api/studies").json()["studies"]] == [ident]
    assert [s["task_id"] for s in reader.get("/api/").json()["studies"]] == [ident]


def test_budget_curves_are_those_of_the_python_function(
    reader: TestClient, store_url: str
) -> None:
    """The JSON twin and the task page's data hold each ranked optimizer's curve, in ranking
    order, as :func:`tuner.advice.curves.curves_of` computes it."""
    from tuner.advice import rank_task
    from tuner.advice.curves import curves_of

    ident = task_id(reader)
    answer = reader.get(f"/api/tasks/{ident}/budget-curves").json()
    ranking = rank_task("quadratic", db=store_url)
    expected = curves_of(ranking, store_url)
    assert [c["optimizer"] for c in answer["budget_curves"]] == [
        s.optimizer for s in ranking.optimizers]
    assert answer["trials_compared"] == ranking.trials_compared == TRIALS
    for found in answer["budget_curves"]:
        curve = expected[found["optimizer"]]
        assert found["trials"] == curve.trials == TRIALS and found["seed_noise"] is True
        for key in ("expected", "low", "high"):
            # the same computation on the same numbers: at most a last-bit difference
            assert found[key] == pytest.approx(getattr(curve, key), rel=1e-12, abs=1e-300)
    page = reader.get(f"/api/tasks/{ident}").json()
    assert page["budget_curves"] == answer["budget_curves"]


def test_a_studys_history_and_a_trials_page(reader: TestClient) -> None:
    """The views optuna-dashboard users expect: the best so far against trials per optimizer,
    and each trial's own page with its parameters and each seed's curve."""
    detail = reader.get(f"/api/studies/{STUDY}").json()
    history = detail["history"]
    assert set(history) == set(OPTIMIZERS)
    for o in detail["study"]["per_optimizer"]:
        h = history[o["optimizer"]]
        assert h["trials"] == list(range(1, TRIALS + 1))
        seen = [v for v in h["values"] if v is not None]
        assert h["best"] == [min(seen[: i + 1]) for i in range(len(seen))]  # all complete
        assert h["best"][-1] == o["best_value"]
    first = reader.get(f"/api/studies/{STUDY}/trials?limit=1").json()["items"][0]
    page = reader.get(f"/api/studies/{STUDY}/trials/{first['id']}").json()
    trial = page["trial"]
    assert (trial["id"], trial["optimizer"], trial["params"]) == (
        first["id"], first["optimizer"], first["params"])
    assert page["study"]["metric"] == "loss" and page["study"]["task"] == "quadratic"
    assert [run["seed"] for run in trial["runs"]] == list(range(SEEDS))
    for run in trial["runs"]:
        assert run["status"] == "complete" and run["error"] is None
        curve = run["curve"]
        assert len(curve["steps"]) == len(curve["values"]) >= 2
        assert curve["values"][-1] == pytest.approx(run["final_metric"], rel=1e-12)
    html = reader.get(f"/studies/{STUDY}/trials/{first['id']}").text
    assert "Trial" in html and 'id="curve-chart"' in html
    assert f'href="/studies/{STUDY}/trials/{first["id"]}"' in reader.get(
        f"/studies/{STUDY}").text  # the trials table links each trial to its page
    for missing in (f"/api/studies/{STUDY}/trials/999999", "/api/studies/nosuch/trials/1"):
        answer = reader.get(missing)
        assert answer.status_code == 404 and list(answer.json()) == ["error"]


HOSTILE = "<img src=x onerror=alert(1)>"


def test_an_optimizers_page_says_what_tuner_best_importance_says(tmp_path: Path) -> None:
    """Per (task, optimizer): the importance is the command's own (``tuner best --importance
    --json``), every configuration is there with its parameters for the slices and the
    parallel coordinates, the axes are ordered by importance, and the task page links it."""
    from click.testing import CliRunner

    from tuner.cli import cli

    url = finished_sqlite(tmp_path)
    made = more_configurations(url, extra={HOSTILE: "on"})
    result = CliRunner().invoke(cli, ["best", "--task", "quadratic", "--importance", "--json",
                                      "--db", url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (expected,) = [found for found in json.loads(result.output)["importance"]
                   if found["optimizer"] == "adam"]
    with TestClient(create_app(url)) as client:
        ident = task_id(client)
        answer = client.get(f"/api/tasks/{ident}/optimizers/adam")
        assert answer.status_code == 200, answer.text
        data = answer.json()
        ranking = client.get(f"/api/tasks/{ident}/ranking").json()
        task_page = client.get(f"/tasks/{ident}").text
        page = client.get(f"/tasks/{ident}/optimizers/adam").text
    importance = data["importance"]
    assert importance["configurations"] == expected["configurations"] == TRIALS + len(made)
    assert list(importance["shares"]) == list(expected["shares"])
    # the same function on the same rows: at most a last-bit difference
    assert importance["shares"] == pytest.approx(expected["shares"], rel=1e-12)
    assert next(iter(importance["shares"])) == "lr"  # the fixture's results follow the lr
    assert importance["sentence"].startswith("for adam on quadratic, lr explains ")
    (standing,) = [s for s in ranking["optimizers"] if s["optimizer"] == "adam"]
    assert data["standing"] == standing and data["protocol"] == ranking["protocol"]["text"]

    configurations = data["configurations"]
    assert len(configurations) == TRIALS + len(made)
    means = [c["mean"] for c in configurations]
    assert means == sorted(means)  # best first (loss: lowest)
    for params in made:
        (found,) = [c for c in configurations if c["params"] == params]
        # the mean of the fixture's two seeds, 0.00 and 0.01 above the bowl: float sums
        assert found["mean"] == pytest.approx(
            1000 * (math.log10(params["lr"]) + 2) ** 2 + 0.005, rel=1e-9, abs=1e-9)
        assert found["seeds"] == 2 and not found["diverged"]
    axes = {axis["name"]: axis for axis in data["parameters"]}
    assert [axis["name"] for axis in data["parameters"]][:2] == list(importance["shares"])[:2]
    assert set(axes) == {name for c in configurations for name in c["params"]}
    assert (axes["lr"]["scale"], axes["beta1"]["scale"]) == ("log", "linear")
    assert axes["lr"]["low"] == min(c["params"]["lr"] for c in configurations)
    assert axes[HOSTILE] == {"name": HOSTILE, "scale": "categorical", "low": None,
                             "high": None, "choices": ["on"]}

    assert f'href="/tasks/{ident}/optimizers/adam"' in task_page
    assert page.count('class="slice-chart"') == len(axes)
    assert 'id="importance-chart"' in page and 'id="parallel-chart"' in page
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_parameter_axes_read_the_scale_from_the_values() -> None:
    from tuner.server.axes import parameter_axes

    configurations = [
        {"params": {"lr": 0.02, "eps": 1e-8, "beta1": 0.5, "wd": 0.0, "k": 1, "kind": "a",
                    "flag": True}},
        {"params": {"lr": 0.03, "eps": 1e-6, "beta1": 0.99, "wd": 0.1, "k": 20, "kind": "b",
                    "flag": False, "mixed": 1}},
        {"params": {"lr": 0.05, "eps": 1e-7, "beta1": 0.9, "wd": 1e-5, "k": 5, "kind": "a",
                    "mixed": "x"}},
    ]
    axes = {axis["name"]: axis for axis in parameter_axes(configurations, ["k", "nosuch"])}
    assert list(axes)[0] == "k"  # the order asked first, then by name
    assert list(axes)[1:] == sorted(set(axes) - {"k"})
    scales = {name: axis["scale"] for name, axis in axes.items()}
    assert scales == {"lr": "log", "eps": "log", "beta1": "linear", "wd": "linear",
                      "k": "linear", "kind": "categorical", "flag": "categorical",
                      "mixed": "categorical"}
    assert (axes["eps"]["low"], axes["eps"]["high"]) == (1e-8, 1e-6)
    assert axes["kind"]["choices"] == ["a", "b"] and axes["flag"]["choices"] == [False, True]
    assert axes["mixed"]["choices"] == ["x", 1]  # in the order of their JSON texts


def test_the_trials_sort_and_filter_by_value_status_and_optimizer(reader: TestClient) -> None:
    every = reader.get(f"/api/studies/{STUDY}/trials").json()["items"]
    values = sorted(t["value"] for t in every)
    low = reader.get(f"/api/studies/{STUDY}/trials?sort=value").json()
    assert [t["value"] for t in low["items"]] == values
    assert low["filters"]["sort"] == "value"
    high = reader.get(f"/api/studies/{STUDY}/trials?sort=-value&limit=2").json()
    assert [t["value"] for t in high["items"]] == values[::-1][:2] and high["total"] == 2 * TRIALS
    oldest = reader.get(f"/api/studies/{STUDY}/trials?sort=oldest").json()["items"]
    assert [t["id"] for t in oldest] == sorted(t["id"] for t in every)
    middle = values[len(values) // 2]
    at_least = reader.get(f"/api/studies/{STUDY}/trials?min_value={middle!r}").json()
    assert sorted(t["value"] for t in at_least["items"]) == [v for v in values if v >= middle]
    assert at_least["filters"]["min_value"] == middle
    at_most = reader.get(
        f"/api/studies/{STUDY}/trials?max_value={middle!r}&optimizer=sgd&status=complete"
        "&sort=value").json()
    assert [t["value"] for t in at_most["items"]] == sorted(
        t["value"] for t in every if t["optimizer"] == "sgd" and t["value"] <= middle)
    assert at_most["total"] == len(at_most["items"])
    nothing = reader.get(f"/api/studies/{STUDY}/trials?status=failed").json()
    assert (nothing["items"], nothing["total"]) == ([], 0)


def test_a_study_note_round_trips_and_stays_text(store_url: str) -> None:
    """Kept by a token holder, shown escaped on the page; a body that is not JSON (415), too
    long, not a text or of another shape (400), or of no study (404) changes nothing."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    note = HOSTILE + "\nsecond line, <b>bold?</b> & more"
    with TestClient(create_app(store_url, token=TOKEN)) as client:
        kept = client.put(f"/api/studies/{STUDY}/note", json={"note": note}, headers=auth)
        assert kept.status_code == 200, kept.text
        assert kept.json() == {"study": STUDY, "note": note}
        try:
            assert client.get(f"/api/studies/{STUDY}").json()["note"] == note
            page = client.get(f"/studies/{STUDY}").text
            assert HOSTILE not in page and "<b>bold" not in page
            assert "&lt;img src=x onerror=alert(1)&gt;" in page
            refused = [
                client.put(f"/api/studies/{STUDY}/note", content=json.dumps({"note": "x"}),
                           headers={**auth, "Content-Type": "text/plain"}),
                client.put(f"/api/studies/{STUDY}/note", json={"note": "x" * 10_001},
                           headers=auth),
                client.put(f"/api/studies/{STUDY}/note", json={"note": 5}, headers=auth),
                client.put(f"/api/studies/{STUDY}/note", json={"note": "x", "by": "me"},
                           headers=auth),
                client.put(f"/api/studies/{STUDY}/note", json=["x"], headers=auth),
                client.put(f"/api/studies/{STUDY}/note", json={"note": "a\x00b"},
                           headers=auth),
                client.put("/api/studies/nosuch/note", json={"note": "x"}, headers=auth),
            ]
            assert [r.status_code for r in refused] == [415, 400, 400, 400, 400, 400, 404]
            assert "at most 10,000 characters, this one has 10,001" in refused[1].json()["error"]
            assert all(list(r.json()) == ["error"] for r in refused)
            assert client.get(f"/api/studies/{STUDY}").json()["note"] == note
            longest = client.put(f"/api/studies/{STUDY}/note", json={"note": "é" * 10_000},
                                 headers=auth)
            assert longest.status_code == 200
            assert client.get(f"/api/studies/{STUDY}").json()["note"] == "é" * 10_000
        finally:
            cleared = client.put(f"/api/studies/{STUDY}/note", json={"note": ""}, headers=auth)
            assert cleared.status_code == 200 and cleared.json()["note"] == ""
        assert client.get(f"/api/studies/{STUDY}").json()["note"] == ""


def test_study_status_and_paging(reader: TestClient) -> None:
    detail = reader.get(f"/api/studies/{STUDY}").json()
    assert detail["study"]["status"] == "finished"
    assert detail["study"]["trials_done"] == detail["study"]["trials_total"] == 2 * TRIALS
    assert detail["commands"]["run"].startswith(f"tuner study run {STUDY} --db ")
    assert detail["commands"]["worker"].startswith(f"tuner worker {STUDY} --db ")
    seen = []
    for offset in range(0, 2 * TRIALS, 4):
        page = reader.get(f"/api/studies/{STUDY}/trials?offset={offset}&limit=4").json()
        assert page["total"] == 2 * TRIALS and page["offset"] == offset
        seen += [item["id"] for item in page["items"]]
    assert len(seen) == len(set(seen)) == 2 * TRIALS
    assert seen == sorted(seen, reverse=True)  # newest first
    past_the_end = reader.get(f"/api/studies/{STUDY}/trials?offset={2 * TRIALS}").json()
    assert past_the_end["items"] == [] and past_the_end["total"] == 2 * TRIALS
    adam = reader.get(f"/api/studies/{STUDY}/trials?optimizer=adam").json()
    assert adam["total"] == TRIALS and {i["optimizer"] for i in adam["items"]} == {"adam"}
    runs = reader.get(f"/api/studies/{STUDY}/runs?limit=5").json()
    assert runs["total"] == 2 * TRIALS * SEEDS and len(runs["items"]) == 5
    exported = reader.get(f"/api/studies/{STUDY}/export?format=json").json()
    assert len(exported) == runs["total"]
    csv_text = reader.get(f"/api/studies/{STUDY}/export").text
    assert len(csv_text.strip().splitlines()) == runs["total"] + 1


FORMULA = '=HYPERLINK("http://example.invalid", "click")'
FORMULAS = {"task": FORMULA, "optimizer": "@SUM(1+1)*cmd|' /C calc'!A0",
            "params": {"+lr": "-2+3", "tab": "\t=1", "cr": "\r=1", "minus": -0.5}}


def formulas_in(url: str) -> None:
    """Text a spreadsheet would run, where the store keeps a run's task, optimizer and
    parameters (a task named ``=HYPERLINK(...)`` is the issue's case)."""
    from sqlalchemy import update

    from tuner.store import Run, open_store

    with open_store(url, create=False) as store, store.engine.begin() as connection:
        connection.execute(update(Run).values(**FORMULAS))


def check_inert(text: str) -> None:
    """No cell starts a formula: text that would is prefixed with ``'`` (OWASP), numbers stay."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    for row in rows:
        for cell in [*row, *row.values()]:
            if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
                float(cell)  # only a number may start with a sign
        assert row["task"] == "'" + FORMULAS["task"]
        assert row["optimizer"] == "'" + FORMULAS["optimizer"]
        assert row["param_+lr"] == "'-2+3"
        assert (row["param_tab"], row["param_cr"]) == ("'\t=1", "'\r=1")
        assert float(row["param_minus"]) == -0.5


def test_csv_exports_never_start_a_formula(tmp_path: Path) -> None:
    """The API's export and ``tuner study export --format csv`` alike; JSON keeps the text."""
    from click.testing import CliRunner

    from tuner.cli import cli

    url = finished_sqlite(tmp_path)
    formulas_in(url)
    with TestClient(create_app(url)) as client:
        answer = client.get(f"/api/studies/{STUDY}/export")
        assert answer.status_code == 200
        check_inert(answer.text)
        exact = client.get(f"/api/studies/{STUDY}/export?format=json").json()
        assert {row["task"] for row in exact} == {FORMULA}
    result = CliRunner().invoke(cli, ["study", "export", STUDY, "--db", url],
                                catch_exceptions=False)
    assert result.exit_code == 0
    check_inert(result.output)
    assert result.output == answer.text


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        ("get", "/api/tasks/999999", 404, "no task with id 999999"),
        ("get", "/api/tasks/99999999999999999999", 404, "no task with id"),
        ("get", "/api/studies/nosuch", 404, "no study named 'nosuch'"),
        ("get", "/api/studies/nosuch/trials", 404, "no study named 'nosuch'"),
        ("get", f"/api/studies/{STUDY}/trials?limit=0", 400, "limit must be"),
        ("get", f"/api/studies/{STUDY}/trials?offset=-1", 400, "offset must be"),
        ("get", f"/api/studies/{STUDY}/export?format=xml", 400,
         "format must be one of: csv, json; got 'xml'"),
        ("get", "/api/tasks/{id}/ranking?tolerance=lots", 400, "cannot read tolerance"),
        ("get", "/api/tasks/{id}/advice?memory_budget=big", 400, "cannot read memory budget"),
        ("get", "/api/tasks/{id}/compare?optimizers=nosuch", 404, "no runs of optimizer"),
        ("get", f"/api/studies/{STUDY}/trials?status=bogus", 400,
         "status must be one of: running, complete, pruned, diverged, failed; got 'bogus'"),
        ("get", f"/api/studies/{STUDY}/trials?optimizer=nosuch", 400,
         "optimizer must be one of: adam, sgd; got 'nosuch'"),
        ("get", f"/api/studies/{STUDY}/runs?status=running", 400, "status must be one of: "),
        ("get", f"/api/studies/{STUDY}/trials?sort=best", 400,
         "sort must be one of: newest, oldest, value, -value; got 'best'"),
        ("get", f"/api/studies/{STUDY}/trials?min_value=low", 400,
         "min_value must be a finite number, got 'low'"),
        ("get", f"/api/studies/{STUDY}/trials?max_value=inf", 400,
         "max_value must be a finite number, got 'inf'"),
        ("get", f"/api/studies/{STUDY}/trials?min_value=nan", 400,
         "min_value must be a finite number, got 'nan'"),
        ("get", "/api/tasks/{id}/optimizers/nosuch", 404,
         "no runs of optimizer 'nosuch' on task 'quadratic'"),
        ("get", "/api/tasks/999999/optimizers/adam", 404, "no task with id 999999"),
        ("put", f"/api/studies/{STUDY}/trials", 405, "Method Not Allowed"),
        ("get", f"/api/studies/{STUDY}/runs?optimizer=nosuch", 400, "optimizer must be one of"),
        ("get", "/api/compare?tasks=quadratic", 400,
         "tasks are named by their ids (see /api/tasks), got 'quadratic'"),
        ("get", "/api/compare?tasks=999999", 404, "no task with id 999999"),
        ("get", "/api/compare?tasks=%C2%B2", 400,  # a digit to str.isdigit, not to int
         "tasks are named by their ids (see /api/tasks), got '²'"),
        ("get", f"/api/studies/{STUDY}%2Ftrials", 404, "a name in a URL cannot hold '/'"),
        ("get", f"/api/studies/{STUDY}%2fruns", 404, "a name in a URL cannot hold '/'"),
        ("get", "/api/nothing-here", 404, "Not Found"),
        ("put", "/api/studies", 405, "Method Not Allowed"),
    ],
)
def test_errors_are_one_json_line(
    reader: TestClient, method: str, path: str, status: int, words: str
) -> None:
    response = getattr(reader, method)(path.format(id=task_id(reader)))
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"] and words in body["error"]
    assert "\n" not in body["error"] and "Traceback" not in response.text


class Headers(HTMLParser):
    """The table headers of a page: each header's text and its explanation (``title``)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[list[str]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "th":
            self.found.append(["", dict(attrs).get("title") or ""])
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        self.inside = self.inside and tag != "th"

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.found[-1][0] += data


def test_every_column_header_is_explained(reader: TestClient) -> None:
    """The issue: the state, to target and good lr columns were not explained."""
    ident = task_id(reader)
    for page in ("/", f"/tasks/{ident}", f"/tasks/{ident}/compare", f"/studies/{STUDY}"):
        parser = Headers()
        parser.feed(reader.get(page).text)
        assert len(parser.found) >= 5, page
        unexplained = [text.strip() for text, title in parser.found if len(title) < 10]
        assert unexplained == [], (page, unexplained)
    parser = Headers()
    parser.feed(reader.get(f"/tasks/{ident}").text)
    titles = {text.strip(): title for text, title in parser.found}
    assert "copies of the model's parameters" in titles["state"]
    assert "target" in titles["to target"] and "tolerance" in titles["good lr"]


def visible_text(html: str) -> str:
    """A page's text as read: no tags, no scripts, one space between words."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_pages_speak_plainly_and_show_the_protocol(store_url: str, tmp_path: Path) -> None:
    """Plurals, 'no pruner', the study's task as a link, an empty trials table that says so,
    the task's summary, and the protocol (budget) wherever a ranking is shown."""
    from server_fixtures import create_study as create

    url = finished_sqlite(tmp_path) if store_url.startswith("sqlite") else store_url
    create(url, name="one-seed", trials=1)
    from sqlalchemy import update

    from tuner.store import Study, open_store

    with open_store(url, create=False) as store, store.engine.begin() as connection:
        connection.execute(update(Study).where(Study.name == "one-seed").values(seeds=[0]))
    try:
        with TestClient(create_app(url)) as client:
            ident = task_id(client)
            study = visible_text(client.get("/studies/one-seed").text)
            assert "1 trial × 1 seed per optimizer" in study and "1 seeds" not in study
            assert "no pruner" in study and "none pruner" not in study
            assert "No trials yet: start a worker with the commands above." in study
            assert f'<a id="study-task" href="/tasks/{ident}">quadratic</a>' in client.get(
                "/studies/one-seed").text
            home = client.get("/").text
            assert f'<a href="/tasks/{ident}">quadratic</a>' in home
            task = visible_text(client.get(f"/tasks/{ident}").text)
            assert "x1^2 + 10*x2^2" in task  # the task plugin's summary, from the store
            assert "· 2 studies ·" in task  # tiny and one-seed
            assert "Trained under 40 steps" in task, task[:1500]
            assert "40 steps" in visible_text(home)
            compare = visible_text(client.get(f"/tasks/{ident}/compare").text)
            assert "trained under 40 steps" in compare
            assert client.get("/api/tasks").json()["tasks"][0]["protocol"] == "40 steps"
            assert client.get(f"/api/tasks/{ident}/compare").json()["protocol"] == "40 steps"
    finally:
        if not store_url.startswith("sqlite"):
            from tuner.driver import delete_study

            delete_study("one-seed", url)


def test_a_page_error_is_a_page(reader: TestClient) -> None:
    response = reader.get("/tasks/999999")
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert "no task with id 999999" in response.text


def study_names(client: TestClient) -> list[str]:
    return [s["name"] for s in client.get("/api/studies").json()["studies"]]


def test_a_read_only_server_refuses_every_write(reader: TestClient) -> None:
    before = reader.get("/api/studies").json()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"name": "new", "task": "quadratic", "optimizers": ["sgd"], "trials": 1, "seeds": 1}
    answers = [
        reader.post("/api/studies", json=body, headers=headers),
        reader.post(f"/api/studies/{STUDY}/stop", headers=headers),
        reader.post(f"/api/studies/{STUDY}/extend", json={"trials": 1}, headers=headers),
        reader.delete(f"/api/studies/{STUDY}", headers=headers),
        reader.put(f"/api/studies/{STUDY}/note", json={"note": "mine"}, headers=headers),
    ]
    for answer in answers:
        assert answer.status_code == 403
        assert "read-only" in answer.json()["error"]
    assert reader.get("/api/studies").json() == before


def test_writes_need_the_token_and_change_nothing_without_it(store_url: str) -> None:
    body = {"name": "made-by-api", "task": "quadratic", "optimizers": ["sgd", "adam"],
            "trials": 2, "seeds": 1, "budget": 20, "description": "from the API"}
    with TestClient(create_app(store_url, token=TOKEN)) as client:
        before = study_names(client)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}):
            for answer in (
                client.post("/api/studies", json=body, headers=headers),
                client.post(f"/api/studies/{STUDY}/stop", headers=headers),
                client.post(f"/api/studies/{STUDY}/extend", json={"trials": 1},
                            headers=headers),
                client.delete(f"/api/studies/{STUDY}", headers=headers),
                client.put(f"/api/studies/{STUDY}/note", json={"note": "x"}, headers=headers),
            ):
                assert answer.status_code == 401, answer.text
                assert answer.headers["www-authenticate"].startswith("Bearer")
        assert study_names(client) == before
        assert client.get(f"/api/studies/{STUDY}").json()["study"]["status"] == "finished"
        assert client.get(f"/api/studies/{STUDY}").json()["note"] == ""

        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = client.post("/api/studies", json=body, headers=auth)
        assert created.status_code == 201, created.text
        answer = created.json()
        assert answer["study"]["name"] == "made-by-api"
        assert answer["study"]["description"] == "from the API"
        assert answer["commands"]["run"].startswith("tuner study run made-by-api --db ")
        assert study_names(client) == [*before, "made-by-api"]
        again = client.post("/api/studies", json=body, headers=auth)
        assert again.status_code == 409 and "already exists" in again.json()["error"]

        extended = client.post("/api/studies/made-by-api/extend",
                               json={"trials": 2, "optimizers": ["adam"]}, headers=auth)
        assert extended.status_code == 200, extended.text
        assert extended.json()["study"]["trials"] == {"sgd": 2, "adam": 4}
        assert extended.json()["commands"]["run"].startswith("tuner study run made-by-api ")
        assert "(extended: adam +2)" in client.get("/studies/made-by-api").text

        # nobody runs it: there is nothing to stop, and the stored status stays as it was
        stopped = client.post("/api/studies/made-by-api/stop", headers=auth)
        assert stopped.status_code == 409, stopped.text
        assert stopped.json()["error"] == (
            "study 'made-by-api' is created, not running: it has no worker to stop")
        assert stored_status(store_url, "made-by-api") == "created"
        deleted = client.delete("/api/studies/made-by-api", headers=auth)
        assert deleted.status_code == 200 and deleted.json() == {
            "deleted": "made-by-api", "runs": 0}
        assert study_names(client) == before
        assert client.get("/api/studies/made-by-api").status_code == 404


def stored_status(url: str, name: str) -> str:
    """The status written in the study's row (not the one computed from its trials)."""
    from sqlalchemy import select

    from tuner.store import Study, open_store

    with open_store(url, create=False, readonly=True) as store, store.engine.connect() as db:
        return str(db.execute(select(Study.status).where(Study.name == name)).scalar_one())


def test_stopping_a_finished_study_is_a_conflict_and_changes_nothing(store_url: str) -> None:
    """The issue's case: 200 and ``stopping`` written into a finished study. Now 409, by the
    API and by ``tuner study stop`` alike, and the row is untouched."""
    from click.testing import CliRunner

    from tuner.cli import cli

    before = stored_status(store_url, STUDY)
    with TestClient(create_app(store_url, token=TOKEN)) as client:
        answer = client.post(f"/api/studies/{STUDY}/stop",
                             headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 409, answer.text
        assert answer.json() == {
            "error": f"study {STUDY!r} is finished, not running: it has no worker to stop"}
        assert client.get(f"/api/studies/{STUDY}").json()["study"]["status"] == "finished"
    result = CliRunner().invoke(cli, ["study", "stop", STUDY, "--db", store_url])
    assert result.exit_code != 0
    assert result.output.strip() == (
        f"Error: study {STUDY!r} is finished, not running: it has no worker to stop")
    assert stored_status(store_url, STUDY) == before


def test_a_study_reads_running_between_trials_and_idle_once_its_worker_leaves(
    sqlite_url: str,
) -> None:
    """Between two trials no trial row is running, yet a worker is at work: the study reads
    ``running`` (the issue saw ``stopped``). When the worker leaves unfinished, unasked, the
    study is ``idle``, not ``stopped``, and a stop is refused (nobody to stop)."""
    from server_fixtures import create_study

    from tuner.driver.worker import Worker

    create_study(sqlite_url, name="between", trials=2)
    seen: list[tuple[str, int]] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(sqlite_url, token=TOKEN, fresh_seconds=0)) as client:
        def between_trials() -> None:
            study = client.get("/api/studies/between").json()["study"]
            seen.append((study["status"], study["workers"]))
            if len(seen) == 2:
                worker.timeout = 0  # leave after this trial, with trials left undone

        worker = Worker("between", sqlite_url, on_trial=between_trials)
        assert worker.run().stopped == "timeout"
        assert seen == [("running", 1), ("running", 1)]
        study = client.get("/api/studies/between").json()["study"]
        assert (study["status"], study["workers"], study["trials_done"]) == ("idle", 0, 2)
        home = client.get("/api/studies").json()["studies"]
        assert [s["status"] for s in home if s["name"] == "between"] == ["idle"]
        refused = client.post("/api/studies/between/stop", headers=auth)
        assert refused.status_code == 409 and "is idle, not running" in refused.text
        assert stored_status(sqlite_url, "between") == "running"

        assert Worker("between", sqlite_url).run().stopped == "finished"
        assert client.get("/api/studies/between").json()["study"]["status"] == "finished"


def test_a_killed_workers_attachment_expires(sqlite_url: str) -> None:
    """A worker that never detaches (killed) counts until its ``alive_until``: the grace
    period after its last heartbeat, as its trial would be reaped."""
    import time

    from server_fixtures import create_study

    from tuner.store import open_store
    from tuner.store.studies import get_study, set_status, study_status
    from tuner.store.workers import attach_worker

    create_study(sqlite_url, name="killed")
    with open_store(sqlite_url, create=False) as store:
        study_id = get_study(store, "killed").id
        attach_worker(store, study_id, "host", 1, alive_seconds=0.5)  # as a worker starts
        set_status(store, study_id, "running")
        assert study_status(store, "killed").status == "running"
        time.sleep(0.6)
        assert study_status(store, "killed").status == "idle"


def test_create_takes_training_options_and_task_params_and_the_page_shows_them(
    sqlite_url: str,
) -> None:
    """On a store of its own: the study's task record would stay in a shared one."""
    from tuner.store import open_store

    open_store(sqlite_url).dispose()
    store_url = sqlite_url
    body = {"name": "with-training", "task": "digits-mlp", "optimizers": ["sgd"], "trials": 1,
            "seeds": 1, "training": {"warmup": 10, "batch_size": [16, 64],
                                     "schedule": ["constant", "cosine"]},
            "task_params": {"width": 32}}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(store_url, token=TOKEN)) as client:
        created = client.post("/api/studies", json=body, headers=auth)
        assert created.status_code == 201, created.text
        study = created.json()["study"]
        assert study["task"] == "digits-mlp[width=32]"
        assert study["training"] == {"warmup": 10, "batch_size": {"range": [16, 64]},
                                     "schedule": {"choices": ["constant", "cosine"]}}
        page = client.get("/studies/with-training").text
        assert "batch_size 16..64 (tuned)" in page and "schedule constant|cosine (tuned)" in page
        assert "warmup 10" in page
        bad = client.post("/api/studies", json={**body, "name": "bad",
                                                 "training": {"warmup": {"x": 1}}}, headers=auth)
        assert bad.status_code == 400 and "training option 'warmup'" in bad.json()["error"]
        client.delete("/api/studies/with-training", headers=auth)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "x", "task": "quadratic", "optimizers": ["sgd"], "trials": 0, "seeds": 1},
         "trials must be a positive whole number, got 0"),
        ({"name": "x y", "task": "quadratic", "optimizers": ["sgd"], "trials": 1, "seeds": 1},
         "study name 'x y' must start with a letter or digit"),
        ({"name": "x", "task": "nosuch", "optimizers": ["sgd"], "trials": 1, "seeds": 1},
         "unknown task 'nosuch'; the installed tasks are: "),
        ({"name": "x", "task": "model.py", "optimizers": ["sgd"], "trials": 1, "seeds": 1},
         "unknown task 'model.py'; the installed tasks are: "),
        ({"name": "x", "task": "quadratic", "optimizers": ["nosuch"], "trials": 1,
          "seeds": 1}, "unknown optimizer 'nosuch'"),
        ({"name": "x", "task": "evil.py:Task", "optimizers": ["sgd"], "trials": 1, "seeds": 1},
         "installed tasks only"),
        ({"name": "x", "task": "package.module:Task", "optimizers": ["sgd"], "trials": 1,
          "seeds": 1}, "installed tasks only"),
        ({"name": "x", "task": "quadratic", "optimizers": ["sgd"], "trials": "3", "seeds": 1},
         "trials must be a positive whole number, got '3'"),
        ({"name": "x", "task": "quadratic", "optimizers": ["sgd"], "trials": 10**30,
          "seeds": 1}, "trials must be at most 100,000, got 1,000,000"),
        ({"name": "x", "task": "quadratic", "optimizers": ["sgd"], "trials": 2**40,
          "seeds": 1}, "trials must be at most 100,000, got 1,099,511,627,776"),
        ({"name": "x", "task": "quadratic", "optimizers": ["sgd"], "trials": 1,
          "seeds": 2**40}, "seeds must be at most 1,000, got 1,099,511,627,776"),
        ({"name": "x", "task": "quadratic", "optimizers": ["sgd"], "trials": 1, "seeds": 1,
          "command": "rm -rf /"}, "unknown field 'command'"),
        ([1, 2], "must be a JSON object"),
        ({"name": "x", "task": "quadratic", "optimizers": ["sgd"], "trials": 1, "seeds": 1,
          "training": {"warmupp": 1}}, "unknown training option 'warmupp'"),
        ({"name": "x", "task": "digits-mlp", "optimizers": ["sgd"], "trials": 1, "seeds": 1,
          "task_params": {"width": "<b>"}}, "width must be a whole number"),
    ],
)
def test_create_checks_like_the_cli(store_url: str, body: object, words: str) -> None:
    with TestClient(create_app(store_url, token=TOKEN)) as client:
        before = study_names(client)
        answer = client.post("/api/studies", json=body,
                             headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 400, answer.text
        assert words in answer.json()["error"]
        assert study_names(client) == before


@pytest.mark.parametrize(
    ("name", "body", "status", "words"),
    [
        ("to-extend", {"trials": 0}, 400, "trials must be a positive whole number, got 0"),
        ("to-extend", {"trials": "2"}, 400, "trials must be a whole number, got '2'"),
        ("to-extend", {"trials": 1, "optimizers": ["lion"]}, 400,
         "study 'to-extend' has no optimizer 'lion'"),
        ("to-extend", {"trials": 1, "optimizers": "sgd"}, 400,
         "optimizers must be a list of names"),
        ("to-extend", {"trials": 1, "until_settled": True}, 400, "a command-line and Python "
         "loop: the server never trains"),
        ("to-extend", [1], 400, "must be a JSON object"),
        ("nosuch", {"trials": 1}, 404, "no study named 'nosuch'"),
    ],
)
def test_extend_checks_like_the_cli(sqlite_url: str, name: str, body: object, status: int,
                                    words: str) -> None:
    """On a store of its own; every refused request leaves the study as it was."""
    from tuner.store import open_store

    open_store(sqlite_url).dispose()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(sqlite_url, token=TOKEN)) as client:
        created = client.post("/api/studies", json={
            "name": "to-extend", "task": "quadratic", "optimizers": ["sgd"], "trials": 2,
            "seeds": 1, "first_seed": 3}, headers=auth)
        assert created.status_code == 201, created.text
        before = client.get("/api/studies/to-extend").json()["study"]
        assert before["seed_list"] == [3]
        answer = client.post(f"/api/studies/{name}/extend", json=body, headers=auth)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]
        assert client.get("/api/studies/to-extend").json()["study"] == before


def test_body_limit_and_bad_json(store_url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with TestClient(create_app(store_url, token=TOKEN, body_limit=1000)) as client:
        big = client.post("/api/studies", content=b"{" + b" " * 5000 + b"}", headers=auth)
        assert big.status_code == 413 and "larger than 1000 bytes" in big.json()["error"]
        bad = client.post("/api/studies", content=b"{not json", headers=auth)
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
        # a valid body not declared JSON (what a cross-site form may send) creates nothing
        before = study_names(client)
        body = json.dumps({"name": "plain", "task": "quadratic", "optimizers": ["sgd"],
                           "trials": 1, "seeds": 1}).encode()
        for media_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if media_type:
                headers["Content-Type"] = media_type
            answer = client.post("/api/studies", content=body, headers=headers)
            assert answer.status_code == 415, answer.text
            assert answer.json()["error"].startswith("the request body must be JSON, sent with "
                                                     "Content-Type: application/json (got ")
            extended = client.post(f"/api/studies/{STUDY}/extend", content=b'{"trials": 1}',
                                   headers=headers)
            assert extended.status_code == 415
        assert study_names(client) == before
        charset = {**auth, "Content-Type": "application/json; charset=utf-8"}
        assert client.post("/api/studies", content=b"[]", headers=charset).status_code == 400


def test_the_openapi_document_validates_and_lists_every_endpoint(reader: TestClient) -> None:
    """OpenAPI 3.1, checked by openapi-spec-validator; the issue found stray keys in answers
    (a YAML value with a comma or a colon split into several)."""
    from openapi_spec_validator import validate

    from tuner.server.app import ROUTES

    schema = reader.get("/api/openapi.json").json()
    assert schema["openapi"] == "3.1.0"
    validate(schema)
    api_paths = {
        route.path.replace(":int", "") for route in ROUTES
        if getattr(route, "path", "").startswith("/api/") and route.path != "/api/openapi.json"
    }
    assert set(schema["paths"]) == api_paths
    assert "post" in schema["paths"]["/api/studies"]
    assert "delete" in schema["paths"]["/api/studies/{name}"]
    answers = [answer for path in schema["paths"].values() for method in path.values()
               for answer in method["responses"].values()]
    assert answers and all(set(a) == {"description", "content"} for a in answers), answers
    advice = schema["paths"]["/api/tasks/{task_id}/advice"]["get"]["responses"]["200"]
    assert advice["description"] == "the advice"


def documented_schema(document: dict, path: str, method: str, status: int) -> dict:
    """The JSON Schema of one documented answer (KeyError: the status is not documented)."""
    answer = document["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_documented_path_answers_its_documented_status(store_url: str) -> None:
    """On the finished study, each operation called as documented answers a status its entry
    lists, with a body its schema accepts: reads 200, a create 201, an extend 200, a stop 409
    (the study is not running), a delete 200."""
    from jsonschema import Draft202012Validator

    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"name": "documented", "task": "quadratic", "optimizers": ["sgd"], "trials": 1,
            "seeds": 1}
    expected = {("post", "/api/studies"): 201, ("post", "/api/studies/{name}/stop"): 409}
    calls = {("post", "/api/studies"): body, ("post", "/api/studies/{name}/extend"): {
        "trials": 1}, ("put", "/api/studies/{name}/note"): {"note": "documented"}}
    with TestClient(create_app(store_url, token=TOKEN)) as client:
        document = client.get("/api/openapi.json").json()
        ident = task_id(client)
        trial = client.get(f"/api/studies/{STUDY}/trials?limit=1").json()["items"][0]["id"]
        operations = sorted(((path, method) for path, methods in document["paths"].items()
                             for method in methods),
                            key=lambda item: (item[1] == "delete", item[1] == "get"))
        assert len(operations) == 22  # 20 paths, two of them with a write beside the read
        for path, method in operations:  # the create first: the study later ones use
            name = "documented" if method != "get" and "{name}" in path else STUDY
            if path.endswith("/stop"):
                name = STUDY
            url = path.format(task_id=ident, name=name, trial_id=trial, optimizer="adam")
            answer = client.request(method.upper(), url, json=calls.get((method, path)),
                                    headers=auth)
            status = expected.get((method, path), 200)
            assert answer.status_code == status, (method, url, answer.text)
            if path.endswith("/export"):
                assert answer.headers["content-type"].startswith("text/csv")
                continue
            Draft202012Validator(documented_schema(document, path, method, status)).validate(
                answer.json())
        # the errors of a body too: 415 and 400 are documented where a body is taken
        plain = client.post("/api/studies", content=json.dumps(body).encode(),
                            headers={**auth, "Content-Type": "text/plain"})
        assert plain.status_code == 415
        Draft202012Validator(documented_schema(document, "/api/studies", "post", 415)).validate(
            plain.json())
        assert "documented" not in study_names(client)


READS_SCRIPT = textwrap.dedent("""
    import json, sys
    from starlette.testclient import TestClient
    from tuner.server import create_app

    client = TestClient(create_app(sys.argv[1]))
    ident = client.get("/api/tasks").json()["tasks"][0]["id"]
    statuses = [client.get(e.format(id=ident)).status_code for e in json.loads(sys.argv[2])]
    heavy = sorted(m for m in ("torch", "optuna", "tuner_plugins", "tuner.plugin.registry",
                               "matplotlib") if m in sys.modules)
    print(json.dumps({"statuses": statuses, "heavy": heavy}))
""")


def test_reads_import_neither_torch_nor_optuna_nor_plugins(store_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", READS_SCRIPT, store_url, json.dumps(READ_ENDPOINTS)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(answer["statuses"]) == {200}
    assert answer["heavy"] == []


@pytest.mark.postgres
def test_the_database_password_never_shows(tmp_path: Path) -> None:
    """Served over a URL with a password: no page, answer or log line holds it."""
    from sqlalchemy.engine import make_url

    with postgres_database() as url:
        finished_store(url)
        password = "pw-that-must-not-leak"
        with_password = make_url(url).set(password=password).render_as_string(
            hide_password=False)
        server = serve(with_password, tmp_path / "serve.log")
        try:
            import urllib.request

            ident = json.load(urllib.request.urlopen(server.base + "/api/tasks"))["tasks"][0]
            bodies = []
            for endpoint in (*READ_ENDPOINTS, "/api/nothing", "/api/studies/nosuch"):
                try:
                    with urllib.request.urlopen(
                            server.base + endpoint.format(id=ident["id"])) as response:
                        bodies.append(response.read().decode())
                except urllib.error.HTTPError as error:
                    bodies.append(error.read().decode())
        finally:
            assert server.stop() == 0
        assert all(password not in body for body in bodies)
        assert any("***" in body for body in bodies)  # the commands show the masked URL
        assert password not in server.output()
        assert "tuner serve: postgresql+psycopg://postgres:***@" in server.output()


def test_tuner_serve_starts_prints_its_address_and_stops_on_ctrl_c(
    store_url: str, tmp_path: Path
) -> None:
    if not store_url.startswith("sqlite"):
        pytest.skip("the process test runs once, on SQLite")
    import urllib.request

    server = serve(store_url, tmp_path / "serve.log", token=TOKEN)
    try:
        with urllib.request.urlopen(server.base + "/api/studies") as response:
            assert json.load(response)["studies"][0]["name"] == STUDY
        port = server.base.rsplit(":", 1)[1]
        taken = subprocess.run(
            [sys.executable, "-m", "tuner", "serve", "--db", store_url, "--port", port],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert taken.returncode != 0
        assert taken.stderr.strip().startswith(f"Error: cannot listen on 127.0.0.1:{port}")
        assert len(taken.stderr.strip().splitlines()) == 1
    finally:
        assert server.stop() == 0
    output = server.output()
    assert f"at {server.base}/ (writes need $TUNER_TOKEN)" in output
    assert TOKEN not in output
