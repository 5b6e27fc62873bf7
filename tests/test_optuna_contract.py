"""The behaviours of Optuna that tuner relies on, one test each (see tuner/driver/optuna_adapter).

An Optuna upgrade that changes one of them fails here, not in a worker's claims or retries.
"""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from tuner.driver import optuna_adapter
from tuner.plugin.space import Categorical, Float, SearchSpace
from tuner.store import open_store

SPACE = SearchSpace([
    Float("lr", 1e-5, 1e-1, default=1e-3, log=True),
    Categorical("nesterov", (False, True), default=False),
])


@pytest.fixture
def study(sqlite_url: str):
    store = open_store(sqlite_url)
    storage = optuna_adapter.storage(store)
    optuna_adapter.create_studies(storage, "c", ["adam"], "maximize", {"task": "t"})
    yield optuna_adapter.load_study(storage, "c", "adam", "maximize",
                                    optuna_adapter.make_pruner("none", 10, 1, 4))
    store.dispose()


def test_fixed_params_are_what_suggest_returns(study):
    trial = optuna_adapter.new_trial(study, fixed_params={"lr": 0.02, "nesterov": True},
                                     user_attrs={"slot": 3})
    assert SPACE.suggest(trial) == {"lr": 0.02, "nesterov": True}
    frozen = study.get_trials(deepcopy=False)[-1]
    assert frozen.user_attrs == {"slot": 3} and frozen.state == TrialState.RUNNING
    assert optuna_adapter.trial_id(trial) == frozen._trial_id


def test_a_new_trial_is_seen_by_the_next_sampler_draw(study):
    first = optuna_adapter.new_trial(study, sampler=optuna_adapter.make_sampler(
        "tpe", 0, "adam", 0, 4))
    SPACE.suggest(first)
    second = optuna_adapter.new_trial(study, sampler=optuna_adapter.make_sampler(
        "tpe", 0, "adam", 1, 4))
    SPACE.suggest(second)
    assert [t.number for t in study.get_trials(deepcopy=False)] == [0, 1]


def test_qmc_takes_the_point_of_its_slot(study):
    points = []
    for slot in (5, 5, 6):
        trial = optuna_adapter.new_trial(study, sampler=optuna_adapter.make_sampler(
            "qmc", 0, "adam", slot, 8))
        points.append(SPACE.suggest(trial)["lr"])
        optuna_adapter.tell(study, trial, "complete", 0.5, "maximize")
    assert points[0] != points[2]
    later = optuna_adapter.new_trial(study, sampler=optuna_adapter.make_sampler(
        "qmc", 0, "adam", 5, 8))
    again = SPACE.suggest(later)["lr"]
    later2 = optuna_adapter.new_trial(study, sampler=optuna_adapter.make_sampler(
        "qmc", 0, "adam", 5, 8))
    assert SPACE.suggest(later2)["lr"] == again  # the same slot, the same point


def test_tell_fail_and_settle_set_the_states_tuner_expects(study):
    told = [optuna_adapter.new_trial(study, fixed_params={"lr": 0.01, "nesterov": False})
            for _ in range(5)]
    for trial in told:
        SPACE.suggest(trial)
    optuna_adapter.tell(study, told[0], "complete", 0.9, "maximize")
    optuna_adapter.tell(study, told[1], "diverged", None, "maximize")
    optuna_adapter.tell(study, told[2], "pruned", 0.1, "maximize")
    optuna_adapter.fail_trial(study, optuna_adapter.trial_id(told[3]), note="reaped")
    optuna_adapter.fail_trial(study, optuna_adapter.trial_id(told[0]), note="late")  # no-op
    running = optuna_adapter.running_trials(study)
    assert [tid for tid, _ in running] == [optuna_adapter.trial_id(told[4])]
    optuna_adapter.settle_trial(study, running[0][0], "complete", 0.7, "maximize")
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE,
                                         TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].value == 0.9 and trials[1].value == -math.inf
    assert trials[1].user_attrs["diverged"] is True
    assert trials[3].user_attrs["tuner_failed"] == "reaped"
    assert trials[4].value == 0.7


def test_pruners_see_reports_by_step(study):
    pruned = optuna_adapter.make_pruner("median", 20, 2, 8)
    assert isinstance(pruned, optuna.pruners.MedianPruner)
    trial = optuna_adapter.new_trial(study, fixed_params={"lr": 0.01, "nesterov": False})
    SPACE.suggest(trial)
    assert optuna_adapter.report(trial, 0.5, 3) is False
    assert study.get_trials(deepcopy=False)[-1].intermediate_values == {3: 0.5}


def test_orphans_are_found_and_deleted(sqlite_url: str):
    with open_store(sqlite_url) as store:
        storage = optuna_adapter.storage(store)
        optuna_adapter.create_studies(storage, "o", ["adam", "sgd"], "minimize", {})
        optuna_adapter.create_studies(storage, "other", ["adam"], "minimize", {})
        assert sorted(optuna_adapter.orphan_studies(storage, "o")) == [
            "tuner/o/adam", "tuner/o/sgd"]
        optuna_adapter.delete_studies(storage, optuna_adapter.orphan_studies(storage, "o"))
        assert optuna.get_all_study_names(storage) == ["tuner/other/adam"]
