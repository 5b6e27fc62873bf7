"""Line searches along a direction: strong Wolfe (BFGS, DFP, conjugate gradient) and
backtracking (Newton).

Both see only the one-dimensional function ``phi(step) = f(x + step * p)``, through a callable
the optimizer gives, and plain Python floats: the same code searches on torch tensors inside an
optimizer and on NumPy arrays in a reference implementation.

- :func:`strong_wolfe`: Nocedal & Wright, Numerical Optimization (2nd ed.), Algorithms 3.5 and
  3.6. Steps grow by doubling until the minimum is bracketed, then the bracket is zoomed by
  safeguarded cubic interpolation (equation 3.59; bisection when the cubic is unusable) until
  the sufficient-decrease and the strong curvature conditions hold::

      phi(step) <= phi(0) + c1 * step * phi'(0)        |phi'(step)| <= c2 * |phi'(0)|

- :func:`backtracking`: from the first trial step, shrink by safeguarded quadratic
  interpolation (the step is cut to between 0.1 and 0.5 of the last) until the
  sufficient-decrease condition holds (Nocedal & Wright, section 3.5). Values only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WOLFE_EVALUATIONS = 25
"""Evaluations one strong-Wolfe search may make before it settles for the best point so far."""
BACKTRACKING_EVALUATIONS = 40
"""Evaluations one backtracking search may make (each at most halves the step)."""


@dataclass
class LineSearchResult:
    """Where a line search stopped.

    Attributes:
        step: the accepted step (0.0: no point along the direction was accepted).
        value: ``phi(step)``.
        slope: ``phi'(step)`` (NaN for backtracking, which never takes one).
        evaluations: how many times ``phi`` was called.
        converged: the search's conditions hold at ``step`` (else it ran out of evaluations or
            of room, and ``step`` is the lowest sufficient-decrease point it found).
        extra: what ``phi`` returned beside value and slope at ``step`` (the optimizer's point
            and gradient there), None for step 0.
    """

    step: float
    value: float
    slope: float
    evaluations: int
    converged: bool
    extra: Any = None


@dataclass
class _Point:
    step: float
    value: float
    slope: float
    extra: Any = None


def _cubic_minimum(a: _Point, b: _Point) -> float | None:
    """The minimiser of the cubic through two points' values and slopes (N&W 3.59), or None
    where it does not exist or is not finite."""
    if a.step == b.step:
        return None
    d1 = a.slope + b.slope - 3.0 * (a.value - b.value) / (a.step - b.step)
    square = d1 * d1 - a.slope * b.slope
    if not math.isfinite(square) or square < 0.0:
        return None
    d2 = math.copysign(math.sqrt(square), b.step - a.step)
    denominator = b.slope - a.slope + 2.0 * d2
    if denominator == 0.0:
        return None
    step = b.step - (b.step - a.step) * (b.slope + d2 - d1) / denominator
    return step if math.isfinite(step) else None


def _zoom_step(low: _Point, high: _Point) -> float:
    """A trial step inside the bracket: the cubic's minimiser when it lies well inside (at
    least a tenth of the bracket from either end), else the midpoint."""
    left, right = sorted((low.step, high.step))
    margin = 0.1 * (right - left)
    usable = math.isfinite(high.value) and math.isfinite(high.slope)
    step = _cubic_minimum(low, high) if usable else None
    if step is None or not left + margin <= step <= right - margin:
        return 0.5 * (left + right)
    return step


def strong_wolfe(
    phi: Callable[[float], tuple[float, float, Any]],
    value0: float,
    slope0: float,
    step: float = 1.0,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evaluations: int = WOLFE_EVALUATIONS,
) -> LineSearchResult:
    """Search for a step that satisfies the strong Wolfe conditions.

    Args:
        phi: ``phi(step) -> (value, slope, extra)``: the function and its derivative along the
            direction at ``step``, and anything the caller wants back for the accepted step.
        value0: ``phi(0)``.
        slope0: ``phi'(0)``; must be negative (a descent direction).
        step: the first trial step (1 for a quasi-Newton direction).
        c1: the sufficient-decrease constant, 0 < c1 < c2.
        c2: the curvature constant, c1 < c2 < 1 (0.9 for quasi-Newton, 0.1-0.4 for CG).
        max_evaluations: the most calls of ``phi``.

    Returns:
        A :class:`LineSearchResult`; ``step`` 0 when no point with sufficient decrease was
        found.
    """
    if not slope0 < 0.0:
        return LineSearchResult(0.0, value0, slope0, 0, False)
    origin = _Point(0.0, value0, slope0)
    previous = origin
    evaluations = 0

    def sufficient(point: _Point) -> bool:
        return math.isfinite(point.value) and point.value <= value0 + c1 * point.step * slope0

    def curvature(point: _Point) -> bool:
        return abs(point.slope) <= -c2 * slope0

    def evaluate(at: float) -> _Point:
        nonlocal evaluations
        value, slope, extra = phi(at)
        evaluations += 1
        return _Point(at, float(value), float(slope), extra)

    def result(point: _Point, converged: bool) -> LineSearchResult:
        return LineSearchResult(point.step, point.value, point.slope, evaluations, converged,
                                point.extra)

    def zoom(low: _Point, high: _Point) -> LineSearchResult:
        # low: the lowest point with sufficient decrease so far; high: the other end.
        while evaluations < max_evaluations:
            if abs(high.step - low.step) <= 1e-14 * max(1.0, abs(low.step), abs(high.step)):
                break
            trial = evaluate(_zoom_step(low, high))
            if not sufficient(trial) or trial.value >= low.value:
                high = trial
                continue
            if curvature(trial):
                return result(trial, True)
            if trial.slope * (high.step - low.step) >= 0.0:
                high = low
            low = trial
        return result(low, False)

    current = evaluate(step)
    while True:
        if not sufficient(current) or (previous is not origin and current.value >= previous.value):
            return zoom(previous, current)
        if curvature(current):
            return result(current, True)
        if current.slope >= 0.0:
            return zoom(current, previous)
        if evaluations >= max_evaluations:
            return result(current, False)
        previous, current = current, evaluate(2.0 * current.step)


def backtracking(
    value_at: Callable[[float], float],
    value0: float,
    slope0: float,
    step: float = 1.0,
    c1: float = 1e-4,
    max_evaluations: int = BACKTRACKING_EVALUATIONS,
    min_step: float = 0.0,
) -> LineSearchResult:
    """Shrink the step until the sufficient-decrease (Armijo) condition holds.

    Each new trial step minimises the quadratic through ``phi(0)``, ``phi'(0)`` and the last
    trial's value, kept between 0.1 and 0.5 times the last step.

    Args:
        value_at: ``value_at(step) -> phi(step)``.
        value0: ``phi(0)``.
        slope0: ``phi'(0)``; must be negative.
        step: the first trial step (1 for the Newton step).
        c1: the sufficient-decrease constant.
        max_evaluations: the most calls of ``value_at``.
        min_step: give up once the step falls below this (it no longer moves the point).

    Returns:
        A :class:`LineSearchResult` (``slope`` NaN); ``step`` 0 when no step was accepted.
    """
    if not slope0 < 0.0:
        return LineSearchResult(0.0, value0, math.nan, 0, False)
    evaluation = 0
    while evaluation < max_evaluations and step >= min_step:
        evaluation += 1
        value = float(value_at(step))
        if math.isfinite(value) and value <= value0 + c1 * step * slope0:
            return LineSearchResult(step, value, math.nan, evaluation, True)
        shrunk = 0.5 * step
        if math.isfinite(value):
            curvature = value - value0 - slope0 * step
            if curvature > 0.0:
                shrunk = -slope0 * step * step / (2.0 * curvature)
        step = min(max(shrunk, 0.1 * step), 0.5 * step)
    return LineSearchResult(0.0, value0, math.nan, evaluation, False)
