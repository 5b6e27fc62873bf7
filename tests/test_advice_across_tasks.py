"""Optimizers across tasks (``tuner compare`` and the report's section) against hand
computations on a store of three tasks with known rankings, speeds and defaults."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from study_rows import trial_of_its_own

from tuner.advice import compare
from tuner.advice.comparison import PROFILE_TAUS, tuned_against_defaults
from tuner.cli import cli
from tuner.store import TaskRecord, open_store, record_run, record_task
from tuner.training.loop import RunResult

ACCURACY = TaskRecord("digits-mlp", "vision", "val_accuracy", "maximize", 0.95)
LOSS = TaskRecord("quadratic", "analytic", "loss", "minimize", 1e-2)
BPC = TaskRecord("charlm", "sequence", "val_bpc", "minimize", 3.0)


def add_runs(store, task, optimizer, lr, finals, steps=None, origin=None):
    """One configuration's seeds; ``origin="recommended"`` makes it the optimizer's default."""
    record_task(store, task)
    trial_id = None
    if origin is not None:
        trial_id = trial_of_its_own(store, task, optimizer, {"lr": lr}, origin,
                                    seeds=len(finals))
    for seed, final in enumerate(finals):
        record_run(store, trial_id, RunResult(
            task=task.name, optimizer=optimizer, params={"lr": lr}, seed=seed,
            status="complete", final_metric=final, best_metric=final, steps_to_target=steps,
            optimizer_state_bytes=800, param_count=100,
        ))


@pytest.fixture(scope="module")
def three_tasks(tmp_path_factory) -> str:
    """digits-mlp: adam 0.97 > lion 0.96 > sgd 0.95 (defaults 0.95, 0.93, 0.90).
    quadratic: sgd 1e-4 < adam 1e-3 = lion 1e-3, an exact tie (defaults adam 1e-2, sgd 1e-3;
    every optimizer has two configurations, so the best of two is its best).
    charlm: adam 2.0 < sgd 2.5; lion never ran on it; no defaults recorded.
    Steps to target of the tuned configurations: digits-mlp adam 300, lion 100, sgd 200;
    quadratic sgd 50, adam 100, lion none; charlm adam 1000, sgd none."""
    url = f"sqlite:///{tmp_path_factory.mktemp('across') / 'tuner.db'}"
    store = open_store(url)
    for optimizer, default, tuned, steps in (("adam", 0.95, 0.97, 300),
                                             ("lion", 0.93, 0.96, 100),
                                             ("sgd", 0.90, 0.95, 200)):
        add_runs(store, ACCURACY, optimizer, 1e-3, [default, default], origin="recommended")
        add_runs(store, ACCURACY, optimizer, 3e-3, [tuned, tuned], steps=steps)
    add_runs(store, LOSS, "adam", 1e-3, [1e-2, 1e-2], origin="recommended")
    add_runs(store, LOSS, "adam", 3e-2, [1e-3, 1e-3], steps=100)
    add_runs(store, LOSS, "lion", 3e-3, [1e-3, 1e-3])
    add_runs(store, LOSS, "lion", 1e-1, [1e-2, 1e-2])  # two trials each, as adam's: a tie
    add_runs(store, LOSS, "sgd", 1e-2, [1e-3, 1e-3], origin="recommended")
    add_runs(store, LOSS, "sgd", 0.1, [1e-4, 1e-4], steps=50)
    add_runs(store, BPC, "adam", 1e-3, [2.0, 2.0], steps=1000)
    add_runs(store, BPC, "sgd", 0.1, [2.5, 2.5])
    store.dispose()
    return url


def test_mean_ranks_equal_a_hand_computation(three_tasks):
    result = compare(db=three_tasks)
    assert result.tasks == ["charlm", "digits-mlp", "quadratic"]
    rows = {row.optimizer: row for row in result.rankings}
    assert rows["adam"].ranks == {"digits-mlp": 1, "quadratic": 2.5, "charlm": 1}
    assert rows["lion"].ranks == {"digits-mlp": 2, "quadratic": 2.5}  # the tie shares 2 and 3
    assert rows["sgd"].ranks == {"digits-mlp": 3, "quadratic": 1, "charlm": 2}
    assert [(r.optimizer, r.mean_rank, r.tasks, r.wins) for r in result.rankings] == [
        ("adam", pytest.approx((1 + 2.5 + 1) / 3), 3, 2),
        ("sgd", pytest.approx((3 + 1 + 2) / 3), 3, 1),
        ("lion", pytest.approx((2 + 2.5) / 2), 2, 0),
    ]


def test_the_performance_profile_in_steps(three_tasks):
    """Ratios to the fastest per task: adam 3, 2, 1; lion 1, never, absent; sgd 2, 1, never."""
    result = compare(db=three_tasks)
    assert PROFILE_TAUS == (1.0, 2.0, 4.0)
    assert result.costs["digits-mlp"] == {"adam": 300, "lion": 100, "sgd": 200}
    assert result.costs["charlm"] == {"adam": 1000, "sgd": None}
    assert result.profile == {
        "adam": [pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0],
        "lion": [pytest.approx(1 / 3)] * 3,
        "sgd": [pytest.approx(1 / 3), pytest.approx(2 / 3), pytest.approx(2 / 3)],
    }


def test_one_optimizer_tuned_against_the_best_default_across_tasks(three_tasks):
    """K draws with replacement from an optimizer's 2 configurations (default d, tuned t) give
    t unless all K miss it: (1 - 2^-K) t + 2^-K d.
    digits-mlp: K = 3 defaults, the best adam's 0.95: adam (7 * 0.97 + 0.95) / 8 = 0.9675
    (+0.0175), lion 0.95625 (+0.00625), sgd 0.94375 (-0.00625, no win).
    quadratic (lower is better): K = 2, the best default sgd's 1e-3: adam and lion
    3/4 * 1e-3 + 1/4 * 1e-2 = 3.25e-3 (-2.25e-3, 225% worse), sgd 3/4 * 1e-4 + 1/4 * 1e-3 =
    3.25e-4 (+6.75e-4, 67.5% of the default). charlm has no defaults and is left out."""
    result = compare(db=three_tasks)
    rows = {row.optimizer: row for row in result.tuned_against_defaults}
    assert [row.optimizer for row in result.tuned_against_defaults] == ["sgd", "adam", "lion"]
    assert (rows["adam"].tasks, rows["adam"].beats) == (2, 1)
    assert rows["adam"].gains == {"digits-mlp": pytest.approx(0.0175),
                                  "quadratic": pytest.approx(-2.25e-3)}
    assert rows["adam"].mean_relative_gain == pytest.approx((0.0175 / 0.95 - 2.25) / 2)
    assert (rows["lion"].tasks, rows["lion"].beats) == (2, 1)
    assert rows["lion"].mean_relative_gain == pytest.approx((0.00625 / 0.95 - 2.25) / 2)
    assert (rows["sgd"].tasks, rows["sgd"].beats) == (2, 1)
    assert rows["sgd"].relative == {"digits-mlp": pytest.approx(-0.00625 / 0.95),
                                    "quadratic": pytest.approx(0.675)}
    assert rows["sgd"].mean_relative_gain == pytest.approx((-0.00625 / 0.95 + 0.675) / 2)
    vs = result.per_task["quadratic"]["defaults_vs_tuning"]
    assert vs["k"] == 2 and vs["best_default"]["optimizer"] == "sgd"


def test_tuned_against_defaults_by_hand_with_a_maximised_metric():
    per_task = {"t": {"direction": "maximize", "defaults_vs_tuning": {
        "best_default": {"optimizer": "a", "mean": 0.5},
        "tuned_with_k": {"a": 0.6, "b": 0.4, "c": None}}}}
    rows = tuned_against_defaults(per_task)
    assert [(r.optimizer, r.tasks, r.beats) for r in rows] == [("a", 1, 1), ("b", 1, 0)]
    assert rows[0].mean_relative_gain == pytest.approx(0.2)
    assert rows[1].mean_relative_gain == pytest.approx(-0.2)


def test_compare_cli_prints_mean_ranks_profile_and_the_crowded_valley_lines(three_tasks):
    result = CliRunner().invoke(cli, ["compare", "--db", three_tasks], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("optimizer"))
    assert header.split()[-9:] == ["rank", "wins", "tasks", "steps", "<=1x", "steps", "<=2x",
                                   "steps", "<=4x"]
    adam = next(line for line in lines if line.startswith("adam ")).split()
    assert adam[-6:] == ["1.50", "2", "3", "0.33", "0.67", "1.00"]
    assert "  sgd tuned beats the best default on 1 of 2 task(s), by +33.4% on average" in lines
    data = json.loads(CliRunner().invoke(cli, ["compare", "--json", "--db", three_tasks],
                                         catch_exceptions=False).output)
    assert set(data) == {"tasks", "db", "optimizers", "per_task", "defaults"}
    first = data["optimizers"][0]
    assert first["optimizer"] == "adam" and first["tasks"] == 3
    assert [p["tau"] for p in first["profile"]] == [1.0, 2.0, 4.0]
    assert data["defaults"]["tuned_against_best_default"][0]["optimizer"] == "sgd"
    assert data["per_task"]["quadratic"]["steps_to_target"]["lion"] is None


def test_the_report_has_an_across_tasks_section(three_tasks, tmp_path):
    from tuner.report import write_report

    report = write_report("digits-mlp", tmp_path / "report", db=three_tasks)
    page = report.index.read_text(encoding="utf-8")
    section = page[page.index("<h2>Across tasks</h2>"):]
    assert "Every task in the store (3 tasks)" in section
    assert ("<tr><td>adam</td><td>1.50</td><td>3</td><td>2</td><td>0.33</td><td>0.67</td>"
            "<td>1.00</td><td>1 of 2</td><td>-111.6%</td></tr>") in section
    assert "<td>lion</td><td>2.25</td><td>2</td><td>0</td>" in section
    assert "within tolerance of the tuned best on 0 of 2 task(s)" in section.replace("\n", " ")
    assert (tmp_path / "report" / "performance_profile.png").exists()
