"""Learning rates across model sizes: each optimizer's best lr against the model's width, fitted
as a power law, and the lr it predicts for a width nobody measured (``tuner advise --width``).

A task's parameters are part of its identity in the store: ``charlm[width=1024]`` is charlm
built 1024 wide, and the plain ``charlm`` is charlm at its declared default width. Its task
record keeps every parameter's value, defaults included (``params``: ``{"width": 256}``). The
*sweep* of a task is the set of records with the same base name (``charlm``) and a recorded
``width`` whose other parameters are all equal (those of the record named, or the only ones
there are): a sweep over width with everything else held still. Records from before the store
kept parameters (``params`` None) carry no width and take no part.

For each width of the sweep, an optimizer's best lr is the lr of its best configuration in the
ranking ``tuner best`` prints for that task (:func:`tuner.advice.ranking.rank_task`). With three
or more distinct widths, the fit is ordinary least squares in log-log space,

    log(lr) = a + b log(width),

and ``b`` is the *exponent*: -1 when the best lr halves each time the width doubles, 0 when
the width does not move it (what muP-style parameterisations aim for). The *residual* is the
root mean square of the fit's errors in natural-log space (0.1: the measured best lrs sit about
10% off the line). The predicted lr at a width ``w`` is ``exp(a + b log w)``, and its interval
is the fit's 90% *prediction interval* (5%..95%, the quantiles the rest of the advice reports),
the Student-t interval for a new observation at ``x0 = log w``:

    a + b x0 +- t(0.95, n - 2) * s * sqrt(1 + 1/n + (x0 - mean x)^2 / Sxx),

with ``s^2 = sum of squared errors / (n - 2)``, back in lr units. It widens with few widths
(``t(0.95, 1) = 6.31`` for three) and away from the measured ones, which is what extrapolating
should cost. (A bootstrap over the widths' points cannot serve here: with three points most
resamples repeat a width and leave the line undetermined or fitted exactly.) A width outside
``[narrowest, widest]`` measured is an *extrapolation*, reported with its factor (1024 beyond a
widest 256 is "4x beyond").

Only like is fitted with like: an optimizer's points are grouped by what its lr is
(:mod:`tuner.advice.lr_meaning`), and a fit of an lr that is not a plain step size names it
("prodigy's best lr (multiplier)"); an optimizer whose runs at one width recorded several
meanings gives no point there.

A pure read: neither torch, Optuna nor the plugins are imported, nor numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from tuner.advice.formatting import format_lr, join_names
from tuner.advice.lr_meaning import STEP_SIZE, is_mixed, named
from tuner.advice.source import NoRunsError, open_for_reading
from tuner.advice.stats import AdviceError

if TYPE_CHECKING:
    from tuner.store import Store, TaskRecord

WIDTH = "width"
"""The task parameter the sweep runs over."""
MIN_WIDTHS = 3
"""Distinct widths an optimizer needs before its power law is fitted (two fix a line exactly
and leave its error unknown)."""
INTERVAL = (0.05, 0.95)
"""The prediction interval's quantiles."""


class WidthSweepError(AdviceError):
    """The store's records of a task do not form one sweep over width."""


def task_base(name: str) -> str:
    """The task's base name: ``charlm`` for ``charlm[width=256]`` and for ``charlm``."""
    from tuner.task.params import TaskParamError, split_identity

    try:
        return split_identity(name)[0]
    except TaskParamError:
        return name


# -- the statistics (pure functions) -----------------------------------------------------------


def student_t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t with ``dof`` (an integer >= 1) degrees of
    freedom.

    Inverts the closed form of ``A(t | dof) = P(|T| <= t)`` in ``theta = atan(t / sqrt(dof))``
    (Abramowitz and Stegun 26.7.3 for odd, 26.7.4 for even dof), which rises monotonically
    from 0 to 1 as theta goes from 0 to pi/2, by bisection; the normal quantile beyond 1000
    dof, where the two agree to 1e-3.
    """
    if not 0 < probability < 1:
        raise ValueError(f"probability must lie in (0, 1), got {probability}")
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    if probability < 0.5:
        return -student_t_quantile(1 - probability, dof)
    if probability == 0.5:
        return 0.0
    if dof > 1000:
        return NormalDist().inv_cdf(probability)
    wanted = 2 * probability - 1
    low, high = 0.0, math.pi / 2
    for _ in range(200):
        middle = (low + high) / 2
        if _two_sided_mass(middle, dof) < wanted:
            low = middle
        else:
            high = middle
    return math.sqrt(dof) * math.tan((low + high) / 2)


def _two_sided_mass(theta: float, dof: int) -> float:
    """``P(|T| <= sqrt(dof) tan(theta))`` for Student's t with ``dof`` degrees of freedom."""
    sin, cos = math.sin(theta), math.cos(theta)
    if dof % 2:  # odd: (2/pi) (theta + sin * (cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ...))
        total, term = 0.0, cos
        for k in range(1, (dof - 1) // 2 + 1):
            total += term
            term *= cos * cos * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + sin * total)
    total, term = 0.0, 1.0  # even: sin * (1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ...)
    for k in range(1, dof // 2 + 1):
        total += term
        term *= cos * cos * (2 * k - 1) / (2 * k)
    return sin * total


@dataclass(frozen=True)
class PowerLaw:
    """``lr = exp(intercept) * width ** exponent``, fitted by least squares in log-log space.

    ``residual`` is the RMS of the log-space errors; ``points`` how many (width, lr) pairs the
    fit had; ``mean_log_width`` and ``log_width_spread`` (the sum of squared deviations of the
    log widths, Sxx) and ``error_scale`` (s: the square root of the squared errors over
    ``points - 2``) are what the prediction interval needs.
    """

    exponent: float
    intercept: float
    residual: float
    points: int
    mean_log_width: float
    log_width_spread: float
    error_scale: float

    def predict(self, width: float) -> float:
        """The lr the law gives at ``width``."""
        return math.exp(self.intercept + self.exponent * math.log(width))

    def interval(self, width: float) -> tuple[float, float]:
        """The 5%..95% prediction interval of the best lr at ``width`` (module docstring)."""
        x = math.log(width)
        centre = self.intercept + self.exponent * x
        spread = self.error_scale * math.sqrt(
            1 + 1 / self.points + (x - self.mean_log_width) ** 2 / self.log_width_spread
        )
        half = student_t_quantile(INTERVAL[1], self.points - 2) * spread
        return math.exp(centre - half), math.exp(centre + half)


def fit_power_law(widths: Sequence[float], lrs: Sequence[float]) -> PowerLaw:
    """Least squares of ``log(lr)`` on ``log(width)``; needs three or more distinct widths and
    positive values (:class:`AdviceError` otherwise)."""
    if len(widths) != len(lrs):
        raise AdviceError("widths and lrs differ in length")
    if any(not (w > 0 and math.isfinite(w)) for w in widths) or any(
        not (lr > 0 and math.isfinite(lr)) for lr in lrs
    ):
        raise AdviceError("widths and learning rates must be positive numbers")
    if len(set(widths)) < MIN_WIDTHS:
        raise AdviceError(f"a power-law fit needs {MIN_WIDTHS} or more distinct widths, "
                          f"got {len(set(widths))}")
    xs = [math.log(w) for w in widths]
    ys = [math.log(lr) for lr in lrs]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    exponent = sxy / sxx
    intercept = mean_y - exponent * mean_x
    squares = sum((y - intercept - exponent * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return PowerLaw(
        exponent=exponent, intercept=intercept, residual=math.sqrt(squares / n), points=n,
        mean_log_width=mean_x, log_width_spread=sxx, error_scale=math.sqrt(squares / (n - 2)),
    )


def extrapolation(width: float, measured: Sequence[float]) -> tuple[str | None, float | None]:
    """``("beyond", 4.0)`` for a width 4x the widest measured, ``("below", 2.0)`` for half the
    narrowest, ``(None, None)`` inside ``[narrowest, widest]``."""
    if width > max(measured):
        return "beyond", width / max(measured)
    if width < min(measured):
        return "below", min(measured) / width
    return None, None


# -- the advice --------------------------------------------------------------------------------


@dataclass
class WidthPoint:
    """One optimizer's best configuration at one width: the task it was measured as, its lr
    and its mean result."""

    width: float
    task: str
    lr: float
    mean: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "task": self.task, "lr": self.lr, "mean": self.mean}


@dataclass
class WidthFit:
    """One optimizer's best lr against width, and what it says at the asked ``width``.

    ``points`` (narrowest first) are its best configurations at each measured width. With
    :data:`MIN_WIDTHS` or more, ``law`` is the fitted power law and ``predicted_lr`` with
    ``low``..``high`` its prediction at ``width``; ``extrapolated`` is ``beyond`` or ``below``
    when ``width`` lies outside the measured widths, by ``factor``. With fewer, ``law`` and the
    prediction are None and ``more_widths`` says how many more widths it needs. ``lr_meaning``
    is what every point's lr is.
    """

    optimizer: str
    width: float
    points: list[WidthPoint]
    law: PowerLaw | None = None
    predicted_lr: float | None = None
    low: float | None = None
    high: float | None = None
    extrapolated: str | None = None
    factor: float | None = None
    lr_meaning: str = STEP_SIZE

    @property
    def widths(self) -> list[float]:
        return [point.width for point in self.points]

    @property
    def more_widths(self) -> int:
        return max(0, MIN_WIDTHS - len(self.points))

    @property
    def exponent(self) -> float | None:
        return self.law.exponent if self.law is not None else None

    @property
    def residual(self) -> float | None:
        return self.law.residual if self.law is not None else None

    def sentence(self) -> str:
        """``at width 1024, adamw's best lr is about 3.1e-4 (2e-4-4.6e-4), extrapolated 4x
        beyond the widest measured model (256)``, or why there is no fit."""
        widths = join_names([_width(w) for w in self.widths])
        if self.law is None or self.predicted_lr is None:
            more = self.more_widths
            where = f"measured at width{'s' if len(self.points) != 1 else ''} {widths} only"
            if not self.points:
                where = "not measured at any width"
            return (f"{self.optimizer}{named(self.lr_meaning)} has too few widths for a fit "
                    f"({where}; it needs "
                    f"{MIN_WIDTHS} distinct widths: measure {more} more)")
        text = (f"at width {_width(self.width)}, {self.optimizer}'s best lr"
                f"{named(self.lr_meaning)} is about {format_lr(self.predicted_lr)}")
        if self.low is not None and self.high is not None and math.isclose(
            self.low, self.high, rel_tol=1e-9
        ):
            text += " (the measured lrs lie exactly on the line: no spread to size an interval)"
        else:
            text += f" ({format_lr(self.low)}-{format_lr(self.high)})"
        if self.extrapolated == "beyond":
            text += (f", extrapolated {_factor(self.factor)} beyond the widest measured model "
                     f"({_width(max(self.widths))})")
        elif self.extrapolated == "below":
            text += (f", extrapolated {_factor(self.factor)} below the narrowest measured model "
                     f"({_width(min(self.widths))})")
        else:
            text += f", within the measured widths ({widths})"
        return text + f"; lr ~ width^{round(self.law.exponent, 2) + 0.0:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer, "lr_meaning": self.lr_meaning, "width": self.width,
            "widths": self.widths, "points": [point.to_dict() for point in self.points],
            "exponent": self.exponent, "residual": self.residual,
            "intercept": self.law.intercept if self.law is not None else None,
            "predicted_lr": self.predicted_lr,
            "interval": [self.low, self.high] if self.low is not None else None,
            "extrapolated": self.extrapolated, "factor": self.factor,
            "more_widths": self.more_widths, "sentence": self.sentence(),
        }


@dataclass
class WidthAdvice:
    """Every optimizer's best lr across the widths of a task's sweep (``tuner advise --width``).

    ``task`` is the base name, ``width`` the asked one; ``tasks`` maps each measured task of the
    sweep to its width, narrowest first; ``unmeasured`` names the sweep's tasks recorded but
    without runs; ``fixed`` the other parameters the sweep holds still. ``fits`` is one per
    optimizer measured at any width, by name.
    """

    task: str
    width: float
    db: str
    tasks: dict[str, float]
    fits: list[WidthFit]
    unmeasured: list[str] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """One sentence per optimizer, fitted ones first."""
        fitted = [fit for fit in self.fits if fit.law is not None]
        unfitted = [fit for fit in self.fits if fit.law is None]
        lines = [f"On {self.task}, {fit.sentence()}." for fit in fitted]
        lines += [f"On {self.task}, {fit.sentence()}." for fit in unfitted]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "width": self.width, "db": self.db,
            "tasks": [{"task": name, "width": width} for name, width in self.tasks.items()],
            "unmeasured": self.unmeasured, "fixed": self.fixed,
            "interval": list(INTERVAL), "min_widths": MIN_WIDTHS,
            "optimizers": [fit.to_dict() for fit in self.fits], "advice": self.text,
        }


def lr_across_widths(task: str, width: float, db: str | Store | None = None) -> WidthAdvice:
    """Each optimizer's best lr on the width sweep of ``task``, its power law and its prediction
    at ``width`` (see the module docstring).

    ``task`` is a base name (``charlm``) or one task of the sweep (``charlm[width=256]``, or
    ``charlm[depth=4]`` to pick the sweep at depth 4). Raises :class:`NoRunsError` when the
    store has no record of the task with a width, :class:`WidthSweepError` when its records
    differ in other parameters too and the name does not say which to hold still.
    """
    from tuner.advice.ranking import rank_task
    from tuner.store import list_tasks

    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise AdviceError(f"width must be a positive number, got {width!r}")
    store, opened = open_for_reading(db)
    try:
        sweep, fixed = _sweep(list_tasks(store), task, store.display_url)
        points: dict[tuple[str, str], list[WidthPoint]] = {}
        measured: dict[str, float] = {}
        unmeasured: list[str] = []
        for record, at in sweep:
            try:
                ranking = rank_task(record.name, db=store)
            except NoRunsError:
                unmeasured.append(record.name)
                continue
            measured[record.name] = at
            for standing in ranking.optimizers:
                if (standing.mean is None or standing.lr is None or not standing.lr > 0
                        or is_mixed(standing.lr_meaning)):
                    continue
                points.setdefault((standing.optimizer, standing.lr_meaning), []).append(
                    WidthPoint(at, record.name, standing.lr, standing.mean))
        display = store.display_url
    finally:
        if opened:
            store.dispose()
    if not measured:
        raise NoRunsError(
            f"no runs of {task_base(task)} at any width in {display} (recorded: "
            f"{', '.join(unmeasured)}); run a study first")
    fits = [_fit(optimizer, found, width, meaning)
            for (optimizer, meaning), found in sorted(points.items())]
    return WidthAdvice(task=task_base(task), width=width, db=display, tasks=measured,
                       fits=fits, unmeasured=unmeasured, fixed=fixed)


def _fit(optimizer: str, points: list[WidthPoint], width: float, lr_meaning: str) -> WidthFit:
    points = sorted(points, key=lambda point: (point.width, point.task))
    found = WidthFit(optimizer=optimizer, width=width, points=points, lr_meaning=lr_meaning)
    if len({point.width for point in points}) < MIN_WIDTHS:
        return found
    law = fit_power_law([p.width for p in points], [p.lr for p in points])
    found.law = law
    found.predicted_lr = law.predict(width)
    found.low, found.high = law.interval(width)
    found.extrapolated, found.factor = extrapolation(width, found.widths)
    return found


def _sweep(
    records: Sequence[TaskRecord], task: str, display: str
) -> tuple[list[tuple[TaskRecord, float]], dict[str, Any]]:
    """The records of ``task``'s width sweep with their widths (narrowest first), and the other
    parameters they share."""
    base = task_base(task)
    family = [record for record in records if task_base(record.name) == base]
    if not family:
        raise NoRunsError(f"no task {base!r} in {display}; run a study first")
    with_width = [(record, _width_of(record.params)) for record in family]
    with_width = [(record, at) for record, at in with_width if at is not None]
    if not with_width:
        raise NoRunsError(
            f"no record of {base!r} in {display} has a width (recorded: "
            f"{', '.join(record.name for record in family)}); run one study per width "
            "(a width sweep)")
    named = next((record for record, _ in with_width if record.name == task), None)
    if named is not None:
        fixed = _others(named.params)
    else:
        asked = _others(task_overrides(task))
        groups: dict[str, dict[str, Any]] = {}
        for record, _ in with_width:
            others = _others(record.params)
            if all(_as_written(others.get(key)) == value for key, value in asked.items()):
                groups.setdefault(repr(sorted(others.items())), others)
        if not groups:
            raise NoRunsError(
                f"no record of {base!r} in {display} has a width and {_settings(asked)} "
                f"(recorded: {', '.join(record.name for record in family)})")
        if len(groups) > 1:
            varying = sorted({key for others in groups.values() for key in others
                              if len({repr(o.get(key)) for o in groups.values()}) > 1})
            raise WidthSweepError(
                f"the records of {base!r} with a width differ in {', '.join(varying)} too; "
                f"say which to hold still with --task {base}[{varying[0]}=...] (recorded: "
                f"{', '.join(record.name for record, _ in with_width)})")
        fixed = next(iter(groups.values()))
    sweep = [(record, at) for record, at in with_width if _others(record.params) == fixed]
    return sorted(sweep, key=lambda pair: (pair[1], pair[0].name)), fixed


def task_overrides(name: str) -> dict[str, str]:
    """The parameters a task's name sets, as written: ``{"width": "256"}`` for
    ``charlm[width=256]``, ``{}`` for ``charlm``."""
    from tuner.task.params import TaskParamError, split_identity

    try:
        return split_identity(name)[1]
    except TaskParamError:
        raise AdviceError(f"cannot read task name {name!r}: write base[key=value,...]") \
            from None


def _as_written(value: Any) -> str:
    """A parameter's value as a task's name writes it (``true``, ``0.5``, ``256``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _settings(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(values.items()))


def _width_of(params: Mapping[str, Any] | None) -> float | None:
    value = (params or {}).get(WIDTH)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _others(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (params or {}).items() if key != WIDTH}


def _width(value: float) -> str:
    return f"{value:g}"


def _factor(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}x" if value < 100 else f"{value:.0f}x"
