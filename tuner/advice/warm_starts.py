"""Warm starts: a new study begins from the best configurations the store already knows.

The reads are the store's (:func:`tuner.store.queries.best_config_params`); the search space is
the caller's (``tuner study create`` builds it from the plugins, on its own path), so this module
loads no plugin either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.advice.ranking import rank_task
from tuner.advice.source import NoRunsError, NoTaskRecordError, open_for_reading
from tuner.advice.stats import WARM_START_MARGIN, Tolerance, narrow_log_range
from tuner.errors import TunerError, UnknownNameError

if TYPE_CHECKING:
    from tuner.plugin.space import SearchSpace
    from tuner.store import Store


@dataclass
class WarmStart:
    """What a new study can start from: known good configurations and a narrower lr range."""

    configs: list[dict[str, Any]]
    space: SearchSpace
    lr_range: tuple[float, float] | None
    source: str

    def __iter__(self):  # (configs, space) unpacking
        return iter((self.configs, self.space))


def warm_start(
    task: str,
    optimizer: str,
    space: SearchSpace,
    db: str | Store | None = None,
    top: int = 3,
    margin: float = WARM_START_MARGIN,
    tolerance: str | float | Tolerance | None = None,
) -> WarmStart:
    """Warm-start a new study of ``optimizer`` on ``task`` from what the store already knows.

    Returns the ``top`` best known configurations (distinct, best first, each a complete
    configuration valid in ``space``) to enqueue, and ``space`` with its ``lr`` range narrowed to
    the good-lr interval seen so far, widened by ``margin`` on each side on a log scale and
    clipped to the original range. With no usable runs, returns no configurations and ``space``
    unchanged. Unpacks as ``configs, space = warm_start(...)``.
    """
    from tuner.store.queries import best_config_params

    empty = WarmStart(configs=[], space=space, lr_range=None, source="no runs")
    try:
        store, opened = open_for_reading(db)
    except NoRunsError:
        return empty
    try:
        try:
            ranking = rank_task(task, db=store, tolerance=tolerance)
            standing = ranking.standing(optimizer)
        except (NoRunsError, NoTaskRecordError, UnknownNameError):
            return empty
        if standing.mean is None:
            return empty
        found = best_config_params(store, ranking.scope, optimizer, ranking.direction, top * 4)
    finally:
        if opened:
            store.dispose()

    configs: list[dict[str, Any]] = []
    for params in found:
        try:
            config = space.complete(params or {})
        except TunerError:  # from an older or wider space: not valid in this one
            continue
        if config not in configs:
            configs.append(config)
        if len(configs) >= top:
            break
    narrowed = space
    lr_range = None
    if standing.good_lr and "lr" in space:
        lr_param = space["lr"]
        low, high = narrow_log_range(lr_param.low, lr_param.high, *standing.good_lr, margin=margin)
        narrowed = space.with_range("lr", low, high, owner=optimizer)
        lr_range = (low, high)
        configs = [c for c in configs if low <= c.get("lr", low) <= high]
    return WarmStart(
        configs=configs, space=narrowed, lr_range=lr_range,
        source=f"{standing.trials} trials, {standing.runs} runs in {ranking.db}",
    )


def warm_start_spec(
    spec: Any, spaces: Mapping[str, SearchSpace], db: str | Store | None = None, top: int = 3,
    margin: float = WARM_START_MARGIN,
) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """A study spec warm-started from the store (``tuner study create --warm-start``).

    ``spaces`` holds each optimizer's search space in the study (the caller builds them from the
    plugins). Returns the spec with each optimizer's lr range narrowed (:func:`warm_start`) and,
    per optimizer, the best known configurations to try first (before its recommended one).
    """
    from dataclasses import replace

    ranges = {name: dict(values) for name, values in (spec.ranges or {}).items()}
    configs: dict[str, list[dict[str, Any]]] = {}
    for optimizer in spec.optimizers:
        found = warm_start(spec.task, optimizer, spaces[optimizer], db=db, top=top,
                           margin=margin)
        if found.lr_range is not None:
            ranges.setdefault(optimizer, {})["lr"] = [found.lr_range[0], found.lr_range[1]]
        configs[optimizer] = found.configs
    return replace(spec, ranges=ranges), configs
