"""What matters to tune: each hyperparameter's share of the variation in an optimizer's results.

The estimate is a one-way functional-ANOVA per hyperparameter over the stored configurations of
one optimizer on one task (fANOVA's question, without its random forest): each configuration is
one point, its mean result over seeds the response; configurations that diverged carry no mean
and are left out. For each hyperparameter the configurations are grouped by its value, a numeric
one into up to :data:`BINS` quantile bins (equal counts, so the scale, log or linear, does not
matter), and the share of the total variance its marginal means explain is estimated with the
bias-corrected epsilon-squared,

    eps^2 = (SS_between - (k - 1) * MS_within) / SS_total,   MS_within = SS_within / (N - k),

clipped at 0 (with k groups and N configurations, chance alone gives SS_between about
(k - 1) MS_within, so an irrelevant hyperparameter scores near 0). The shares are normalised
to sum to 1 over the hyperparameters that vary. Interactions are not separated: a pair that
only matters together is split between its members. Fewer than :data:`MIN_CONFIGURATIONS`
configurations give no estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tuner.advice.formatting import join_names

if TYPE_CHECKING:
    from tuner.store import Store
    from tuner.store.queries import Scope

BINS = 8
MIN_CONFIGURATIONS = 10
BARELY_MATTERS = 0.1


@dataclass
class Importance:
    """The shares of one optimizer's hyperparameters on a task, largest first."""

    task: str
    optimizer: str
    configurations: int
    shares: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """``for adam on charlm, lr explains 80%; beta2 and eps barely matter: keep the
        defaults``."""
        if not self.shares:
            return (f"for {self.optimizer} on {self.task}, too few configurations "
                    f"({self.configurations}) to say what matters")
        (top, share), *rest = self.shares.items()
        text = f"for {self.optimizer} on {self.task}, {top} explains {share * 100:.0f}%"
        minor = sorted(name for name, value in rest if value < BARELY_MATTERS)
        if minor:
            verb = "barely matters" if len(minor) == 1 else "barely matter"
            text += f"; {join_names(minor)} {verb}: keep the default"
            text += "s" if len(minor) > 1 else ""
        return text


def _groups(values: Sequence[Any]) -> list[int]:
    """The group of each value: quantile bins for numbers with many values, else the value."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    distinct = sorted(set(values), key=repr) if not numeric else sorted(set(values))
    if not numeric or len(distinct) <= BINS:
        index = {repr(v): i for i, v in enumerate(distinct)}
        return [index[repr(v)] for v in values]
    order = sorted(range(len(values)), key=lambda i: values[i])
    groups = [0] * len(values)
    for rank, i in enumerate(order):
        groups[i] = rank * BINS // len(values)
    return groups


def epsilon_squared(response: Sequence[float], groups: Sequence[int]) -> float:
    """The bias-corrected share of ``response``'s variance explained by ``groups``."""
    n = len(response)
    mean = sum(response) / n
    total = sum((y - mean) ** 2 for y in response)
    members: dict[int, list[float]] = {}
    for y, g in zip(response, groups, strict=True):
        members.setdefault(g, []).append(y)
    k = len(members)
    if total <= 0 or k < 2 or n <= k:
        return 0.0
    between = sum(len(ys) * (sum(ys) / len(ys) - mean) ** 2 for ys in members.values())
    within = (total - between) / (n - k)
    return max((between - (k - 1) * within) / total, 0.0)


def importance_shares(points: Sequence[tuple[float, dict[str, Any]]]) -> dict[str, float]:
    """``{hyperparameter: share}`` from ``(mean, params)`` of configurations, largest first;
    empty when there are too few configurations or nothing varies."""
    if len(points) < MIN_CONFIGURATIONS:
        return {}
    response = [mean for mean, _ in points]
    names = sorted({name for _, params in points for name in params})
    raw = {}
    for name in names:
        values = [params.get(name) for _, params in points]
        if len({repr(v) for v in values}) < 2:
            continue
        if any(v is None for v in values):
            values = [repr(v) for v in values]
        raw[name] = epsilon_squared(response, _groups(values))
    total = sum(raw.values())
    if total <= 0:
        return {}
    return dict(sorted(((n, v / total) for n, v in raw.items()), key=lambda kv: -kv[1]))


def importance(
    task: str, optimizers: Sequence[str], db: str | Store | None = None,
    scope: Scope | None = None,
    where: dict[str, Any] | None = None,
) -> list[Importance]:
    """The importance of each optimizer's hyperparameters on ``task`` (in memory, on demand),
    over the configurations of ``scope`` (a ranking's protocol; default: every configuration
    of the task) trained as ``where`` says (all when None)."""
    from tuner.advice.source import open_for_reading
    from tuner.store.queries import Scope, config_means_with_params

    store, opened = open_for_reading(db)
    try:
        found = []
        for optimizer in optimizers:
            points = config_means_with_params(store, scope or Scope(task), optimizer, where)
            found.append(Importance(task, optimizer, len(points), importance_shares(points)))
        return found
    finally:
        if opened:
            store.dispose()
