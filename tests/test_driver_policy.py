"""The driver's rules as pure functions: no database, no Optuna, no torch."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from tuner.driver.policy import (
    SlotAttempt,
    choices_left_out,
    choices_to_spread,
    free_slots,
    outcome_after,
    pinned_choices,
    plan_slot,
    settled,
)
from tuner.plugin.space import Categorical, Float, SearchSpace
from tuner.store.studies import MAX_ATTEMPTS, MAX_FAILED_ATTEMPTS, slot_given_up
from tuner.study.spec import StudySpec


def spec(**changes) -> StudySpec:
    values = dict(name="s", task="quadratic", optimizers=["adam", "sgd"], trials=3, seeds=2)
    values.update(changes)
    return StudySpec(**values)


def test_outcomes_seed_by_seed():
    assert outcome_after("complete", 0.5, [], last=False) is None
    assert outcome_after("complete", 0.5, [0.7], last=True) == ("complete", pytest.approx(0.6))
    assert outcome_after("diverged", None, [0.7], last=False) == ("diverged", 0.7)
    assert outcome_after("pruned", 0.1, [], last=False) == ("pruned", None)
    assert outcome_after("failed", None, [0.2, 0.4], last=True) == ("failed", 0.30000000000000004)
    # a "complete" run whose metric is not finite is a divergence, not a result
    assert outcome_after("complete", math.nan, [0.7], last=True) == ("diverged", None)
    assert outcome_after("complete", None, [], last=False) == ("diverged", None)


def test_free_slots_advance_every_optimizer_at_the_same_pace():
    attempts = [SlotAttempt("adam", 0, "complete", {}), SlotAttempt("adam", 1, "running", {}),
                SlotAttempt("sgd", 0, "failed", {})]
    assert free_slots(spec(), attempts, Counter()) == [
        ("sgd", 0), ("sgd", 1), ("adam", 2), ("sgd", 2)
    ]


def test_a_slot_is_given_up_after_too_many_failures_or_attempts():
    assert not slot_given_up(MAX_ATTEMPTS - 1, MAX_FAILED_ATTEMPTS - 1)
    assert slot_given_up(MAX_ATTEMPTS, 0) and slot_given_up(1, MAX_FAILED_ATTEMPTS)
    one = spec(optimizers=["adam"], trials=1)
    failed = [SlotAttempt("adam", 0, "failed", {"lr": 1.0})] * MAX_FAILED_ATTEMPTS
    assert free_slots(one, failed, Counter()) == [("adam", 0)]  # reaped, not failed runs
    runs_failed = Counter({("adam", 0): MAX_FAILED_ATTEMPTS})
    assert free_slots(one, failed, runs_failed) == []
    assert settled(one, failed, runs_failed)
    assert not settled(one, failed, Counter())


def test_a_slot_trains_its_initial_configuration_its_retry_or_its_own_draw():
    study = spec(initial_configs={"adam": [
        {"params": {"lr": 0.1}, "origin": "warm_start"},
        {"params": {"lr": 0.001}, "origin": "recommended"},
    ]}, sampler="tpe")
    assert plan_slot(study, "adam", 0, []).params == {"lr": 0.1}
    assert plan_slot(study, "adam", 1, []).origin == "recommended"
    assert plan_slot(study, "adam", 2, []).params is None  # drawn for slot 2 alone
    earlier = [SlotAttempt("adam", 2, "failed", {"lr": 0.02})]
    retry = plan_slot(study, "adam", 2, earlier)
    assert retry.params == {"lr": 0.02} and retry.origin == "sampled"
    grid = spec(sampler="grid", initial_configs={"sgd": [{"params": {}, "origin": "recommended"}]})
    assert plan_slot(grid, "sgd", 2, [], grid=lambda i: {"lr": i}).params == {"lr": 1}


def test_attempts_made_before_a_slot_was_reopened_do_not_give_it_up():
    """A reopened slot (``--retry-given-up``) is free again although its failed attempts stay;
    the attempts after the reopening count as before."""
    one = spec(optimizers=["adam"], trials=1)
    before = [SlotAttempt("adam", 0, "failed", {"lr": 1.0}, counted=False)]
    before *= MAX_FAILED_ATTEMPTS
    assert free_slots(one, before, Counter()) == [("adam", 0)]
    assert not settled(one, before, Counter())
    after = [SlotAttempt("adam", 0, "failed", {"lr": 1.0})] * MAX_FAILED_ATTEMPTS
    again = Counter({("adam", 0): MAX_FAILED_ATTEMPTS})
    assert free_slots(one, before + after, again) == []
    assert settled(one, before + after, again)
    # the retry trains what the failed attempts trained
    assert plan_slot(one, "adam", 0, before).params == {"lr": 1.0}


def test_the_first_sampled_slots_try_every_categorical_choice():
    """Slot 0 is the recommended configuration (schedule constant, centered False); slots 1 and
    2 are pinned to the untried choices in declared order, slot 3 is drawn freely."""
    choices = choices_to_spread(SearchSpace([
        Float("lr", 1e-4, 1.0, default=1e-2, log=True),
        Categorical("centered", (False, True), default=False),
        Float("momentum", 0.0, 0.9, default=0.0),
        Categorical("nesterov", (False, True), default=False, when=("momentum", ">", 0)),
        Categorical("schedule", ("constant", "cosine", "linear"), default="constant"),
        Categorical("precision", ("float32",), default="float32"),
    ]))
    assert choices == {"centered": (False, True), "schedule": ("constant", "cosine", "linear")}
    initial = [{"params": {"lr": 1e-2, "centered": False, "schedule": "constant"},
                "origin": "recommended"}]
    study = spec(optimizers=["adam"], trials=4, initial_configs={"adam": initial})
    plans = [plan_slot(study, "adam", slot, [], choices=choices) for slot in range(4)]
    assert plans[0].params == initial[0]["params"]
    assert [p.pinned for p in plans[1:]] == [
        {"centered": True, "schedule": "cosine"}, {"schedule": "linear"}, {}]
    assert all(p.params is None for p in plans[1:])  # the rest is drawn by the sampler
    tried = {"centered": set(), "schedule": set()}
    for plan in plans[:3]:
        for name, value in {**(plan.params or {}), **plan.pinned}.items():
            if name in tried:
                tried[name].add(value)
    assert {name: set(values) for name, values in choices.items()} == tried
    # a retry keeps what its slot trained; a warm start that takes a choice counts as tried
    failed = [SlotAttempt("adam", 1, "failed", {"lr": 0.3, "schedule": "linear"})]
    assert plan_slot(study, "adam", 1, failed, choices=choices).pinned == {}
    warm = [{"params": {"schedule": "cosine"}, "origin": "warm_start"}, *initial]
    assert pinned_choices(choices, warm, 2) == {"centered": True, "schedule": "linear"}


def test_too_few_trials_leave_choices_untried():
    initial = [{"params": {"schedule": "constant"}, "origin": "recommended"}]
    choices = {"schedule": ("constant", "cosine", "linear")}
    assert choices_left_out(choices, initial, 1) == {"schedule": ["cosine", "linear"]}
    assert choices_left_out(choices, initial, 2) == {"schedule": ["linear"]}
    assert choices_left_out(choices, initial, 3) == {}
    warm = [{"params": {"schedule": "linear"}, "origin": "warm_start"}, *initial]
    assert choices_left_out(choices, warm, 1) == {"schedule": ["constant", "cosine"]}
    assert choices_left_out(choices, warm, 3) == {}


def test_added_trials_and_seed_slots_are_slots_like_the_others():
    """adam has two trials more than the base 3 and one seed slot: its slots 3 and 4 come
    after the slots both optimizers share, its seed slot -1 after every trial slot; the study
    is settled only once the seed slot is finished too."""
    seeded = {"params": {"lr": 0.1}, "seeds": [2, 3], "config_hash": "abc"}
    study = spec(extra_trials={"adam": 2}, seed_slots={"adam": [seeded]})
    assert study.trials_for("adam") == 5 and study.trials_for("sgd") == 3
    assert study.slots("adam") == [0, 1, 2, 3, 4, -1]
    assert study.slot_seeds("adam", -1) == [2, 3] and study.slot_seeds("adam", 4) == [0, 1]
    assert free_slots(study, [], Counter()) == [
        ("adam", 0), ("sgd", 0), ("adam", 1), ("sgd", 1), ("adam", 2), ("sgd", 2),
        ("adam", 3), ("adam", 4), ("adam", -1),
    ]
    assert free_slots(study, [], Counter(), only="adam", trial_slots_only=True) == [
        ("adam", s) for s in range(5)]
    plan = plan_slot(study, "adam", -1, [])
    assert (plan.params, plan.origin) == ({"lr": 0.1}, "more_seeds")
    trials_done = [SlotAttempt(o, s, "complete", {}) for o in ("adam", "sgd")
                   for s in range(study.trials_for(o))]
    assert not settled(study, trials_done, Counter())
    assert settled(study, [*trials_done, SlotAttempt("adam", -1, "complete", {})], Counter())
    # chosen training seeds: every trial slot trains on them
    assert spec(first_seed=10, seeds=2).slot_seeds("sgd", 0) == [10, 11]
