"""Learning rates are compared only like with like: what each optimizer's lr is (a step size, a
multiplier, a named convention) is recorded with its runs, and the lr ratios, the good-lr text,
the width fits, the lr chart, the CLI, the server and the report all follow it and say so.

The store is written through ``record_run`` with synthetic results: AdamW (step size), Muon
(``muon/match_rms_adamw``), a learning-rate-free optimizer (``multiplier``) and one whose runs
recorded two meanings (its plugin changed).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tuner.advice import advise, rank_task
from tuner.advice.widths import lr_across_widths
from tuner.cli import cli
from tuner.report import write_report
from tuner.server import create_app
from tuner.store import TaskRecord, open_store, record_run, record_task
from tuner.store.queries import lr_meanings
from tuner.training.loop import RunResult

TASK = "mlp"
MUON = "muon/match_rms_adamw"
# optimizer: (lr meaning, best lr, the best configuration's final results over two seeds)
PLANTED = {
    "muon": (MUON, 2e-3, [0.980, 0.982]),
    "adamw": ("step size", 1e-3, [0.960, 0.962]),
    "prodigy": ("multiplier", 1.0, [0.950, 0.952]),
}


def add_config(store, task: str, optimizer: str, meaning: str | None, lr: float,
               finals: list[float]) -> None:
    for seed, final in enumerate(finals):
        result = RunResult(task=task, optimizer=optimizer, params={"lr": lr}, seed=seed,
                           status="complete", final_metric=final, best_metric=final,
                           optimizer_state_bytes=800, param_count=100)
        if meaning is not None:  # None: a result that does not say (recorded as a step size)
            result.lr_meaning = meaning
        record_run(store, None, result)


def add_optimizer(store, task: str, optimizer: str, meaning: str, lr: float,
                  finals: list[float]) -> None:
    """The best configuration at ``lr``, and two worse ones 4x to either side."""
    add_config(store, task, optimizer, meaning, lr, finals)
    add_config(store, task, optimizer, meaning, lr * 4, [f - 0.05 for f in finals])
    add_config(store, task, optimizer, meaning, lr / 4, [f - 0.04 for f in finals])


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('lr-meaning') / 'tuner.db'}"
    store = open_store(url)
    record_task(store, TaskRecord(TASK, "vision", "val_accuracy", "maximize", 0.9))
    for optimizer, (meaning, lr, finals) in PLANTED.items():
        add_optimizer(store, TASK, optimizer, meaning, lr, finals)
    # its plugin changed what its lr is between two studies
    add_config(store, TASK, "changed", "step size", 1e-2, [0.900, 0.902])
    add_config(store, TASK, "changed", "multiplier", 0.5, [0.890, 0.892])
    add_config(store, TASK, "sgd", None, 0.1, [0.850, 0.852])  # says nothing: a step size
    store.dispose()
    return url


def test_the_store_reads_back_each_optimizers_meanings(store_url):
    store = open_store(store_url, create=False)
    try:
        found = lr_meanings(store, TASK, ["adamw", "muon", "prodigy", "changed", "sgd", "none"])
    finally:
        store.dispose()
    assert found == {"adamw": ["step size"], "muon": [MUON], "prodigy": ["multiplier"],
                     "changed": ["multiplier", "step size"], "sgd": ["step size"]}


def test_multipliers_and_mixed_meanings_are_left_out_of_the_lr_ratios_with_the_reason(
        store_url):
    ranking = rank_task(TASK, db=store_url)
    standings = {s.optimizer: s for s in ranking.optimizers}
    assert [s.optimizer for s in ranking.optimizers] == [
        "muon", "adamw", "prodigy", "changed", "sgd"]
    assert {name: s.lr_meaning for name, s in standings.items()} == {
        "muon": MUON, "adamw": "step size", "prodigy": "multiplier",
        "changed": "mixed (multiplier, step size)", "sgd": "step size"}
    assert "multiplier" in standings["prodigy"].lr_left_out
    assert "learning-rate free" in standings["prodigy"].lr_left_out
    assert "different lr meanings" in standings["changed"].lr_left_out
    assert standings["adamw"].lr_left_out is None and standings["muon"].lr_left_out is None
    pairs = {(r.optimizer, r.reference) for r in ranking.lr_ratios}
    assert pairs == {("adamw", "muon"), ("sgd", "muon"), ("sgd", "adamw")}
    assert standings["prodigy"].lr_ratio is None and standings["changed"].lr_ratio is None
    # the ratio names Muon's convention, and is still the plain quotient of the two lrs
    ratio = standings["adamw"].lr_ratio
    assert ratio.ratio == pytest.approx(1e-3 / 2e-3)
    assert (ratio.optimizer_meaning, ratio.reference_meaning) == ("step size", MUON)
    assert ratio.sentence().startswith("adamw's best lr is 2x (")  # (its interval)
    assert ratio.sentence().endswith(f") below muon's ({MUON})")
    assert ranking.lr_notes == [
        standings["prodigy"].lr_left_out + ": left out of the lr ratios",
        standings["changed"].lr_left_out + ": left out of the lr ratios",
        f"muon's lr follows a convention of its own ({MUON}): its lr ratios name it",
    ]


def test_the_good_lr_interval_is_each_optimizers_own_and_the_advice_names_the_meaning(
        store_url):
    ranking = rank_task(TASK, db=store_url)
    standings = {s.optimizer: s for s in ranking.optimizers}
    # a multiplier's interval is about its multiplier (the configurations 4x away are worse)
    assert standings["prodigy"].good_lr == (1.0, 1.0)
    text = advise(TASK, db=store_url).text
    assert f"use muon with lr 2e-3 ({MUON})" in text
    assert f"below muon's ({MUON})" in text
    assert standings["prodigy"].lr_left_out + ": no lr ratio" in text


def test_tuner_best_shows_the_notes_and_its_json_the_meanings(store_url):
    table = CliRunner().invoke(cli, ["best", "--task", TASK, "--db", store_url],
                               catch_exceptions=False)
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert any(line.startswith("lr: prodigy's lr is a multiplier") for line in lines)
    assert f"lr: muon's lr follows a convention of its own ({MUON}): its lr ratios name it." \
        in lines
    result = CliRunner().invoke(cli, ["best", "--task", TASK, "--db", store_url, "--json"],
                                catch_exceptions=False)
    data = json.loads(result.output)
    by_name = {s["optimizer"]: s for s in data["optimizers"]}
    assert by_name["muon"]["lr_meaning"] == MUON
    assert by_name["prodigy"]["lr_left_out"].startswith("prodigy's lr is a multiplier")
    assert data["lr_notes"][0].startswith("prodigy's lr is a multiplier")
    named = [r for r in data["lr_ratios"] if r["reference"] == "muon"]
    assert {r["reference_meaning"] for r in named} == {MUON}


def test_the_lr_chart_leaves_multipliers_out_and_labels_conventions(store_url):
    with TestClient(create_app(store_url)) as client:
        (task,) = client.get("/api/tasks").json()["tasks"]
        answer = client.get(f"/api/tasks/{task['id']}/lr-points").json()
        page = client.get(f"/api/tasks/{task['id']}").json()
        html = client.get(f"/tasks/{task['id']}").text
        home = client.get("/").text
    assert task["winner"]["lr_meaning"] == MUON
    assert f'<span class="lr-meaning">({MUON})</span>' in home
    assert set(answer["points"]) == {"muon", "adamw", "sgd"}
    assert set(answer["left_out"]) == {"prodigy", "changed"}
    assert answer["left_out"]["prodigy"].startswith("prodigy's lr is a multiplier")
    assert {p["lr_meaning"] for p in answer["points"]["muon"]} == {MUON}
    assert {p["lr_meaning"] for p in answer["points"]["adamw"]} == {"step size"}
    assert page["lr_left_out"] == answer["left_out"]
    assert "prodigy is not shown: prodigy&#39;s lr is a multiplier" in html
    assert f"({MUON})" in html


def test_the_report_names_the_meanings(store_url, tmp_path):
    report = write_report(TASK, tmp_path / "report", db=store_url)
    page = (tmp_path / "report" / "index.html").read_text()
    assert report is not None
    assert "lr: prodigy&#39;s lr is a multiplier" in page
    assert f"lr: muon&#39;s lr follows a convention of its own ({MUON})" in page


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> str:
    """Three widths of ``net``: AdamW (step size) and a multiplier optimizer, whose best
    multiplier barely moves with the width."""
    url = f"sqlite:///{tmp_path_factory.mktemp('lr-widths') / 'tuner.db'}"
    store = open_store(url)
    for width in (64, 128, 256):
        name = "net" if width == 128 else f"net[width={width}]"
        record_task(store, TaskRecord(name, "vision", "val_accuracy", "maximize", 0.9,
                                      params={"width": width}))
        add_optimizer(store, name, "adamw", "step size", 1e-3 * 128 / width, [0.96, 0.962])
        add_optimizer(store, name, "prodigy", "multiplier", 1.0, [0.95, 0.952])
    store.dispose()
    return url


def test_width_fits_are_per_meaning_and_name_a_multiplier(swept):
    advice = lr_across_widths("net", 512, db=swept)
    fits = {fit.optimizer: fit for fit in advice.fits}
    assert fits["adamw"].lr_meaning == "step size"
    assert fits["adamw"].exponent == pytest.approx(-1.0, abs=1e-6)
    assert fits["prodigy"].lr_meaning == "multiplier"
    assert fits["prodigy"].exponent == pytest.approx(0.0, abs=1e-6)
    assert "prodigy's best lr (multiplier) is about 1" in fits["prodigy"].sentence()
    assert "adamw's best lr is about" in fits["adamw"].sentence()
    assert advice.to_dict()["optimizers"][1]["lr_meaning"] == "multiplier"
