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
from tuner.plugins import get_registry


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
    assert testing.measured_state_multiple(plugin) == pytest.approx(plugin.state_multiple)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_roundtrip_is_bit_identical(name):
    assert testing.state_dict_roundtrip(get_registry().optimizer(name)) == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_eval_then_train_restores_the_parameters(name):
    # Schedule-Free interpolates there and back: allow float32 rounding, nothing more.
    assert testing.eval_train_switch(get_registry().optimizer(name)) <= 1e-5
