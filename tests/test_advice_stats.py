"""Advice beyond the ranking, against hand computations on stores of known synthetic runs:
lr ratios, P(best), too few runs, Pareto sets, defaults against tuning, importance."""

from __future__ import annotations

import json
import math
import random
from statistics import NormalDist

import pytest
from click.testing import CliRunner
from study_rows import trial_of_its_own

from tuner.advice import advise, best, compare
from tuner.advice.bootstrap import CONFIDENT_Z, seeds_to_settle
from tuner.advice.importance import epsilon_squared, importance, importance_shares
from tuner.advice.pareto import pareto_of
from tuner.advice.ranking import what_would_settle
from tuner.cli import cli
from tuner.store import (
    TaskRecord,
    open_store,
    record_run,
    record_task,
)
from tuner.training.loop import RunResult

ACCURACY = TaskRecord("digits-mlp", "vision", "val_accuracy", "maximize", 0.95)
LOSS = TaskRecord("quadratic", "analytic", "loss", "minimize", 1e-2)


def add_runs(store, task, optimizer, params, finals, steps_to_target=None, state=2.0,
             origin=None):
    """Record one configuration's seeds (None: diverged); ``origin`` puts them in a trial."""
    record_task(store, task)
    trial_id = None
    if origin is not None:
        trial_id = trial_of_its_own(store, task, optimizer, params, origin,
                                    seeds=len(finals))
    for seed, final in enumerate(finals):
        record_run(store, trial_id, RunResult(
            task=task.name, optimizer=optimizer, params=dict(params), seed=seed,
            status="complete" if final is not None else "diverged", final_metric=final,
            best_metric=final, steps_to_target=steps_to_target,
            optimizer_state_bytes=int(state * 400), param_count=100,
        ))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def store(sqlite_url):
    opened = open_store(sqlite_url)
    yield opened
    opened.dispose()


def test_lr_ratio_and_its_interval_against_a_hand_computation(store):
    """lion has two equally good lrs (1e-4 and 2e-4): the resample picks each about half the
    time, so the ratio to adamw's 1e-3 is 0.1 or 0.2 and its 5%..95% interval is exactly
    [0.1, 0.2]; the point ratio is the best configurations' (the more seeds: 1e-4)."""
    add_runs(store, ACCURACY, "adamw", {"lr": 1e-3}, [0.97, 0.971, 0.972])
    add_runs(store, ACCURACY, "lion", {"lr": 1e-4}, [0.95, 0.951, 0.952])
    add_runs(store, ACCURACY, "lion", {"lr": 2e-4}, [0.95, 0.951, 0.952])
    add_runs(store, ACCURACY, "sgd", {"lr": 0.3}, [0.90, 0.901, 0.902])
    ranking = best(ACCURACY.name, db=store)
    lion = ranking.standing("lion")
    assert lion.lr_ratio.reference == "adamw"
    assert lion.lr_ratio.ratio == pytest.approx(lion.lr / 1e-3)
    assert (lion.lr_ratio.low, lion.lr_ratio.high) == (pytest.approx(0.1), pytest.approx(0.2))
    assert lion.lr_ratio.factor_text() == "5x-10x below" or "(5x-10x) below" in (
        lion.lr_ratio.factor_text())
    pairs = {(r.optimizer, r.reference): r for r in ranking.lr_ratios}
    assert set(pairs) == {("lion", "adamw"), ("sgd", "adamw"), ("sgd", "lion")}
    assert pairs[("sgd", "adamw")].ratio == pytest.approx(300)
    assert (pairs[("sgd", "adamw")].low, pairs[("sgd", "adamw")].high) == (
        pytest.approx(300), pytest.approx(300))
    text = advise(ACCURACY.name, db=store).text
    assert "sgd's best lr is 300x (300x-300x) above adamw's" in text
    assert "lion's best lr is" in text and "(5x-10x) below adamw's" in text


def test_the_advice_sentence_names_the_ratio_as_people_say_it(store):
    add_runs(store, ACCURACY, "adamw", {"lr": 1e-3}, [0.97, 0.971, 0.972])
    add_runs(store, ACCURACY, "lion", {"lr": 1.25e-4}, [0.95, 0.951, 0.952])
    advice = advise(ACCURACY.name, db=store)
    assert "lion's best lr is 8x (8x-8x) below adamw's" in advice.text
    assert "P(best) 1.00" in advice.text and "too few runs" not in advice.text.lower()
    assert advice.p_best == 1.0


def _p_best(store, task, a_finals, b_finals):
    add_runs(store, task, "a", {"lr": 1e-3}, a_finals)
    add_runs(store, task, "b", {"lr": 1e-2}, b_finals)
    ranking = best(task.name, db=store)
    return ranking, {s.optimizer: s.p_best for s in ranking.optimizers}


def test_p_best_of_two_clearly_separated_optimizers(store):
    ranking, p = _p_best(store, LOSS, [0.10, 0.11, 0.12], [0.50, 0.51, 0.52])
    assert p["a"] == pytest.approx(1.0, abs=0.001) and p["b"] == pytest.approx(0.0, abs=0.001)
    assert ranking.certainty.settled and ranking.standing("b").tied_with_winner is False


def test_p_best_of_two_identical_optimizers_is_a_coin(store):
    ranking, p = _p_best(store, LOSS, [0.10, 0.11, 0.12], [0.10, 0.11, 0.12])
    assert p["a"] == pytest.approx(0.5, abs=0.05) and p["a"] + p["b"] == pytest.approx(1.0)
    assert not ranking.certainty.settled and ranking.certainty.more_seeds is None
    assert ranking.optimizers[1].tied_with_winner is True
    text = advise(LOSS.name, db=store).text
    assert "Too few runs to name a winner" in text and "they may be equally good" in text


def test_p_best_matches_the_analytic_probability(store):
    """Seeds m-1, m, m+1 (std 1, n 3): the difference's standard error is sqrt(2/3); means
    0.524 of it apart, and a repeated study's own error of that size, give the predictive
    P(best) = Phi(0.524 / sqrt(2)) = 0.64."""
    gap = 0.524 * math.sqrt(2 / 3)
    ranking, p = _p_best(store, LOSS, [0.0, 1.0, 2.0], [gap, 1.0 + gap, 2.0 + gap])
    analytic = NormalDist().cdf(0.524 / math.sqrt(2))
    assert analytic == pytest.approx(0.6445, abs=0.001)
    assert p["a"] == pytest.approx(analytic, abs=0.05)
    certainty = what_would_settle(ranking)  # searched on demand
    assert not certainty.settled and certainty.contender == "b"
    # the truth alone: n >= z^2 (1 + 1) / gap^2 seeds, 15 more than 3; a repeated study adds
    # its own error, which doubles the variance: n >= 2 z^2 2 / gap^2 = 36, 33 more. On its
    # grid of more seeds (1, 2, 4, ..., 64) the resample finds 64, or 32, where its P(best)
    # is Phi(gap sqrt(35) / 2) = 0.897, within its standard error (0.015 at B = 400) of 0.9
    assert seeds_to_settle(gap, 1.0, 1.0, 3) == math.ceil(CONFIDENT_Z**2 * 2 / gap**2) - 3
    assert math.ceil(2 * CONFIDENT_Z**2 * 2 / gap**2) - 3 == 33
    assert certainty.more_seeds in (32, 64) and certainty.more_trials is None
    text = advise(LOSS.name, db=store).text
    assert f"P(best) {p['a']:.2f} < 0.9 against b" in text
    assert f"about {certainty.more_seeds} more seeds" in text


def test_one_seed_everywhere_is_too_few_runs(store):
    add_runs(store, LOSS, "a", {"lr": 1e-3}, [0.1])
    add_runs(store, LOSS, "b", {"lr": 1e-2}, [0.2])
    ranking = best(LOSS.name, db=store)
    assert ranking.standing("a").p_best is None and ranking.certainty.winner_p_best is None
    assert "noise is unknown" in advise(LOSS.name, db=store).text
    table = invoke("best", "--task", LOSS.name, "--db", store.url)
    assert table.exit_code == 0 and "Too few runs" in table.output


def test_one_seed_configurations_take_the_pooled_spread(store):
    """b's one seed borrows b's pooled spread (0.01 from its two-seed configuration): with
    a's mean 0.1 (se 0.01/sqrt(2)) and b's 0.12 (se 0.01) a repeated study names a with the
    predictive probability Phi(0.02 / (sqrt(2) 0.01225)) when b draws its 0.12 configuration.
    Compared at one trial (a has one), b's draw is that one half the time (a Beta(1, 1)
    weight), and its poor one (0.5) loses to a always: P(a best) = 1/2 + Phi(...) / 2."""
    add_runs(store, LOSS, "a", {"lr": 1e-3}, [0.1 - 0.01 / math.sqrt(2),
                                               0.1 + 0.01 / math.sqrt(2)])
    add_runs(store, LOSS, "b", {"lr": 1e-2}, [0.12])
    add_runs(store, LOSS, "b", {"lr": 1e-1}, [0.5 - 0.01 / math.sqrt(2),
                                               0.5 + 0.01 / math.sqrt(2)])
    ranking = best(LOSS.name, db=store)
    analytic = NormalDist().cdf(0.02 / (math.sqrt(2) * math.sqrt(0.01**2 / 2 + 0.01**2)))
    assert ranking.standing("a").p_best == pytest.approx(0.5 + analytic / 2, abs=0.05)


def test_pareto_set_and_preferences(store):
    """quality: adamw; speed: lion (faster, worse); memory: sgd (0n, slower than lion);
    nadam is worse than adamw on all three, so it is not in the set."""
    add_runs(store, ACCURACY, "adamw", {"lr": 1e-3}, [0.97, 0.971], steps_to_target=500)
    add_runs(store, ACCURACY, "lion", {"lr": 1e-4}, [0.96, 0.961], steps_to_target=200,
             state=1.0)
    add_runs(store, ACCURACY, "sgd", {"lr": 0.1}, [0.955, 0.956], steps_to_target=800,
             state=0.0)
    add_runs(store, ACCURACY, "nadam", {"lr": 1e-3}, [0.95, 0.951], steps_to_target=600)
    ranking = best(ACCURACY.name, db=store)
    assert {s.optimizer for s in ranking.optimizers if s.pareto} == {"adamw", "lion", "sgd"}
    assert ranking.standing("nadam").pareto is False
    assert advise(ACCURACY.name, db=store).optimizer == "adamw"
    speed = advise(ACCURACY.name, db=store, prefer="speed")
    assert speed.optimizer == "lion" and speed.pareto == ["adamw", "lion", "sgd"]
    assert speed.text.startswith("On digits-mlp, for speed, use lion")
    assert "reaches the target in 200 steps against 500 for adamw" in speed.text
    memory = json.loads(invoke("advise", "--task", ACCURACY.name, "--prefer", "memory",
                               "--json", "--db", store.url).output)
    assert memory["optimizer"] == "sgd" and memory["prefer"] == "memory"
    bad = invoke("advise", "--task", ACCURACY.name, "--prefer", "cheap", "--db", store.url)
    assert bad.exit_code != 0
    assert pareto_of({"x": (1.0, None, None), "y": (1.0, None, None)}, "maximize") == ["x", "y"]
    assert pareto_of({"x": (1.0, 5, 1), "y": (0.5, 5, 1)}, "maximize") == ["x"]


def test_best_table_shows_ratios_probabilities_and_the_pareto_set(store):
    add_runs(store, ACCURACY, "adamw", {"lr": 1e-3}, [0.97, 0.971, 0.972])
    add_runs(store, ACCURACY, "lion", {"lr": 1.25e-4}, [0.95, 0.951, 0.952], state=1.0)
    result = invoke("best", "--task", ACCURACY.name, "--db", store.url)
    assert result.exit_code == 0
    assert "P(best)" in result.output and "8x (8x-8x) below" in result.output
    assert "adamw *" in result.output and "lion *" in result.output
    data = json.loads(invoke("best", "--task", ACCURACY.name, "--json", "--db",
                             store.url).output)
    lion = data["optimizers"][1]
    assert lion["lr_ratio"]["ratio"] == pytest.approx(0.125) and lion["p_best"] == 0.0
    assert data["certainty"]["settled"] is True and len(data["lr_ratios"]) == 1


def test_importance_finds_the_hyperparameter_that_matters(store):
    """The result depends on lr (a bowl in log lr) and not at all on eps or beta2."""
    rng = random.Random(5)
    for _ in range(60):
        lr = 10 ** rng.uniform(-5, -1)
        params = {"lr": lr, "eps": 10 ** rng.uniform(-10, -6),
                  "beta2": rng.choice([0.99, 0.999])}
        quality = 0.97 - 0.05 * (math.log10(lr) + 3) ** 2
        add_runs(store, ACCURACY, "adam", params, [quality + rng.gauss(0, 0.002)])
    add_runs(store, ACCURACY, "adam", {"lr": 1.0, "eps": 1e-8, "beta2": 0.99}, [None])
    found = importance(ACCURACY.name, ["adam"], db=store)[0]
    assert found.configurations == 60  # the diverged one carries no result
    assert list(found.shares)[0] == "lr" and found.shares["lr"] > 0.9
    assert sum(found.shares.values()) == pytest.approx(1.0)
    assert found.sentence().startswith("for adam on digits-mlp, lr explains 9")
    assert "beta2 and eps barely matter: keep the defaults" in found.sentence()
    data = json.loads(invoke("best", "--task", ACCURACY.name, "--importance", "--json",
                             "--db", store.url).output)
    assert list(data["importance"][0]["shares"])[0] == "lr"
    table = invoke("best", "--task", ACCURACY.name, "--importance", "--db", store.url)
    assert "importance: for adam on digits-mlp, lr explains" in table.output
    add_runs(store, ACCURACY, "sgd", {"lr": 1e-2, "momentum": 0.9}, [0.5, 0.51])
    text = advise(ACCURACY.name, db=store).text
    assert "For adam on digits-mlp, lr explains 9" in text


def test_importance_by_hand():
    # group means 0.25 and 2.25 around 1.25: between 4 * 1 = 4; total 4.25; within 0.25 over
    # 4 - 2 degrees of freedom = 0.125; k - 1 = 1
    assert epsilon_squared([0.0, 0.5, 2.0, 2.5], [0, 0, 1, 1]) == pytest.approx(
        (4.0 - 0.125) / 4.25)
    assert importance_shares([(1.0, {"lr": 1.0})] * 3) == {}  # too few configurations


def test_defaults_against_tuning(store):
    """adam's default (recommended origin) reaches 0.95 against its tuned 0.97; sgd's default
    0.90. The best default over 2 optimizers (adam, 0.95) against one optimizer tuned with the
    same 2 configurations: the expected best of 2 of its configurations drawn at random."""
    add_runs(store, ACCURACY, "adam", {"lr": 1e-3}, [0.95, 0.95], origin="recommended")
    add_runs(store, ACCURACY, "adam", {"lr": 3e-3}, [0.97, 0.97])
    add_runs(store, ACCURACY, "adam", {"lr": 1e-1}, [None])
    add_runs(store, ACCURACY, "sgd", {"lr": 1e-2}, [0.90, 0.90], origin="recommended")
    add_runs(store, ACCURACY, "sgd", {"lr": 1e-1}, [0.93, 0.93])
    add_runs(store, ACCURACY, "sgd", {"lr": 3e-1}, [0.92, 0.92])
    result = compare([ACCURACY.name], db=store).per_task[ACCURACY.name]["defaults_vs_tuning"]
    assert result["defaults"]["adam"] == {"default": pytest.approx(0.95),
                                          "tuned": pytest.approx(0.97), "diverged": False,
                                          "seeds": 2}
    assert result["best_default"] == {"optimizer": "adam", "mean": pytest.approx(0.95)}
    assert result["k"] == 2
    # adam's 3 configurations {0.95, 0.97, diverged (the worst: 0.95)}, two draws with
    # replacement: 0.97 unless both miss it, (2/3)^2 = 4/9
    assert result["tuned_with_k"]["adam"] == pytest.approx(0.97 * 5 / 9 + 0.95 * 4 / 9)
    # sgd's {0.90, 0.92, 0.93}: 0.93 with 1 - (2/3)^2, 0.92 with (2/3)^2 - (1/3)^2, 0.90 (1/3)^2
    assert result["tuned_with_k"]["sgd"] == pytest.approx(0.93 * 5 / 9 + 0.92 * 3 / 9
                                                          + 0.90 / 9)
    text = advise(ACCURACY.name, db=store).text
    assert "at its default adam reaches 95.0% (tuned 97.0%)" in text


def test_the_report_shows_probabilities_ratios_pareto_and_defaults(store, tmp_path):
    from tuner.report import write_report

    add_runs(store, ACCURACY, "adamw", {"lr": 1e-3}, [0.96, 0.96], origin="recommended")
    add_runs(store, ACCURACY, "adamw", {"lr": 2e-3}, [0.97, 0.971, 0.972])
    add_runs(store, ACCURACY, "lion", {"lr": 1.25e-4}, [0.95, 0.951, 0.952], state=1.0)
    report = write_report(ACCURACY.name, tmp_path / "report", db=store)
    page = report.index.read_text()
    assert "<th>P(best)</th>" in page and "<th>Pareto</th>" in page
    # adamw's best lr is 2e-3, but with one trial (lion has one) a repeated study picks its
    # 1e-3 configuration half the time: the interval counts the luck of the draw
    assert "16x (8x-16x) below" in page
    assert "Defaults against tuning: adamw at its default 96.0%, tuned 97.1%." in page
