"""Certainty that counts the tuning: the nested resample against known truths, the expected best
after k trials against the order-statistics formula by hand, and real studies whose replays,
budgets and scopes the advice must not mix up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tuner
from tuner.advice import rank_task
from tuner.advice.bootstrap import BOOTSTRAP_RESAMPLES, Contender, Tuning, resample
from tuner.advice.budgets import (
    budget_curves,
    expected_best_curve,
    expected_best_from_top,
    expected_best_of,
)
from tuner.cli import cli

SHARE_SE = (0.25 / BOOTSTRAP_RESAMPLES) ** 0.5
"""The standard error of a share estimated from B resamples (at most sqrt(1/4B) = 0.016); the
checks below allow four of them."""


def tuning(means, std=0.005, seeds=2, draws=None, rest=None) -> Tuning:
    configs = [Contender(1e-3 * (i + 1), m, std, seeds) for i, m in enumerate(means)]
    return Tuning(configs, draws or len(configs), rest)


# -- the resample against known truths -------------------------------------------------------


def missed(n: int, k: int) -> float:
    """The chance that k draws miss one configuration of n whose population weight is
    Beta(1, n - 1) (the Bayesian bootstrap): E[(1 - w)^k] = (n - 1) / (n - 1 + k)."""
    return (n - 1) / (n - 1 + k)


def test_a_wide_spread_over_configurations_lowers_p_best_below_seed_noise_alone():
    """a found one excellent configuration among poor ones; b's are all good. Over the seeds
    alone a wins almost always; a repeated study of four trials misses a's good one, when b
    wins, with probability E[(1 - w)^4] = 3/7."""
    found = resample({"a": tuning([0.97, 0.80, 0.78, 0.75]),
                      "b": tuning([0.95, 0.95, 0.94, 0.95])}, "maximize")
    assert found.p_best_seeds_only["a"] > 0.98
    assert found.p_best["a"] == pytest.approx(1 - missed(4, 4), abs=4 * SHARE_SE)
    assert found.p_best["a"] + found.p_best["b"] == pytest.approx(1.0)
    assert found.p_best_draws_only["a"] == pytest.approx(1 - missed(4, 4), abs=4 * SHARE_SE)


def test_seed_noise_alone_gives_the_predictive_normal_probability():
    """One configuration each, means 0.01 apart, each known to se 0.01 / sqrt(2) (std 0.01 over
    2 seeds): the difference is known to 0.01, and a repeated study measures it with an error
    of 0.01 of its own, so it names a with probability Phi(0.01 / (sqrt(2) 0.01)) = 0.760."""
    found = resample({"a": tuning([0.95], std=0.01), "b": tuning([0.94], std=0.01)},
                     "maximize")
    assert found.p_best["a"] == pytest.approx(0.7602, abs=4 * SHARE_SE)
    assert found.p_best_draws_only["a"] == 1.0  # without seed noise a always wins


def test_more_trials_than_measured_are_drawn_from_the_same_configurations():
    """At k draws a's good configuration is missed with probability 3 / (3 + k)."""
    found = resample({"a": tuning([0.97, 0.80, 0.78, 0.75]),
                      "b": tuning([0.95, 0.95, 0.94, 0.95])}, "maximize", [1, 4, 12])
    for k in (1, 4, 12):
        assert found[k].p_best["a"] == pytest.approx(1 - missed(4, k), abs=4 * SHARE_SE)


def test_minimising_tasks_and_a_rest_beyond_the_top():
    """On a loss, lower is better; a tuning with more draws than listed configurations draws
    the rest as its best unlisted one."""
    found = resample({"a": tuning([0.10], draws=2, rest=0.30),
                      "b": tuning([0.20, 0.20])}, "minimize")
    # two draws include a's 0.10 with probability 1 - E[(1 - w)^2] = 2/3, else a's best is
    # the rest (0.30) and b wins
    assert found.p_best["a"] == pytest.approx(1 - missed(2, 2), abs=4 * SHARE_SE)


def test_the_winners_curse_is_measured_on_near_ties():
    """Ten configurations of equal mean: the best measured one is the luckiest. Its expected
    excess is E[max of 10 normals] = 1.539 standard errors."""
    found = resample({"a": tuning([0.9] * 10, std=0.02, seeds=4)}, "maximize")
    assert found.selection_bias["a"] == pytest.approx(1.539 * 0.01, rel=0.05)
    single = resample({"a": tuning([0.9, 0.5], std=0.02, seeds=4)}, "maximize")
    assert single.selection_bias["a"] == pytest.approx(0.0, abs=0.001)  # no contest, no bias


# -- the expected best after k trials --------------------------------------------------------


def by_hand(values: list[float], k: int) -> float:
    """E[max of k draws with replacement] = sum_i ((i/n)^k - ((i-1)/n)^k) x_(i), worst first
    (i from 1): the chance that the best of k is the i-th worst, times it."""
    ordered = sorted(values)
    n = len(ordered)
    return sum(((i / n) ** k - ((i - 1) / n) ** k) * x for i, x in enumerate(ordered, start=1))


def test_the_expected_best_of_k_equals_the_order_statistics_formula():
    outcomes = [0.5, 0.9, None, 0.7, 0.8, 0.65]  # None: pruned or diverged, the worst (0.5)
    filled = [0.5 if x is None else x for x in outcomes]
    curve = expected_best_curve(outcomes, "maximize")
    assert curve == pytest.approx([by_hand(filled, k) for k in range(1, 7)], rel=1e-12)
    assert curve[0] == pytest.approx(sum(filled) / 6)  # one trial: the mean
    # six draws of six miss the best (0.9) with probability (5/6)^6: below it, and rising with k
    assert curve[-1] < 0.9 and curve == sorted(curve)
    assert expected_best_of(outcomes, 60, "maximize") == pytest.approx(0.9, abs=1e-4)
    assert expected_best_of(outcomes, 3, "maximize") == pytest.approx(by_hand(filled, 3))
    losses = [0.1, 0.4, None, 0.2]  # minimising: the worst is the largest, 0.4
    assert expected_best_of(losses, 2, "minimize") == pytest.approx(
        -by_hand([-0.1, -0.4, -0.4, -0.2], 2))
    # from the top 4 of 6 (every result is there: the rest are pruned, the worst)
    top = sorted(filled, reverse=True)[:4]
    assert expected_best_from_top(top, 6, 2, every_result=False) is None  # rest may matter
    assert expected_best_from_top(sorted(filled, reverse=True), 6, 2, True) == pytest.approx(
        by_hand(filled, 2))


def test_budget_curves_have_intervals_around_the_expected_values():
    outcomes = {"a": [0.99, 0.5, 0.6, None], "b": [0.8, 0.79, 0.81, 0.8]}
    errors = {"a": [0.01, 0.01, 0.01, 0.0], "b": [0.01] * 4}
    curves = budget_curves(outcomes, errors, "maximize")
    a, b = curves["a"], curves["b"]
    assert a.expected == pytest.approx(expected_best_curve(outcomes["a"], "maximize"))
    assert all(low <= value <= high for low, value, high in zip(a.low, a.expected, a.high,
                                                                   strict=True))
    assert a.at(1) < b.at(1) and a.at(4) > b.at(4)  # b is the safer bet for one trial
    assert a.high[0] - a.low[0] > b.high[0] - b.low[0]  # a's wide spread: a wide interval


# -- real studies ----------------------------------------------------------------------------


def study(db: str, name: str, *, optimizers: str = "adamw,sgd", trials: int = 3,
          seeds: int = 1, budget: int = 30) -> None:
    """``tuner study create`` and ``tuner study run`` (their own functions, in this process)."""
    from tuner.driver import create_study, run_study

    create_study({"name": name, "task": "logreg", "optimizers": optimizers, "trials": trials,
                  "seeds": seeds, "budget": budget, "pruner": "none", "ranges": []}, db)
    run_study(name, db)


def invoke(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


@pytest.mark.slow
def test_three_identical_studies_are_one_observation_per_seed(tmp_path):
    """The same settings three times (the same sampler seed, the same training seeds) replay
    the same configurations: each stays at one seed, and nothing is named with confidence."""
    db = f"sqlite:///{tmp_path / 'tuner.db'}"
    for name in ("one", "two", "three"):
        study(db, name)
    ranking = rank_task("logreg", db=db)
    winner = ranking.winner
    assert winner.seeds == 1 and winner.replays == 2 and winner.std is None
    assert winner.replay_std == pytest.approx(0.0, abs=1e-9)  # deterministic on one machine
    assert all(s.p_best is None for s in ranking.optimizers)
    assert not ranking.certainty.settled
    advice = tuner.advise("logreg", db=db).text
    assert "± ?" in advice and "noise is unknown" in advice
    assert "2 replays of its seeds agree" in advice


@pytest.mark.slow
def test_a_ranking_is_of_one_protocol_and_names_the_other(tmp_path):
    db = f"sqlite:///{tmp_path / 'tuner.db'}"
    study(db, "short", seeds=2, budget=20)
    study(db, "long", optimizers="adamw", trials=2, budget=40)
    ranking = rank_task("logreg", db=db)
    assert ranking.protocol.budget == 20  # 3 trials x 2 seeds x 2 optimizers: the most observed
    assert [p.budget for p in ranking.other_protocols] == [40]
    assert {s.optimizer for s in ranking.optimizers} == {"adamw", "sgd"}
    assert all(s.training["budget"] == 20 for s in ranking.optimizers)
    printed = invoke("best", "--task", "logreg", "--db", db)
    assert "(20 steps)" in printed and "also measured under: 40 steps (--budget 40)" in printed
    longer = rank_task("logreg", db=db, budget=40)
    assert [s.optimizer for s in longer.optimizers] == ["adamw"]
    compared = json.loads(invoke("compare", "--json", "--db", db))
    assert compared["per_task"]["logreg"]["protocol"] == "20 steps"
    assert "40 steps" in compared["per_task"]["logreg"]["also_measured"]
    own = tuner.Study.load("long", db=db).best()
    assert own.study == "long" and own.protocol.budget == 40
    assert [s.optimizer for s in own.optimizers] == ["adamw"] and own.optimizers[0].trials == 2
    assert own.studies == 1


def test_advice_modules_are_pure_reads():
    """Ranking and advising import neither torch nor Optuna nor the plugins (nor scipy)."""
    code = ("import sys, tuner.advice.ranking, tuner.advice.recommend, tuner.advice.budgets, "
            "tuner.advice.bootstrap\n"
            "print(sorted(m for m in ('torch', 'optuna', 'tuner_plugins', 'scipy') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
