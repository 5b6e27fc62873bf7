"""The configuration key: hyperparameters plus the training options that change the result."""

from __future__ import annotations

import dataclasses
import importlib.util
import random

import pytest
from sqlalchemy import select

from tuner.store import (
    RESULT_OPTIONS,
    Run,
    config_hash,
    config_key,
    open_store,
    params_hash,
    record_run,
    training_options,
)
from tuner.store.database import migrations_directory
from tuner.training.loop import RunResult
from tuner.training.options import TrainOptions

PARAMS = {"lr": 1e-3, "beta1": 0.9}


def test_result_options_are_train_options_with_their_defaults_as_baselines():
    """Every result-changing option is a TrainOptions field whose default is its baseline, so a
    run at the defaults has the key of its params and the budget it ran."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    assert set(RESULT_OPTIONS) <= set(defaults)
    assert {name: defaults[name] for name in RESULT_OPTIONS} == RESULT_OPTIONS
    # and what does not change a run's result is not part of it
    assert not {"device", "threads", "eval_every", "divergence_factor"} & set(RESULT_OPTIONS)


def test_the_key_is_pinned():
    """Stored keys must never change: this value is the key of these inputs, forever."""
    options = {"budget": 500, "schedule": "cosine", "warmup": 10, "device": "cpu"}
    assert config_key(PARAMS, options) == {
        "params": PARAMS, "training": {"budget": 500, "schedule": "cosine", "warmup": 10}}
    assert config_hash(PARAMS, options) == "a564122f8c3044f7"
    assert config_hash(PARAMS, None) == config_hash(PARAMS, {}) == "d84214da9fb47f23"


def test_what_changes_the_key_and_what_does_not():
    used = {**dataclasses.asdict(TrainOptions()), "budget": 100}
    base = config_hash(PARAMS, used)
    assert config_hash({"beta1": 0.9, "lr": 1e-3}, used) == base  # key order
    for same in ({"device": "cuda"}, {"threads": 4}, {"eval_every": 7}, {"gamma": 0.5},
                 {"step_size": 3}, {"plateau_patience": 9}, {"min_delta": 0.1},
                 {"divergence_factor": 10.0}):
        assert config_hash(PARAMS, {**used, **same}) == base, same  # no effect on the result
    for other in ({"budget": 200}, {"schedule": "cosine"}, {"warmup": 5}, {"clip_norm": 1.0},
                  {"accumulate": 2}, {"patience": 3}, {"batch_size": 32},
                  {"schedule": "step", "gamma": 0.5}):
        assert config_hash(PARAMS, {**used, **other}) != base, other
    # options a schedule reads only matter under it
    step = {**used, "schedule": "step"}
    assert config_hash(PARAMS, {**step, "gamma": 0.5}) != config_hash(PARAMS, step)
    early = {**used, "patience": 3}
    assert config_hash(PARAMS, {**early, "min_delta": 0.1}) != config_hash(PARAMS, early)
    assert config_hash({**PARAMS, "lr": 2e-3}, used) != base
    assert config_hash(PARAMS, None) != base  # "not recorded" is its own key


def test_options_added_later_change_only_the_keys_of_runs_that_set_them():
    used = {"budget": 100, "schedule": "cosine"}
    base = config_hash(PARAMS, used)
    assert config_hash(PARAMS, {**used, "precision": "float32", "decay_exclude": False,
                                "floor": 0.0}) == base
    assert config_hash(PARAMS, {**used, "precision": "bf16"}) != base
    assert config_hash(PARAMS, {**used, "decay_exclude": True}) != base
    assert config_hash(PARAMS, {**used, "floor": 0.1}) != base
    # the floor of a schedule that has none changes nothing
    constant = {"budget": 100}
    assert config_hash(PARAMS, {**constant, "floor": 0.1}) == config_hash(PARAMS, constant)


def test_training_options_fill_in_the_baselines():
    assert training_options(None) is None and training_options({}) is None
    assert training_options({"budget": 100, "device": "cpu"}) == {**RESULT_OPTIONS, "budget": 100}


def _frozen_copy():
    path = migrations_directory() / "versions" / "0006_task_records_config_key.py"
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_computes_the_same_keys():
    """0006 carries a frozen copy of config_hash to fill in older runs: the two agree on every
    run it could have seen (options added later have baselines, which leave keys unchanged)."""
    frozen = _frozen_copy()
    assert frozen._RESULT_OPTIONS.items() <= RESULT_OPTIONS.items()
    rng = random.Random(6)
    choices = {
        "budget": [None, 50, 100], "schedule": ["constant", "cosine", "step", "plateau"],
        "warmup": [0, 5], "step_size": [None, 10], "gamma": [0.1, 0.5],
        "plateau_patience": [2, 4], "clip_norm": [None, 1.0], "accumulate": [1, 2],
        "patience": [None, 3], "min_delta": [0.0, 0.01], "batch_size": [None, 16],
        "device": ["cpu", "cuda"],
    }
    for _ in range(300):
        options = {k: rng.choice(v) for k, v in choices.items() if rng.random() < 0.7}
        params = {"lr": rng.choice([1e-3, 0.1]), "nesterov": rng.choice([True, False])}
        recorded = options if rng.random() < 0.9 else None
        assert frozen._config_hash(params, recorded) == config_hash(params, recorded)


@pytest.mark.parametrize("options", [{"budget": 100, "schedule": "cosine"}, {}])
def test_record_run_stores_both_keys(database_url, options):
    store = open_store(database_url)
    result = RunResult(task="quadratic", optimizer="adam", params=PARAMS, seed=0,
                       status="complete", final_metric=0.1, best_metric=0.1, options=options,
                       param_count=10, optimizer_state_bytes=80)
    run_id = record_run(store, None, result)
    with store.session() as session:
        run = session.scalars(select(Run).where(Run.id == run_id)).one()
    store.dispose()
    assert run.params_hash == params_hash(PARAMS)
    assert run.config_hash == config_hash(PARAMS, options or None)
    assert run.param_bytes == 40  # four bytes per parameter until training measures them
