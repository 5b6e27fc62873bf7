"""One observation per (configuration, seed): replays add no seed, the statistics the triggers
keep equal a recomputation from the runs, and concurrent writers lose nothing."""

from __future__ import annotations

import math
import threading

import pytest
from sqlalchemy import select

from tuner.store import TaskRecord, open_store, record_run, record_task
from tuner.store.models import ConfigStats, Protocol, Run, SeedStats
from tuner.store.observations import whole_store_config_stats
from tuner.training.loop import RunResult

TASK = TaskRecord("digits-mlp", "vision", "val_accuracy", "maximize", 0.95)
COLUMNS = ("runs", "complete", "diverged", "pruned", "failed", "metric_count", "metric_sum",
           "metric_sumsq", "metric_mean", "replays", "replay_sumsq", "reached", "steps_sum",
           "state_measured", "state_multiple_sum", "state_multiple", "lr")


def run(optimizer="adam", lr=1e-3, seed=0, final=0.9, status="complete", budget=100,
        steps_to_target=None) -> RunResult:
    return RunResult(
        task=TASK.name, optimizer=optimizer, params={"lr": lr}, seed=seed, status=status,
        final_metric=final if status == "complete" else None, best_metric=final,
        steps_to_target=steps_to_target, optimizer_state_bytes=800, param_count=100,
        options={"budget": budget},
    )


def stats_rows(store) -> dict[tuple, dict]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(ConfigStats.__table__)).mappings().all()
    return {(r["task"], r["optimizer"], r["protocol"], r["config_hash"]): dict(r) for r in rows}


def recomputed_rows(store) -> dict[tuple, dict]:
    table = whole_store_config_stats()
    with store.engine.connect() as connection:
        rows = connection.execute(select(table)).mappings().all()
    return {(r["task"], r["optimizer"], r["protocol"], r["config_hash"]): dict(r) for r in rows}


def assert_same_statistics(store) -> None:
    """The trigger-kept table equals the aggregation of the runs (floats within 1e-9: sums of
    a few numbers of order 1 in another order)."""
    kept, again = stats_rows(store), recomputed_rows(store)
    assert kept.keys() == again.keys()
    for key, row in kept.items():
        for column in COLUMNS:
            want = again[key][column]
            if want is None or row[column] is None:
                assert row[column] == want, (key, column)
            else:
                assert row[column] == pytest.approx(want, rel=1e-9, abs=1e-12), (key, column)


def test_a_replayed_seed_is_one_observation(database_url):
    store = open_store(database_url)
    record_task(store, TASK)
    for final in (0.90, 0.92, 0.91):  # seed 0 three times: one observation, its mean
        record_run(store, None, run(seed=0, final=final))
    record_run(store, None, run(seed=1, final=0.95))
    (row,) = stats_rows(store).values()
    assert row["runs"] == 4 and row["complete"] == 4
    assert row["metric_count"] == 2  # two seeds
    assert row["metric_mean"] == pytest.approx((0.91 + 0.95) / 2)
    assert row["replays"] == 2
    # the replays' squared deviations around their seed's mean 0.91
    assert row["replay_sumsq"] == pytest.approx(0.01**2 * 2)
    with store.engine.connect() as connection:
        seeds = connection.execute(select(SeedStats.seed, SeedStats.runs)
                                   .order_by(SeedStats.seed)).all()
    assert [tuple(s) for s in seeds] == [(0, 3), (1, 1)]
    assert_same_statistics(store)
    store.dispose()


def test_statistics_follow_deletes_and_updates(database_url):
    store = open_store(database_url)
    record_task(store, TASK)
    for seed, final in enumerate((0.9, 0.8, 0.85)):
        record_run(store, None, run(seed=seed, final=final, steps_to_target=10 * (seed + 1)))
    record_run(store, None, run(seed=0, final=0.88))
    record_run(store, None, run(lr=1e-2, seed=0, status="diverged"))
    record_run(store, None, run(lr=1e-2, seed=1, status="pruned"))
    record_run(store, None, run(optimizer="sgd", seed=0, final=0.7, budget=200))
    assert_same_statistics(store)
    with store.engine.begin() as connection:
        first = connection.execute(select(Run.id).order_by(Run.id).limit(1)).scalar()
        connection.execute(Run.__table__.update().where(Run.id == first)
                           .values(final_metric=0.99))
        connection.execute(Run.__table__.delete().where(Run.seed == 2))
        connection.execute(Run.__table__.update().where(Run.optimizer == "sgd")
                           .values(status="failed", final_metric=None))
    assert_same_statistics(store)
    with store.engine.begin() as connection:
        connection.execute(Run.__table__.delete())
    assert stats_rows(store) == {}
    with store.engine.connect() as connection:
        assert connection.execute(select(SeedStats.__table__)).first() is None
    store.dispose()


def test_two_budgets_are_two_protocols_with_their_meaning_stored(sqlite_url):
    store = open_store(sqlite_url)
    record_task(store, TASK)
    record_run(store, None, run(budget=100))
    record_run(store, None, run(budget=200))
    protocols = {row[2] for row in stats_rows(store)}
    assert len(protocols) == 2
    with store.engine.connect() as connection:
        meanings = connection.execute(select(Protocol.key, Protocol.budget, Protocol.unit)).all()
    assert {(budget, unit) for _, budget, unit in meanings} == {(100, "steps"), (200, "steps")}
    assert {key for key, _, _ in meanings} == protocols
    store.dispose()


@pytest.mark.postgres
def test_concurrent_seeds_of_one_configuration_are_all_counted(postgres_url):
    """Two connections record seeds of one configuration at once, many times: the trigger
    locks the configuration's row, so the second recomputes with the first one's seed."""
    store = open_store(postgres_url)
    record_task(store, TASK)
    rounds, errors = 40, []

    def writer(parity: int) -> None:
        try:
            for i in range(rounds):
                record_run(store, None, run(seed=2 * i + parity, final=0.5 + 0.001 * i))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(parity,)) for parity in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    (row,) = stats_rows(store).values()
    assert row["metric_count"] == row["runs"] == 2 * rounds
    assert math.isclose(row["metric_mean"], 0.5 + 0.001 * (rounds - 1) / 2, rel_tol=1e-9)
    assert_same_statistics(store)
    store.dispose()
