"""Observations: runs summed per (configuration, seed), then per configuration over its seeds.

The store keeps these sums in ``tuner_seed_stats`` and ``tuner_config_stats``, maintained by
triggers (migration 0009) for the whole store. The same two aggregations are written here as
queries over any set of runs (one study's, for ``Study.best()``), giving rows with the columns
of ``tuner_config_stats``; a test holds the two forms equal.

The rules: a configuration's result is over its *seeds*, one observation each (a seed's value is
the mean of its complete runs: a second run of a (configuration, seed) is a replay, not a new
seed); the replays' disagreement within their seed is kept apart (``replays``,
``replay_sumsq``); run counts by status and the optimizer-state multiple are over runs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, Select, and_, case, cast, func, literal, select
from sqlalchemy.sql.expression import ColumnElement

from tuner.store.models import Run

KEY = ("task", "optimizer", "protocol", "config_hash")
"""What identifies a configuration in the statistics (its protocol included)."""


def _zero_or(condition: ColumnElement[bool], value: Any) -> Any:
    return case((condition, value), else_=literal(0))


def seed_totals(*conditions: ColumnElement[bool]) -> Select:
    """Per (task, optimizer, protocol, config_hash, seed) of the runs matching
    ``conditions``: the sums ``tuner_seed_stats`` keeps."""
    runs = Run.__table__.c
    complete = runs.status == "complete"
    measured = and_(complete, runs.final_metric.is_not(None))
    reached = and_(complete, runs.steps_to_target.is_not(None))
    has_state = and_(runs.status.in_(("complete", "pruned", "diverged")), runs.param_bytes > 0)
    key = [runs.task, runs.optimizer, func.coalesce(runs.protocol, "").label("protocol"),
           func.coalesce(runs.config_hash, "").label("config_hash"), runs.seed]
    return (
        select(
            *key,
            func.min(runs.lr).label("lr"),
            func.count().label("runs"),
            func.sum(_zero_or(complete, 1)).label("complete"),
            func.sum(_zero_or(runs.status == "diverged", 1)).label("diverged"),
            func.sum(_zero_or(runs.status == "pruned", 1)).label("pruned"),
            func.sum(_zero_or(runs.status == "failed", 1)).label("failed"),
            func.sum(_zero_or(measured, 1)).label("metric_count"),
            func.sum(_zero_or(measured, runs.final_metric)).label("metric_sum"),
            func.sum(_zero_or(measured, runs.final_metric * runs.final_metric))
            .label("metric_sumsq"),
            func.sum(_zero_or(reached, 1)).label("reached"),
            func.sum(_zero_or(reached, runs.steps_to_target)).label("steps_sum"),
            func.sum(_zero_or(has_state, 1)).label("state_measured"),
            func.sum(_zero_or(has_state, cast(runs.optimizer_state_bytes, Float)
                              / runs.param_bytes)).label("state_multiple_sum"),
        )
        .where(*conditions)
        .group_by(*key)
    )


def _count(value: Any) -> Any:
    """A sum of counts as an integer (PostgreSQL sums bigints into numerics)."""
    return cast(func.sum(value), Integer)


def _total(value: Any) -> Any:
    """A sum of measurements as a float."""
    return cast(func.sum(value), Float)


def config_totals(seeds: Any) -> Select:
    """Per configuration, from per-seed sums ``seeds`` (a subquery of :func:`seed_totals`'s
    columns): the columns of ``tuner_config_stats``, by the rules of the module docstring."""
    s = seeds.c
    observed = s.metric_count > 0
    seed_mean = s.metric_sum / cast(s.metric_count, Float)
    observations = _count(_zero_or(observed, 1))
    within = s.metric_sumsq - s.metric_sum * seed_mean
    return (
        select(
            *(s[name] for name in KEY),
            func.min(s.lr).label("lr"),
            *(_count(s[name]).label(name)
              for name in ("runs", "complete", "diverged", "pruned", "failed")),
            observations.label("metric_count"),
            _total(_zero_or(observed, seed_mean)).label("metric_sum"),
            _total(_zero_or(observed, seed_mean * seed_mean)).label("metric_sumsq"),
            (_total(case((observed, seed_mean))) / func.nullif(observations, 0))
            .label("metric_mean"),
            _count(_zero_or(s.metric_count > 1, s.metric_count - 1)).label("replays"),
            _total(_zero_or(and_(s.metric_count > 1, within > 0), within))
            .label("replay_sumsq"),
            _count(_zero_or(s.reached > 0, 1)).label("reached"),
            _total(_zero_or(s.reached > 0, s.steps_sum / cast(s.reached, Float)))
            .label("steps_sum"),
            _count(s.state_measured).label("state_measured"),
            _total(s.state_multiple_sum).label("state_multiple_sum"),
            (_total(s.state_multiple_sum) / func.nullif(_count(s.state_measured), 0))
            .label("state_multiple"),
        )
        .group_by(*(s[name] for name in KEY))
    )


def study_config_stats(study_id: int) -> Any:
    """The configurations of one study's runs, as a subquery with the columns of
    ``tuner_config_stats``: what a ranking of that study alone reads instead of the table."""
    seeds = seed_totals(Run.__table__.c.study_id == study_id).subquery("seeds")
    return config_totals(seeds).subquery("study_config_stats")


def whole_store_config_stats() -> Any:
    """Every configuration of the store recomputed from the runs (what the triggers keep in
    ``tuner_config_stats``); for checks, not for advice: it reads every run."""
    return config_totals(seed_totals().subquery("seeds")).subquery("recomputed")

