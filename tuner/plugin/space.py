"""Search spaces: the typed hyperparameters an optimizer plugin declares, and their Optuna form.

A space is an ordered list of parameters. Each has a range (or choices), a default, and where the
literature gives one a ``recommended`` value (a study trains it first, after any warm-start
configurations). A parameter can be conditional:
``Categorical("nesterov", (False, True), False, when=("momentum", ">", 0))`` is only sampled, and
only passed to the optimizer, when the earlier parameter ``momentum`` is > 0; a value given for
it while the condition does not hold is an error, not silently dropped.

Nothing here imports optuna until an Optuna object is asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from tuner.errors import TunerError

_OPERATORS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class SpaceError(TunerError, ValueError):
    """An invalid search space or hyperparameter value; the message names plugin and parameter."""


@dataclass(frozen=True)
class When:
    """A condition on an earlier parameter: ``When("momentum", ">", 0)``."""

    param: str
    op: str
    value: Any

    def holds(self, values: Mapping[str, Any]) -> bool:
        return self.param in values and _OPERATORS[self.op](values[self.param], self.value)

    def __str__(self) -> str:
        return f"{self.param} {self.op} {self.value!r}"


def _as_when(when: When | tuple | None) -> When | None:
    return When(*when) if isinstance(when, tuple) else when


@dataclass(frozen=True)
class Float:
    """A real-valued hyperparameter in [low, high]; ``log=True`` samples it on a log scale."""

    name: str
    low: float
    high: float
    default: float
    log: bool = False
    recommended: float | None = None
    when: When | None = None
    help: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _as_when(self.when))

    def problems(self, allow_fixed: bool = False) -> Iterator[str]:
        if not (self.low < self.high or (allow_fixed and self.low == self.high)):
            yield f"low {self.low:g} must be below high {self.high:g}"
        if self.log and self.low <= 0:
            yield f"a log range needs low > 0, got {self.low:g}"
        for label, value in (("default", self.default), ("recommended", self.recommended)):
            if value is not None and not self.low <= value <= self.high:
                yield f"{label} {value:g} is outside [{self.low:g}, {self.high:g}]"

    def check(self, value: Any) -> float:
        value = float(value)
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ValueError(f"{value:g} is outside [{self.low:g}, {self.high:g}]")
        return value

    def parse(self, text: str) -> float:
        return float(text)

    def suggest(self, trial: Any) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    @property
    def fixed(self) -> bool:
        """A range of one value (low = high): a study trains it at that value only."""
        return self.low == self.high

    def grid(self, points: int) -> list[float]:
        """``points`` values spread evenly over the range (on a log scale for a log parameter)."""
        if points == 1 or self.fixed:
            return [self.default]
        if self.log:
            lo, hi = math.log10(self.low), math.log10(self.high)
            return [10 ** (lo + (hi - lo) * i / (points - 1)) for i in range(points)]
        return [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]

    @property
    def kind(self) -> str:
        return "float(log)" if self.log else "float"

    @property
    def range_text(self) -> str:
        return f"{self.low:g} (fixed)" if self.fixed else f"{self.low:g} .. {self.high:g}"


@dataclass(frozen=True)
class Int(Float):
    """An integer hyperparameter in [low, high]."""

    low: int
    high: int
    default: int
    recommended: int | None = None

    def check(self, value: Any) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        value = int(value)
        if not self.low <= value <= self.high:
            raise ValueError(f"{value} is outside [{self.low}, {self.high}]")
        return value

    def parse(self, text: str) -> int:
        return int(text)

    def suggest(self, trial: Any) -> int:
        return trial.suggest_int(self.name, self.low, self.high, log=self.log)

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log)

    def grid(self, points: int) -> list[int]:
        return sorted({round(v) for v in Float.grid(self, points)})

    @property
    def kind(self) -> str:
        return "int(log)" if self.log else "int"


@dataclass(frozen=True)
class Categorical:
    """A hyperparameter taking one of a few values (bools, strings, numbers)."""

    name: str
    choices: tuple
    default: Any
    recommended: Any = None
    when: When | None = None
    help: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "when", _as_when(self.when))

    def problems(self, allow_fixed: bool = False) -> Iterator[str]:
        if len(self.choices) < 1:
            yield "needs at least one choice"
        for label, value in (("default", self.default), ("recommended", self.recommended)):
            if (label == "default" or value is not None) and value not in self.choices:
                yield f"{label} {value!r} is not one of {list(self.choices)}"

    def check(self, value: Any) -> Any:
        if value not in self.choices:
            raise ValueError(f"{value!r} is not one of {list(self.choices)}")
        return value

    def parse(self, text: str) -> Any:
        for choice in self.choices:
            if str(choice).lower() == text.lower():
                return choice
        return text

    def suggest(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, list(self.choices))

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))

    @property
    def fixed(self) -> bool:
        """Only one choice."""
        return len(self.choices) == 1

    def grid(self, points: int) -> list:
        return list(self.choices)

    kind = "categorical"

    @property
    def range_text(self) -> str:
        return ", ".join(str(c) for c in self.choices)


Param = Float | Int | Categorical


class SearchSpace:
    """An ordered, validated collection of parameters; conditions refer to earlier parameters."""

    def __init__(self, params: Iterable[Param] = ()) -> None:
        self.params: tuple[Param, ...] = tuple(params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def __add__(self, other: Iterable[Param]) -> SearchSpace:
        return SearchSpace(self.params + tuple(other))

    def __repr__(self) -> str:
        return f"SearchSpace({list(self.params)!r})"

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def validate(self, owner: str, allow_fixed: bool = False) -> None:
        """Raise :class:`SpaceError` naming ``owner`` and the parameter at the first problem.

        A plugin's space needs ranges with low < high; a study's may fix a numeric parameter
        at one value (``allow_fixed``: low = high).
        """
        seen: set[str] = set()
        for param in self.params:
            where = f"{owner}: parameter {param.name!r}"
            if param.name in seen:
                raise SpaceError(f"{where}: declared twice")
            if param.when is not None:
                if param.when.param not in seen:
                    raise SpaceError(
                        f"{where}: condition refers to {param.when.param!r}, "
                        "which is not an earlier parameter"
                    )
                if param.when.op not in _OPERATORS:
                    raise SpaceError(f"{where}: unknown condition operator {param.when.op!r}")
            for problem in param.problems(allow_fixed):
                raise SpaceError(f"{where}: {problem}")
            seen.add(param.name)

    def _resolve(self, pick: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for param in self.params:
            if param.when is None or param.when.holds(values):
                values[param.name] = pick(param, values)
        return values

    def defaults(self) -> dict[str, Any]:
        """The default value of every parameter that is active at the defaults."""
        return self._resolve(lambda p, _: p.default)

    def fixed_point(self) -> dict[str, Any] | None:
        """The one configuration of a space whose every active parameter is fixed (a range of
        one value, a single choice), or None when anything is left to tune."""
        values: dict[str, Any] = {}
        for param in self.params:
            if param.when is None or param.when.holds(values):
                if not param.fixed:
                    return None
                is_choice = isinstance(param, Categorical)
                values[param.name] = param.choices[0] if is_choice else param.low
        return values

    def recommended(self) -> dict[str, Any]:
        """The literature's value where there is one, else the default."""
        return self._resolve(lambda p, _: p.default if p.recommended is None else p.recommended)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample a configuration from an Optuna trial (define-by-run, conditions respected)."""
        return self._resolve(lambda p, _: p.suggest(trial))

    def complete(
        self, values: Mapping[str, Any], owner: str = "",
        fallback: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check ``values`` against the space and fill in the rest; only active parameters stay.

        Every given value is checked against its parameter, active or not. A parameter that is
        not given takes its value from ``fallback`` when it has one (lr-find starts from the
        recommended values), else its default.

        Raises :class:`SpaceError` for an unknown name, a value its parameter does not accept,
        or a value given for a conditional parameter whose condition does not hold (the message
        names the condition).
        """
        prefix = f"{owner}: " if owner else ""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise SpaceError(
                f"{prefix}unknown parameter {unknown[0]!r}; the parameters are: "
                + ", ".join(self.names)
            )
        checked: dict[str, Any] = {}
        for param in self.params:
            if param.name in values:
                try:
                    checked[param.name] = param.check(values[param.name])
                except (TypeError, ValueError) as error:
                    raise SpaceError(f"{prefix}parameter {param.name!r}: {error}") from None
        others = fallback or {}

        def pick(param: Param, _: dict) -> Any:
            if param.name in checked:
                return checked[param.name]
            return others.get(param.name, param.default)

        resolved = self._resolve(pick)
        for name in checked:
            if name not in resolved:
                raise SpaceError(f"{prefix}{self._inactive_reason(name, resolved)}")
        return resolved

    def _inactive_reason(self, name: str, resolved: Mapping[str, Any]) -> str:
        """Why parameter ``name`` is inactive under ``resolved``, in one line."""
        when = self[name].when
        assert when is not None  # an unconditional parameter is always active
        if when.param in resolved:
            now = f"{when.param} is {resolved[when.param]!r}"
        else:
            now = f"{when.param} is itself inactive"
        return (
            f"parameter {name!r} is inactive: it applies only when {when}, and here {now}"
        )

    def parse(self, assignments: Iterable[str], owner: str = "") -> dict[str, Any]:
        """Parse ``name=value`` strings into typed values (:meth:`complete` checks them)."""
        values: dict[str, Any] = {}
        for text in assignments:
            name, sep, raw = text.partition("=")
            name = name.strip()
            if not sep:
                raise SpaceError(f"{owner}: expected name=value, got {text!r}")
            if name not in self:
                self.complete({name: None}, owner)  # raises the unknown-parameter error
            try:
                values[name] = self[name].parse(raw.strip())
            except ValueError:
                kind = self[name].kind
                raise SpaceError(
                    f"{owner}: parameter {name!r}: cannot read {raw.strip()!r} as {kind}"
                ) from None
        return values

    def distributions(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna distributions of the parameters present in ``values``."""
        return {p.name: p.distribution() for p in self.params if p.name in values}

    def with_range(self, name: str, low: float, high: float, owner: str = "") -> SearchSpace:
        """A copy with one numeric parameter's range replaced; default and recommended are clipped
        into the new range; ``low == high`` fixes the parameter at that value. Raises
        :class:`SpaceError` for a bad range or unknown name."""
        if name not in self:
            self.complete({name: None}, owner)
        param = self[name]
        if isinstance(param, Categorical):
            raise SpaceError(f"{owner}: parameter {name!r} is categorical and has no range")
        clip = lambda v: v if v is None else min(max(v, low), high)  # noqa: E731
        cast = int if isinstance(param, Int) else float
        new = replace(
            param, low=cast(low), high=cast(high),
            default=clip(param.default), recommended=clip(param.recommended),
        )
        space = SearchSpace(new if p.name == name else p for p in self.params)
        space.validate(owner or "override", allow_fixed=True)
        return space

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready description of every parameter."""
        rows = []
        for param in self.params:
            row = asdict(param)
            row["kind"] = param.kind
            row["when"] = str(param.when) if param.when else None
            if "choices" in row:
                row["choices"] = list(param.choices)
            rows.append(row)
        return rows

    def fingerprint(self) -> str:
        """A short hash of the space: trials from different spaces are not mixed blindly."""
        text = json.dumps(self.to_dicts(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
