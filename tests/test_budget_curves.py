"""The expected best after k trials as the report and the task page draw it: read from a real
store (a hand-built one: every outcome and seed known), with the seed errors of the pooling
rule, and ``tuner best --trials-budget K``'s column."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from click.testing import CliRunner
from test_advice import ACCURACY_TASK, add_runs

from tuner.advice import rank_task
from tuner.advice.budgets import (
    budget_curves,
    expected_best_curve,
    expected_best_of,
    seed_errors,
)
from tuner.advice.curves import curves_of
from tuner.cli import cli
from tuner.store import open_store
from tuner.store.queries import config_outcome_spreads

EXACT = 1e-9
"""Relative tolerance for a mean the store sums in SQL against the same mean summed here: the
two differ only by the order of a few additions (about 1e-16 relative), far below this."""

ADAM = {  # lr: seeds' final accuracies (None: diverged)
    1e-3: [0.97, 0.975], 3e-4: [0.95, 0.96], 1e-4: [0.90], 0.1: [None, None],
}
SGD = {1e-2: [0.93], 1e-1: [0.92]}  # one seed each: sgd has no spread of its own


@pytest.fixture
def measured(database_url):
    """adam: two two-seed configurations, a one-seed one, a diverged one and a pruned one;
    sgd: two one-seed configurations; adam's state is 2n, sgd's 0n."""
    store = open_store(database_url)
    for lr, finals in ADAM.items():
        add_runs(store, ACCURACY_TASK, "adam", {"lr": lr}, finals)
    add_runs(store, ACCURACY_TASK, "adam", {"lr": 2e-3}, [None, None],
             statuses=["pruned", "pruned"])
    for lr, finals in SGD.items():
        add_runs(store, ACCURACY_TASK, "sgd", {"lr": lr}, finals, state=0.0)
    yield store
    store.dispose()


def adam_pooled_std() -> float:
    """adam's pooled within-configuration std, by hand: both two-seed configurations have one
    degree of freedom each."""
    return math.sqrt((statistics.stdev(ADAM[1e-3]) ** 2 + statistics.stdev(ADAM[3e-4]) ** 2) / 2)


def hand_outcome(finals: list[float | None]) -> float | None:
    return None if None in finals else statistics.fmean(finals)


def test_the_curves_are_the_expected_best_of_the_stored_outcomes(measured):
    ranking = rank_task(ACCURACY_TASK, db=measured)
    curves = curves_of(ranking, measured)
    assert sorted(curves) == ["adam", "sgd"]
    adam = curves["adam"]
    outcomes = [hand_outcome(f) for f in ADAM.values()] + [None]  # the pruned one
    assert adam.trials == 5
    assert adam.expected == pytest.approx(expected_best_curve(outcomes, "maximize"), rel=EXACT)
    # one trial: the mean of the five draws, the diverged and the pruned one at the worst (0.90)
    assert adam.expected[0] == pytest.approx(statistics.fmean([0.9725, 0.955, 0.90, 0.90, 0.90]),
                                             rel=EXACT)
    assert adam.at(ranking.trials_compared) == pytest.approx(
        ranking.standing("adam").expected, rel=EXACT)
    sgd = curves["sgd"]
    assert sgd.expected == pytest.approx([0.925, 0.93 * 0.75 + 0.92 * 0.25], rel=EXACT)
    for curve in curves.values():
        assert curve.seed_noise
        assert all(low <= value <= high for low, value, high
                   in zip(curve.low, curve.expected, curve.high, strict=True))


def test_one_seed_configurations_get_the_pooled_error(measured):
    ranking = rank_task(ACCURACY_TASK, db=measured)
    configs = config_outcome_spreads(measured, ranking.scope)
    errors, known = seed_errors(configs)
    assert known
    pooled = adam_pooled_std()  # sgd has no two-seed configuration: the task's pooled is adam's
    by_hand = {
        0.9725: statistics.stdev(ADAM[1e-3]) / math.sqrt(2),
        0.955: statistics.stdev(ADAM[3e-4]) / math.sqrt(2),
        0.90: pooled, 0.93: pooled, 0.92: pooled,
    }
    for name in ("adam", "sgd"):
        for config, error in zip(configs[name], errors[name], strict=True):
            if config.outcome is None:  # diverged or only pruned: the worst, no noise
                assert error == 0.0
            else:
                key = min(by_hand, key=lambda mean: abs(mean - config.outcome))
                assert error == pytest.approx(by_hand[key], rel=EXACT)
    assert [c.outcome is None for c in configs["adam"]].count(True) == 2

    # the intervals drawn are those of these errors (the same pinned resample)
    outcomes = {name: [c.outcome for c in found] for name, found in configs.items()}
    expected = budget_curves(outcomes, errors, "maximize")
    drawn = curves_of(ranking, measured)
    for name in expected:
        assert drawn[name].low == pytest.approx(expected[name].low, rel=EXACT)
        assert drawn[name].high == pytest.approx(expected[name].high, rel=EXACT)


def test_the_curves_keep_to_the_rankings_memory_budget(measured):
    """Within 1n adam (2n) is not ranked: its configurations are not drawn either."""
    ranking = rank_task(ACCURACY_TASK, db=measured, memory_budget="1n")
    assert sorted(curves_of(ranking, measured)) == ["sgd"]


def test_with_one_seed_everywhere_the_interval_counts_the_draws_alone(sqlite_url):
    store = open_store(sqlite_url)
    try:
        add_runs(store, ACCURACY_TASK, "adam", {"lr": 1e-3}, [0.97])
        add_runs(store, ACCURACY_TASK, "adam", {"lr": 1e-2}, [0.90])
        curves = curves_of(rank_task(ACCURACY_TASK, db=store), store)
    finally:
        store.dispose()
    adam = curves["adam"]
    assert not adam.seed_noise
    # without seed noise every resample lies between the two outcomes
    assert 0.90 - EXACT <= min(adam.low) and max(adam.high) <= 0.97 + EXACT


def best_table(*args: str) -> list[str]:
    result = CliRunner().invoke(cli, ["best", "--task", ACCURACY_TASK, *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def header_and_row(lines: list[str], optimizer: str) -> tuple[str, str]:
    header = next(line for line in lines if "P(best)" in line)
    row = next(line for line in lines if line.split()[1:2] == [optimizer])
    return header, row


SHOWN = 0.0005 + EXACT
"""How far a percentage the table shows to one decimal may be from the exact share."""


def shown_percent(header: str, row: str, column: str) -> float:
    """The value of a column of the table (rich aligns a column's cells on its header)."""
    return float(row[header.index(column):].split()[0].rstrip("%")) / 100


def test_best_shows_the_best_of_k_trials_column(sqlite_url):
    """Equal trial counts: no column unless --trials-budget asks for one; then it holds each
    optimizer's expected best of K."""
    store = open_store(sqlite_url)
    try:
        for lr, finals in ((1e-3, [0.97, 0.975]), (1e-2, [0.90, 0.91]), (3e-4, [0.95, 0.96])):
            add_runs(store, ACCURACY_TASK, "adam", {"lr": lr}, finals)
        for lr, finals in ((1e-2, [0.93, 0.94]), (1e-1, [0.92, 0.92]), (3e-2, [0.80, 0.82])):
            add_runs(store, ACCURACY_TASK, "sgd", {"lr": lr}, finals, state=0.0)
    finally:
        store.dispose()
    header, _ = header_and_row(best_table("--db", sqlite_url), "adam")
    assert "best of" not in header  # three trials each: the best mean is what is compared

    lines = best_table("--trials-budget", "2", "--db", sqlite_url)
    header, row = header_and_row(lines, "adam")
    assert "best of 2 trials" in header
    adam_outcomes = [0.9725, 0.905, 0.955]
    assert shown_percent(header, row, "best of 2 trials") == pytest.approx(
        expected_best_of(adam_outcomes, 2, "maximize"), abs=SHOWN)
    data = json.loads(CliRunner().invoke(
        cli, ["best", "--task", ACCURACY_TASK, "--trials-budget", "2", "--db", sqlite_url,
              "--json"], catch_exceptions=False).output)
    assert data["trials_compared"] == 2
    adam = next(s for s in data["optimizers"] if s["optimizer"] == "adam")
    assert adam["expected"] == pytest.approx(expected_best_of(adam_outcomes, 2, "maximize"),
                                             rel=EXACT)


def test_best_shows_the_column_when_the_trial_counts_differ(measured):
    """adam has five trials, sgd two: both are compared at two, and the table says so."""
    header, row = header_and_row(best_table("--db", measured.url), "adam")
    assert "best of 2 trials" in header
    outcomes = [hand_outcome(f) for f in ADAM.values()] + [None]
    assert shown_percent(header, row, "best of 2 trials") == pytest.approx(
        expected_best_of(outcomes, 2, "maximize"), abs=SHOWN)
