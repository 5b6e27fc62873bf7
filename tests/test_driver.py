"""The driver's Optuna mechanics on real SQLite studies: first trial, values, divergence, pruners,
samplers, grids, and the checks that guard a running study."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import select, update

from tuner.driver import (
    DriverError,
    Worker,
    WorkerSettings,
    create,
    optuna_study_name,
    run_study,
)
from tuner.driver.context import optimizer_space
from tuner.driver.grid import grid_points
from tuner.driver.optuna_adapter import make_sampler
from tuner.driver.resolve import resolve
from tuner.plugin.registry import get_registry
from tuner.plugin.space import Categorical, Float, SearchSpace
from tuner.store import Run, Study, Trial, open_store
from tuner.store.studies import get_study
from tuner.study.spec import StudyFileError, StudySpec, parse_range_flag

TINY = {"task": "quadratic", "budget": 20}


def make(url: str, name: str, **settings) -> StudySpec:
    return create(resolve({"name": name, **TINY, **settings}), url)


def optuna_trials(url: str, study: str, optimizer: str) -> list[optuna.trial.FrozenTrial]:
    store = open_store(url, create=False)
    try:
        return optuna.load_study(
            study_name=optuna_study_name(study, optimizer), storage=store.optuna_storage()
        ).trials
    finally:
        store.dispose()


def rows(url: str, model, **where) -> list:
    store = open_store(url, create=False)
    try:
        with store.session() as session:
            query = select(model)
            for key, value in where.items():
                query = query.where(getattr(model, key) == value)
            return session.scalars(query.order_by(model.id)).all()
    finally:
        store.dispose()


def test_first_trial_is_recommended_and_values_are_seed_means(sqlite_url: str):
    make(sqlite_url, "means", optimizers="adam,momentum", trials=3, seeds=2, pruner="none")
    assert run_study("means", sqlite_url).stopped == "finished"
    registry = get_registry()
    for optimizer in ("adam", "momentum"):
        trials = optuna_trials(sqlite_url, "means", optimizer)
        assert len(trials) == 3
        assert trials[0].params == registry.optimizer(optimizer).space.recommended()
        assert trials[0].user_attrs["origin"] == "recommended"
    for trial in rows(sqlite_url, Trial, status="complete"):
        finals = [run.final_metric for run in rows(sqlite_url, Run, trial_id=trial.id)]
        assert len(finals) == 2
        assert trial.value == pytest.approx(sum(finals) / 2)


def test_a_diverged_trial_is_complete_with_the_worst_value(sqlite_url: str):
    # SGD with a learning rate of 5 to 10 blows up on the quadratic every time.
    make(sqlite_url, "blowup", optimizers="sgd", trials=2, seeds=2, pruner="none",
         ranges=[parse_range_flag("sgd.lr=5:10")])
    run_study("blowup", sqlite_url)
    for trial in optuna_trials(sqlite_url, "blowup", "sgd"):
        assert trial.state == TrialState.COMPLETE and trial.value == math.inf
        assert trial.user_attrs["diverged"] is True
    stored = rows(sqlite_url, Trial)
    assert [t.status for t in stored] == ["diverged", "diverged"]
    assert all(t.value is None for t in stored)
    for trial in stored:  # the trial stops at its first diverged seed
        assert [r.status for r in rows(sqlite_url, Run, trial_id=trial.id)] == ["diverged"]


def test_curve_pruners_report_every_evaluation_seed_by_seed(sqlite_url: str):
    make(sqlite_url, "curves", optimizers="adam", trials=4, seeds=2, pruner="median")
    run_study("curves", sqlite_url)
    first = optuna_trials(sqlite_url, "curves", "adam")[0]
    # budget 20, one evaluation every 5 steps; seed 1 is offset by budget + 1 = 21 steps
    assert sorted(first.intermediate_values) == [5, 10, 15, 20, 26, 31, 36, 41]


def test_hyperband_runs_within_the_budget(sqlite_url: str):
    make(sqlite_url, "hyper", optimizers="sgd", trials=8, seeds=1, pruner="hyperband",
         ranges=[parse_range_flag("lr=1e-4:1e-1")])
    run_study("hyper", sqlite_url)
    states = [t.state for t in optuna_trials(sqlite_url, "hyper", "sgd")]
    assert len(states) == 8 and TrialState.RUNNING not in states
    statuses = [t.status for t in rows(sqlite_url, Trial)]
    assert set(statuses) <= {"complete", "pruned", "diverged"}


def test_wilcoxon_pruner_treats_seeds_as_instances(sqlite_url: str):
    make(sqlite_url, "seeds", optimizers="adam", trials=3, seeds=4, pruner="wilcoxon")
    run_study("seeds", sqlite_url)
    first = optuna_trials(sqlite_url, "seeds", "adam")[0]
    assert sorted(first.intermediate_values) == [0, 1, 2, 3]  # one value per seed
    runs = rows(sqlite_url, Run, trial_id=rows(sqlite_url, Trial)[0].id)
    assert [first.intermediate_values[i] for i in range(4)] == pytest.approx(
        [r.final_metric for r in sorted(runs, key=lambda r: r.seed)]
    )


def test_grid_sampler_covers_a_grid_of_about_the_budget(sqlite_url: str):
    make(sqlite_url, "grid", optimizers="sgd", trials=5, seeds=1, sampler="grid",
         pruner="none")
    run_study("grid", sqlite_url)
    trials = optuna_trials(sqlite_url, "grid", "sgd")
    lrs = [t.params["lr"] for t in trials[1:]]  # trial 0 is the recommended configuration
    assert len(set(lrs)) == 4
    grid = grid_points(get_registry().optimizer("sgd").space, 5)
    assert sorted(lrs) == pytest.approx(sorted(grid["lr"]))


def test_qmc_and_random_samplers_run(sqlite_url: str):
    make(sqlite_url, "qmc", optimizers="adam", trials=3, seeds=1, sampler="qmc", pruner="none")
    make(sqlite_url, "rnd", optimizers="adam", trials=3, seeds=1, sampler="random")
    for name in ("qmc", "rnd"):
        assert run_study(name, sqlite_url).stopped == "finished"
        lrs = {t.params["lr"] for t in optuna_trials(sqlite_url, name, "adam")}
        assert len(lrs) == 3


def test_grid_points_stay_within_the_budget_and_favour_the_learning_rate():
    space = SearchSpace([
        Float("lr", 1e-4, 1.0, default=1e-2, log=True),
        Float("momentum", 0.0, 0.99, default=0.9),
        Categorical("nesterov", (False, True), default=False),
    ])
    for trials in (1, 2, 5, 13, 40, 200):
        grid = grid_points(space, trials)
        size = len(grid["lr"]) * len(grid["momentum"]) * len(grid["nesterov"])
        assert size <= max(2, trials - 1)
        assert len(grid["lr"]) >= len(grid["momentum"])
    grid = grid_points(space, 40)
    assert len(grid["lr"]) * len(grid["momentum"]) * 2 >= 30  # close to the budget


def test_a_changed_search_space_stops_the_worker(sqlite_url: str):
    config = make(sqlite_url, "changed", optimizers="adam", trials=1, seeds=1)
    store = open_store(sqlite_url)
    with store.engine.begin() as connection:
        options = dict(config.options(), space_hashes={"adam": "0000000000000000"})
        connection.execute(update(Study).where(Study.id == config.id).values(options=options))
    store.dispose()
    with pytest.raises(DriverError, match="search space of optimizer 'adam' changed"):
        Worker("changed", sqlite_url, settings=WorkerSettings(0.5, 2.0)).run()


def test_resolve_checks_flags_and_file_together():
    spec = resolve(
        {"name": "s", "trials": 7, "ranges": [parse_range_flag("adam.lr=1e-4:1e-2")]},
        {"task": "quadratic", "optimizers": ["adam", "sgd"], "seeds": 2,
         "ranges": [parse_range_flag("lr=1e-3:1e-1")]},
    )
    assert spec.trials == 7 and spec.optimizers == ["adam", "sgd"]
    assert spec.ranges == {"adam": {"lr": [1e-4, 1e-2]}, "sgd": {"lr": [1e-3, 1e-1]}}
    assert optimizer_space(spec, "adam")["lr"].high == 1e-2
    for bad, message in (
        ({"optimizers": "adam,adam"}, "listed twice"),
        ({"seeds": 0}, "seeds must be a positive"),
        ({"pruner": "sometimes"}, "none, median, hyperband, wilcoxon"),
        ({"schedule": "zigzag"}, "unknown schedule"),
        ({"ranges": [parse_range_flag("nosuch=1:2")]}, "no optimizer of the study"),
        ({"name": "a/b"}, "study name"),
    ):
        settings = {"name": "s", "task": "quadratic", "optimizers": "adam", "trials": 2,
                    "seeds": 1, **bad}
        with pytest.raises(Exception, match=message):
            resolve(settings)
    with pytest.raises(StudyFileError, match="PARAM=LOW:HIGH"):
        parse_range_flag("lr=0.1")


def test_sweep_settles_an_optuna_trial_left_running(sqlite_url: str):
    """A worker that died between closing its row and telling Optuna leaves Optuna's trial
    RUNNING; the next worker tells Optuna what the row says."""
    make(sqlite_url, "sweep", optimizers="adam", trials=1, seeds=1, pruner="none")
    run_study("sweep", sqlite_url)
    (trial,) = rows(sqlite_url, Trial)
    store = open_store(sqlite_url, create=False)
    storage = store.optuna_storage()
    study = optuna.load_study(study_name=optuna_study_name("sweep", "adam"), storage=storage)
    # Rewind Optuna's side: a trial left RUNNING by the dead worker.
    with storage.engine.begin() as connection:
        from sqlalchemy import text

        connection.execute(text("UPDATE trials SET state = 'RUNNING' WHERE trial_id = :i"),
                           {"i": trial.optuna_trial_id})
        connection.execute(text("DELETE FROM trial_values WHERE trial_id = :i"),
                           {"i": trial.optuna_trial_id})
    store.dispose()
    assert run_study("sweep", sqlite_url).already_finished
    (settled,) = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert settled.state == TrialState.COMPLETE and settled.value == pytest.approx(trial.value)
    with open_store(sqlite_url, create=False) as store:
        assert get_study(store, "sweep").status == "finished"


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc"])
def test_optimizers_with_the_same_parameter_names_draw_different_configurations(sampler):
    space = SearchSpace([Float("lr", 1e-5, 1e-1, default=1e-3, log=True)])
    drawn = {}
    for optimizer in ("adam", "adamw"):
        study = optuna.create_study(sampler=make_sampler(sampler, 0, optimizer, 1, 4))
        drawn[optimizer] = space.suggest(study.ask())["lr"]
    if sampler != "qmc":  # QMC's sequence is the study's: one point per slot, any optimizer
        assert drawn["adam"] != drawn["adamw"]
    again = optuna.create_study(sampler=make_sampler(sampler, 0, "adam", 1, 4))
    assert space.suggest(again.ask())["lr"] == drawn["adam"]  # still reproducible
    other_slot = optuna.create_study(sampler=make_sampler(sampler, 0, "adam", 2, 4))
    assert space.suggest(other_slot.ask())["lr"] != drawn["adam"]  # each slot its own draw
