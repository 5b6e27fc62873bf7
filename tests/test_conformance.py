"""The conformance kit (tuner.testing) run over every registered optimizer, built-in or not.

The names are read from the registry when the tests are collected, so an optimizer plugin joins
as soon as it is installed; each wrapper (lookahead-...) is checked around SGD with momentum.
Per-optimizer convergence bounds live with each plugin's own tests; here every optimizer must
at least lower the quadratic from its start at its default values.
"""

from __future__ import annotations

import math

import pytest

from tuner import testing
from tuner.plugin.registry import get_registry


def _names() -> list[str]:
    registry = get_registry()
    names = sorted(registry.optimizers)
    if "momentum" in registry.optimizers:
        names += [f"{wrapper}-momentum" for wrapper in sorted(registry.wrappers)]
    return names


NAMES = _names()


@pytest.mark.parametrize("name", NAMES)
def test_lowers_the_quadratic(name):
    final = testing.lowers_quadratic(get_registry().optimizer(name))
    assert math.isfinite(final)
    assert final < testing.QUADRATIC_START_VALUE


@pytest.mark.parametrize("name", NAMES)
def test_measured_state_matches_the_declared_multiple(name):
    plugin = get_registry().optimizer(name)
    declared = testing.declared_state_multiple(plugin)
    assert testing.measured_state_multiple(plugin) == pytest.approx(declared)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_roundtrip_is_bit_identical(name):
    assert testing.state_dict_roundtrip(get_registry().optimizer(name)) == 0.0


def _eval_mode_names() -> list[str]:
    """The optimizers whose optimizer object defines eval()/train(), and Lookahead around
    Schedule-Free (the wrapper must forward the switch)."""
    registry = get_registry()
    names = [name for name in NAMES if testing.defines_eval_mode(registry.optimizer(name))]
    if "schedulefree-adamw" in registry.optimizers and "lookahead" in registry.wrappers:
        names.append("lookahead-schedulefree-adamw")
    return names


EVAL_MODE_NAMES = _eval_mode_names()
EVALUATION_WEIGHTS = {"schedulefree-adamw": {}, "lookahead-schedulefree-adamw": {},
                      "asgd": {"t0": 1}}
"""The optimizers with evaluation weights, and values at which the weights differ after the
check's steps (ASGD averages only after t0 steps)."""
RESTORE_TOLERANCE = 1e-5  # Schedule-Free interpolates there and back: float32 rounding
SWITCH_STEPS = 5  # ASGD at t0 1 averages from its fourth step


def test_the_eval_mode_checks_cover_the_optimizers_with_evaluation_weights():
    assert set(EVALUATION_WEIGHTS) <= set(EVAL_MODE_NAMES)
    assert not testing.defines_eval_mode(get_registry().optimizer("adamw"))


@pytest.mark.parametrize("name", EVAL_MODE_NAMES)
def test_eval_then_train_restores_the_parameters(name):
    plugin = get_registry().optimizer(name)
    values = EVALUATION_WEIGHTS.get(name)
    shift = testing.eval_weights_shift(plugin, values, steps=SWITCH_STEPS)
    if name in EVALUATION_WEIGHTS:
        # eval() really puts other weights in place (Schedule-Free's averaged x, not y), far
        # enough from the training weights that a missing restore could not pass below ...
        assert shift > 10 * RESTORE_TOLERANCE
    else:  # ... and a wrapper around an optimizer without them leaves the weights alone
        assert shift == 0.0
    # ... and train() puts the training weights back.
    assert testing.eval_train_switch(plugin, values, steps=SWITCH_STEPS) <= RESTORE_TOLERANCE
