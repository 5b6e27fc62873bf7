"""Is the advice's certainty calibrated? Its P(best), ties and lr intervals against a reference.

On each task, one large *reference* study (32 trials x 3 seeds per optimizer, training seeds
0..2, sampler seed 0) and N *small* studies (6 trials x 2 seeds), each small study in its own
SQLite store with its own sampler seed (1000 + i) and its own training seeds (1000 + 2i and
1001 + 2i: disjoint from the reference's and from every other small study's). Every study uses
TPE, no pruner, and the same budget in steps, so all of them rank under one protocol. Each
small study is ranked as ``tuner best`` ranks it (``tuner.advice.rank_task``: the nested
resample of seeds and configurations) and, beside it, the old way: the same store's
configurations resampled over their seeds alone (``resample(..., configurations=False)``), the
winner being the optimizer with the best mean, as the advice ranked before the nested resample.

The reference decides what is true. Its winner is its ranking's first optimizer; an optimizer
it *cannot separate* from that winner is one its ranking marks ``tied_with_winner`` (the winner
beats it in fewer than 90% of the reference's own resamples, at the reference's 32 trials).
Its best lr per optimizer is its best configuration's.

Four figures per task, the old way beside the new:

* reliability: of the small studies' confident claims (the named winner's P(best) >= 0.9), the
  share naming the reference's winner or an optimizer the reference cannot separate from it
  (target >= 90%);
* overconfidence: the mean over small studies of the winner's P(best) minus the share of the
  *other* small studies naming the same winner (target: within +-0.05, or a 90% interval that
  contains 0). The interval resamples the small studies (2,000 resamples of the N studies with
  replacement, ``numpy.random.default_rng(20)``; a copy of a study is not "another study");
* coverage: of the 90% lr-ratio intervals (each other optimizer's best lr over the winner's, in
  every small study), the share that contain the same ratio of the reference's best lrs
  (target >= 85%);
* resolution: the share of small studies that name a confident winner (target >= 50% on the
  clear-winner task: being careful must not mean never answering).

Beside them, to see where a miss comes from: the mean over small studies of the winner's best
mean less the reference's best mean of the same optimizer (its corrected mean too, the new way),
and the same for the other optimizers, in the task's direction (positive: better than the
reference found), and how often each optimizer was named.

The two tasks, measured before choosing (``CASES``):

* digits-mlp, adam / momentum / lion / adagrad, 220 steps per run (as ``rank_stability.py``):
  the optimizers' tuned accuracies lie within about 1% of each other, within the noise of a
  small study;
* logreg, rmsprop / adagrad / momentum / signsgd, 100 steps per run: the clear winner. Probe
  studies at 100 steps (16 trials x 2 seeds, sampler seed 7) put rmsprop at val_loss 0.372 with
  every lr from 2.6e-3 to 2.4e-2 within 0.004 of it (a decade of its four), and the others'
  best at 0.388 (signsgd, in a narrow band around lr 0.03), 0.435 (adagrad) and 0.442
  (momentum), against a per-seed spread of 0.0015-0.008; so a study of 6 trials should find
  rmsprop ahead most of the time. adam was left out: at 100 steps its best (0.365, at lr
  0.035-0.1) edges out rmsprop's with 32 trials, but 6 trials often miss that band (0.45 of its
  four decades), a leader that changes with the tuning budget rather than a clear winner; at
  200 steps rmsprop and adam tie (0.368), and at 300 adam, adagrad and signsgd lie within
  0.006 of each other near the optimum (about 0.365).

How the small studies get their own training seeds: with the study option ``first_seed`` (when
this tuner has it) they are created and run by the driver (``tuner.driver.create_study``,
``run_study``); without it the driver can only train seeds 0..seeds-1, so the bench draws each
slot's configuration as the driver does (``plan_slot``: the recommended configuration first,
then the driver's seeded TPE per slot with each categorical choice tried in the first slots,
told every outcome, a diverged trial as the worst value) and trains and records each seed
itself (``tuner.training.train``, ``tuner.store.record_run``, under the protocol the driver
records). ``--check-recording`` runs one small study of each task both ways on seeds 0..1 and
compares the stores row by row (configurations, seeds, statuses, final metrics, protocol):
they were identical on both tasks. The output's second line says which way was used. The
reference is always run by the driver.

Stores are kept under ``--out`` (one folder per task, budget and optimizer list; one file per
study, its trials, seeds and sampler seed in its name) and reused: a reference whose study
finished is ranked again without training, an unfinished one is resumed; a small study's store
is reused when the marker file written after its last run (``.done``) is there, else started
again. Everything is bounded: a fixed number of studies, trials, seeds and steps per run. One
torch thread per process (``--workers`` processes at most).

    python bench/calibration.py --quick              # 4 small studies, a 12-trial reference
    python bench/calibration.py                      # 30 small studies per task: ~10 minutes
    python bench/calibration.py --tasks logreg --small 40 --workers 2 --out stores
    python bench/calibration.py --check-recording    # the bench's own recording = the driver's
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIDENT = 0.9
"""The P(best) at which the advice names a winner without "too few runs"."""
TARGETS = {"reliability": 0.90, "overconfidence": 0.05, "coverage": 0.85, "resolution": 0.50}
INTERVAL_RESAMPLES = 2000
INTERVAL_SEED = 20
REFERENCE_SAMPLER_SEED = 0
SMALL_SEED_BASE = 1000
"""Small study i: sampler seed SMALL_SEED_BASE + i, training seeds from SMALL_SEED_BASE + 2i."""


@dataclass(frozen=True)
class Case:
    """One task of the bench: its optimizers, steps per run and whether it has a clear winner."""

    task: str
    optimizers: tuple[str, ...]
    budget: int
    clear_winner: bool

    @property
    def folder_name(self) -> str:
        return f"{self.task}-{self.budget}steps-{'-'.join(self.optimizers)}"


CASES = {
    "digits-mlp": Case("digits-mlp", ("adam", "momentum", "lion", "adagrad"), 220, False),
    "logreg": Case("logreg", ("rmsprop", "adagrad", "momentum", "signsgd"), 100, True),
}


@dataclass(frozen=True)
class Plan:
    """The sizes of one measurement."""

    reference_trials: int
    reference_seeds: int
    small: int
    small_trials: int
    small_seeds: int
    workers: int
    out: Path


@dataclass
class Verdict:
    """One small study's claim, the new way or the old: its winner, the winner's P(best), per
    other optimizer the 90% interval of its best lr over the winner's (None: none given), each
    optimizer's best mean, and the winner's mean less its winner's-curse bias (new way only)."""

    winner: str | None
    p_best: float | None
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    corrected: float | None = None

    @property
    def confident(self) -> bool:
        return self.p_best is not None and self.p_best >= CONFIDENT


@dataclass
class Reference:
    """What the reference study says: its winner, those it cannot separate from the winner
    (the winner included), each optimizer's best lr and best mean, the task's direction, and
    its ranking in one line."""

    winner: str
    inseparable: set[str]
    best_lr: dict[str, float]
    best_mean: dict[str, float]
    direction: str
    summary: str


# -- running studies ------------------------------------------------------------------------------


def one_thread() -> None:
    """One torch thread in this process: the cores are shared (see bench/RESULTS.md)."""
    import torch

    torch.set_num_threads(1)


def study_settings(case: Case, name: str, trials: int, seeds: int, sampler_seed: int) -> dict:
    """What ``tuner study create`` would be given for one study of ``case``."""
    return {"name": name, "task": case.task, "optimizers": list(case.optimizers),
            "trials": trials, "seeds": seeds, "sampler": "tpe", "pruner": "none",
            "seed": sampler_seed, "budget": case.budget}


def first_seed_supported() -> bool:
    """Whether a study can start its training seeds elsewhere than 0 (``first_seed``)."""
    from tuner.study.spec import STUDY_KEYS

    return "first_seed" in STUDY_KEYS


def run_reference(case: Case, plan: Plan, folder: Path) -> tuple[str, bool]:
    """Create (unless there) and run (unless finished) the reference study; returns its URL and
    whether it was reused as it was."""
    from tuner.driver import create_study, run_study
    from tuner.store import open_store
    from tuner.store.studies import get_study, study_exists

    name = "reference"
    path = folder / f"reference-{plan.reference_trials}x{plan.reference_seeds}.db"
    url = f"sqlite:///{path}"
    store = open_store(url)
    try:
        exists = study_exists(store, name)
        finished = exists and get_study(store, name).status == "finished"
    finally:
        store.dispose()
    if finished:
        return url, True
    if not exists:
        create_study(study_settings(case, name, plan.reference_trials, plan.reference_seeds,
                                    REFERENCE_SAMPLER_SEED), url)
    run_study(name, url, workers=plan.workers)
    return url, False


def small_path(folder: Path, plan: Plan, index: int) -> Path:
    return folder / f"small-{plan.small_trials}x{plan.small_seeds}-s{SMALL_SEED_BASE + index}.db"


def run_small(case: Case, plan: Plan, folder: Path, index: int) -> tuple[str, float]:
    """Small study ``index`` in its own store (reused when complete); returns its URL and the
    seconds spent on it (0 when reused)."""
    path = small_path(folder, plan, index)
    url = f"sqlite:///{path}"
    done = path.with_name(path.name + ".done")
    if done.exists():
        return url, 0.0
    started = time.perf_counter()
    for leftover in folder.glob(path.name + "*"):  # an unfinished attempt: start again
        leftover.unlink()
    settings = study_settings(case, f"small-{index}", plan.small_trials, plan.small_seeds,
                              SMALL_SEED_BASE + index)
    first = SMALL_SEED_BASE + plan.small_seeds * index
    if first_seed_supported():
        from tuner.driver import create_study, run_study

        create_study({**settings, "first_seed": first}, url)
        run_study(settings["name"], url, workers=1)
    else:
        run_recorded(settings, list(range(first, first + plan.small_seeds)), url)
    done.touch()
    return url, time.perf_counter() - started


def run_recorded(settings: dict, seeds: list[int], url: str) -> None:
    """One study without the driver's seed list: each optimizer's slots drawn as the driver
    draws them (:func:`tuner.driver.policy.plan_slot`: its initial configurations, then its
    seeded sampler per slot with the categorical choices spread over the first ones, an
    Optuna study told every outcome), each configuration trained on ``seeds`` and recorded as
    the driver records a run (its plugin version, search-space hash and protocol)."""
    from dataclasses import replace

    import optuna

    from tuner.driver import optuna_adapter
    from tuner.driver.context import study_space
    from tuner.driver.create import initial_configs
    from tuner.driver.policy import choices_to_spread, plan_slot
    from tuner.driver.resolve import resolve
    from tuner.plugin.registry import get_registry
    from tuner.store import TaskRecord, open_store, record_task

    spec = resolve(settings)
    spec = replace(spec, initial_configs=initial_configs(spec, None))
    registry = get_registry()
    task = registry.task(spec.task)
    store = open_store(url)
    try:
        record_task(store, TaskRecord.from_task(task))
        optuna_adapter.quiet()
        for optimizer in spec.optimizers:
            space = study_space(spec, optimizer)
            study = optuna.create_study(direction=task.direction)
            for slot in range(spec.trials_for(optimizer)):
                plan = plan_slot(spec, optimizer, slot, [], choices=choices_to_spread(space))
                if plan.params is None:
                    sampler = optuna_adapter.make_sampler(spec.sampler, spec.seed, optimizer,
                                                          slot, spec.trials)
                    trial = optuna_adapter.new_trial(study, sampler=sampler,
                                                     fixed_params=plan.pinned or None)
                else:
                    trial = optuna_adapter.new_trial(study, fixed_params=plan.params)
                params = space.suggest(trial)
                outcome, value = train_configuration(
                    store, task, registry.optimizer(optimizer), params, seeds, space, spec)
                optuna_adapter.tell(study, trial, outcome, value, task.direction)
    finally:
        store.dispose()


def train_configuration(store: Any, task: Any, plugin: Any, params: dict, seeds: list[int],
                        space: Any, spec: Any) -> tuple[str, float | None]:
    """Train one configuration on each seed in turn, recording every run, and end as the
    driver ends a trial (:func:`tuner.driver.policy.outcome_after`)."""
    from tuner.driver.policy import outcome_after
    from tuner.driver.trial import study_protocol
    from tuner.store import record_run
    from tuner.training.loop import train

    finals: list[float] = []
    for index, seed in enumerate(seeds):
        result = train(task, plugin, params, seed, budget=spec.budget)
        record_run(store, None, result, plugin_version=plugin.version or None,
                   space_hash=space.fingerprint(),
                   protocol=study_protocol({}, result.options or {}, spec.budget))
        outcome = outcome_after(result.status, result.final_metric, finals,
                                index + 1 == len(seeds))
        if outcome is not None:
            return outcome
        finals.append(float(result.final_metric))
    raise AssertionError("outcome_after ends a trial at its last seed")


RECORDED_COLUMNS = ("optimizer", "params", "seed", "status", "final_metric", "best_metric",
                    "steps", "protocol", "space_hash", "plugin_version")
"""What must be the same in a study run by the driver and one recorded by this bench."""


def check_recording(case: Case, plan: Plan, folder: Path) -> bool:
    """Run one small study of ``case`` by the driver and by :func:`run_recorded`, both on
    seeds 0..seeds-1 in fresh stores, and compare their runs row by row; prints the verdict."""
    import sqlite3

    from tuner.driver import create_study, run_study

    settings = study_settings(case, "check", plan.small_trials, plan.small_seeds,
                              SMALL_SEED_BASE)
    paths = {way: folder / f"check-{way}.db" for way in ("driver", "recorded")}
    for leftover in [p for path in paths.values() for p in folder.glob(path.name + "*")]:
        leftover.unlink()
    create_study(settings, f"sqlite:///{paths['driver']}")
    run_study("check", f"sqlite:///{paths['driver']}", workers=1)
    run_recorded(settings, list(range(plan.small_seeds)), f"sqlite:///{paths['recorded']}")
    query = f"SELECT {', '.join(RECORDED_COLUMNS)} FROM tuner_runs ORDER BY optimizer, id"
    rows = {}
    for way, path in paths.items():
        with sqlite3.connect(path) as connection:
            rows[way] = connection.execute(query).fetchall()
    same = rows["driver"] == rows["recorded"]
    differing = sum(a != b for a, b in zip(rows["driver"], rows["recorded"], strict=False))
    print(f"[{case.task}] recorded by the bench against the driver: {len(rows['recorded'])} "
          f"against {len(rows['driver'])} runs, "
          + ("identical" if same else f"DIFFERENT ({differing} rows differ)"), flush=True)
    return same


def small_in_process(case: Case, plan: Plan, folder: Path, index: int) -> tuple[str, float]:
    """:func:`run_small` in a pool's process (one torch thread there too)."""
    one_thread()
    return run_small(case, plan, folder, index)


# -- reading what the studies say ----------------------------------------------------------------


def read_reference(case: Case, url: str) -> Reference:
    """The reference's winner, the optimizers it cannot separate from it, and its best lrs."""
    from tuner.advice import rank_task

    ranking = rank_task(case.task, db=url)
    ranked = [s for s in ranking.optimizers if s.mean is not None]
    winner = ranked[0]
    inseparable = {s.optimizer for s in ranked if s is winner or s.tied_with_winner}
    summary = ", ".join(
        f"{s.optimizer} {s.mean:.4f} lr {s.lr:.3g} P {s.p_best:.2f}"
        + (" (tied)" if s is not winner and s.tied_with_winner else "")
        for s in ranked)
    return Reference(winner.optimizer, inseparable, {s.optimizer: s.lr for s in ranked},
                     {s.optimizer: s.mean for s in ranked}, ranking.direction,
                     f"{summary}; {ranking.trials_compared} trials compared")


def new_verdict(ranking: Any) -> Verdict:
    """What the advice says of a small study: its winner, P(best) and lr-ratio intervals."""
    winner = ranking.winner
    if winner is None:
        return Verdict(None, None)
    intervals = {
        ratio.optimizer: (ratio.low, ratio.high) if ratio.low is not None else None
        for ratio in ranking.lr_ratios if ratio.reference == winner.optimizer
    }
    means = {s.optimizer: s.mean for s in ranking.optimizers if s.mean is not None}
    return Verdict(winner.optimizer, winner.p_best, intervals, means, winner.corrected)


def old_verdict(ranking: Any, url: str) -> Verdict:
    """The old way on the same store: the best mean wins; P(best) and the lr-ratio intervals
    from the resample of the seeds alone, at the same number of trials."""
    from tuner.advice.bootstrap import TOP, resample
    from tuner.advice.ranking import tunings
    from tuner.store import open_store
    from tuner.store.queries import contender_configs, optimizer_summaries

    sign = 1.0 if ranking.direction == "maximize" else -1.0
    ranked = [s for s in ranking.optimizers if s.mean is not None]
    if not ranked:
        return Verdict(None, None)
    winner = max(ranked, key=lambda s: sign * s.mean).optimizer
    store = open_store(url, readonly=True)
    try:
        summaries = optimizer_summaries(store, ranking.scope, ranking.direction,
                                        ranking.tolerance.margin)
        contenders = contender_configs(store, ranking.scope, ranking.direction,
                                       [s.optimizer for s in ranked], TOP + 1)
    finally:
        store.dispose()
    found, _ = tunings(contenders, summaries)
    if set(found) != {s.optimizer for s in ranked}:
        return Verdict(winner, None)
    result = resample(found, ranking.direction, ranking.trials_compared, configurations=False,
                      predictive=False)
    intervals = {s.optimizer: result.ratio_intervals.get((s.optimizer, winner))
                 for s in ranked if s.optimizer != winner}
    means = {s.optimizer: s.mean for s in ranked}
    return Verdict(winner, result.p_best.get(winner), intervals, means)


def read_small(case: Case, url: str) -> dict[str, Verdict]:
    """A small study's verdicts, the new way and the old."""
    from tuner.advice import rank_task

    ranking = rank_task(case.task, db=url)
    return {"new": new_verdict(ranking), "old": old_verdict(ranking, url)}


# -- the figures ----------------------------------------------------------------------------------


@dataclass
class Figures:
    """The four figures of one way on one task, with their counts."""

    confident: int
    reliable: int
    studies: int
    overconfidence: float | None
    overconfidence_interval: tuple[float, float] | None
    mean_p_best: float | None
    mean_agreement: float | None
    covered: int
    intervals: int
    missing_intervals: int
    winners: dict[str, int] = field(default_factory=dict)
    luck: tuple[float | None, float | None, float | None] = (None, None, None)
    """Mean over small studies of (the winner's best mean, its corrected mean, the others'
    best means) less the reference's best mean of the same optimizer, in the task's direction
    (positive: better than the reference found)."""

    @property
    def reliability(self) -> float | None:
        return self.reliable / self.confident if self.confident else None

    @property
    def coverage(self) -> float | None:
        return self.covered / self.intervals if self.intervals else None

    @property
    def resolution(self) -> float | None:
        return self.confident / self.studies if self.studies else None


def agreement(winners: Sequence[str | None], origins: Sequence[int], position: int) -> float:
    """The share of the other studies (not copies of the same one) naming the same winner."""
    others = [w for w, origin in zip(winners, origins, strict=True)
              if origin != origins[position]]
    if not others:
        return math.nan
    return sum(w == winners[position] for w in others) / len(others)


def overconfidence(verdicts: Sequence[Verdict], origins: Sequence[int] | None = None) -> float:
    """Mean over studies of the winner's P(best) minus the other studies' agreement with it."""
    origins = list(origins if origins is not None else range(len(verdicts)))
    winners = [v.winner for v in verdicts]
    gaps = [v.p_best - agreement(winners, origins, i)
            for i, v in enumerate(verdicts) if v.winner is not None and v.p_best is not None]
    gaps = [g for g in gaps if not math.isnan(g)]
    return sum(gaps) / len(gaps) if gaps else math.nan


def overconfidence_interval(verdicts: Sequence[Verdict]) -> tuple[float, float] | None:
    """The 5%..95% quantiles of the overconfidence over resamples of the studies."""
    import numpy as np

    if len(verdicts) < 3:
        return None
    rng = np.random.default_rng(INTERVAL_SEED)
    values = []
    for _ in range(INTERVAL_RESAMPLES):
        picked = rng.integers(0, len(verdicts), len(verdicts))
        values.append(overconfidence([verdicts[i] for i in picked], list(picked)))
    low, high = np.nanquantile(np.array(values), (0.05, 0.95))
    return float(low), float(high)


def coverage(verdicts: Sequence[Verdict], reference: Reference) -> tuple[int, int, int]:
    """(intervals containing the reference's ratio, intervals, pairs without an interval)."""
    covered = total = missing = 0
    for verdict in verdicts:
        if verdict.winner is None:
            continue
        for optimizer, interval in verdict.intervals.items():
            if interval is None:
                missing += 1
                continue
            truth = reference.best_lr[optimizer] / reference.best_lr[verdict.winner]
            total += 1
            covered += int(interval[0] <= truth <= interval[1])
    return covered, total, missing


def figures(verdicts: Sequence[Verdict], reference: Reference) -> Figures:
    confident = [v for v in verdicts if v.confident]
    reliable = sum(v.winner in reference.inseparable for v in confident)
    covered, total, missing = coverage(verdicts, reference)
    winners = [v.winner for v in verdicts]
    agreements = [agreement(winners, list(range(len(verdicts))), i)
                  for i in range(len(verdicts))]
    p_bests = [v.p_best for v in verdicts if v.p_best is not None]
    return Figures(
        confident=len(confident), reliable=reliable, studies=len(verdicts),
        overconfidence=overconfidence(verdicts),
        overconfidence_interval=overconfidence_interval(verdicts),
        mean_p_best=sum(p_bests) / len(p_bests) if p_bests else None,
        mean_agreement=sum(agreements) / len(agreements) if agreements else None,
        covered=covered, intervals=total, missing_intervals=missing,
        winners=dict(Counter(w or "none" for w in winners).most_common()),
        luck=luck(verdicts, reference),
    )


def luck(verdicts: Sequence[Verdict], reference: Reference) -> tuple:
    """How far the small studies' winners, and the others, land from the reference's best
    means (see :attr:`Figures.luck`): a winner picked for its luck lands above."""
    sign = 1.0 if reference.direction == "maximize" else -1.0
    winner, corrected, others = [], [], []
    for verdict in verdicts:
        if verdict.winner is None:
            continue
        truth = reference.best_mean
        winner.append(sign * (verdict.means[verdict.winner] - truth[verdict.winner]))
        if verdict.corrected is not None:
            corrected.append(sign * (verdict.corrected - truth[verdict.winner]))
        others += [sign * (mean - truth[name]) for name, mean in verdict.means.items()
                   if name != verdict.winner]

    def average(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return average(winner), average(corrected), average(others)


# -- printing -------------------------------------------------------------------------------------


def share(count: int, total: int) -> str:
    return f"{count}/{total} = {count / total:.2f}" if total else f"{count}/0 = -"


def signed(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.3f}"


def verdict_text(value: float | None, met: bool) -> str:
    if value is None:
        return "- (no claim to judge)"
    return "met" if met else "MISSED"


def judged(f: Figures, case: Case) -> dict[str, tuple[str, str]]:
    """Each figure's text and whether the target is met (the new way's verdict)."""
    interval = f.overconfidence_interval
    over_met = f.overconfidence is not None and not math.isnan(f.overconfidence) and (
        abs(f.overconfidence) <= TARGETS["overconfidence"]
        or (interval is not None and interval[0] <= 0.0 <= interval[1]))
    rows = {
        "reliability (>= 0.90)": (
            share(f.reliable, f.confident),
            verdict_text(f.reliability,
                         f.reliability is not None and f.reliability >= TARGETS["reliability"])),
        "overconfidence (+-0.05 or 0 in 90%)": (
            f"{signed(f.overconfidence)} [{signed(interval[0]) if interval else '-'}, "
            f"{signed(interval[1]) if interval else '-'}]",
            verdict_text(f.overconfidence, over_met)),
        "  mean P(best) / mean agreement": (
            f"{f.mean_p_best:.3f} / {f.mean_agreement:.3f}"
            if f.mean_p_best is not None and f.mean_agreement is not None else "-", ""),
        "coverage (>= 0.85)": (
            share(f.covered, f.intervals) + (f" ({f.missing_intervals} without)"
                                             if f.missing_intervals else ""),
            verdict_text(f.coverage,
                         f.coverage is not None and f.coverage >= TARGETS["coverage"])),
        "resolution" + (" (>= 0.50)" if case.clear_winner else ""): (
            share(f.confident, f.studies),
            verdict_text(f.resolution, f.resolution is not None
                         and f.resolution >= TARGETS["resolution"])
            if case.clear_winner else ""),
        "winner / others against the reference": (luck_text(f.luck), ""),
        "winners named": (", ".join(f"{name} {count}" for name, count in f.winners.items()), ""),
    }
    return rows


def luck_text(luck: tuple) -> str:
    winner, corrected, others = luck
    if winner is None:
        return "-"
    text = f"{winner:+.4f}"
    if corrected is not None:
        text += f" (corrected {corrected:+.4f})"
    return text + f" / {others:+.4f}" if others is not None else text


def print_table(case: Case, reference: Reference, found: dict[str, Figures]) -> None:
    """The figures of one task, old and new side by side, the new way's verdict last."""
    old, new = judged(found["old"], case), judged(found["new"], case)
    widths = [max(len(name) for name in new) + 2,
              max(len("old (seeds only)"), *(len(text) for text, _ in old.values())) + 2,
              max(len("new (nested)"), *(len(text) for text, _ in new.values())) + 2]
    print(f"\n{case.task}: reference winner {reference.winner}; cannot separate: "
          f"{', '.join(sorted(reference.inseparable))}")
    print(f"{'figure':<{widths[0]}}{'old (seeds only)':<{widths[1]}}"
          f"{'new (nested)':<{widths[2]}}target (new)")
    for name, (text, verdict) in new.items():
        print(f"{name:<{widths[0]}}{old[name][0]:<{widths[1]}}{text:<{widths[2]}}{verdict}")


def print_pooled(per_task: list[dict[str, Figures]]) -> None:
    """Reliability and coverage over every task's claims and intervals together."""
    print("\nall tasks together:")
    for way, label in (("old", "old (seeds only)"), ("new", "new (nested)")):
        reliable = sum(found[way].reliable for found in per_task)
        confident = sum(found[way].confident for found in per_task)
        covered = sum(found[way].covered for found in per_task)
        intervals = sum(found[way].intervals for found in per_task)
        print(f"  {label}: reliability {share(reliable, confident)}, "
              f"coverage {share(covered, intervals)}")


# -- the run --------------------------------------------------------------------------------------


def folder_of(case: Case, plan: Plan) -> Path:
    """The case's folder of stores under ``--out`` (made if missing)."""
    folder = plan.out / case.folder_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def measure_case(case: Case, plan: Plan) -> tuple[Reference, dict[str, Figures]]:
    """Run (or reuse) the case's studies and compute its figures."""
    folder = folder_of(case, plan)
    started = time.perf_counter()
    print(f"[{case.task}] reference: {plan.reference_trials} trials x {plan.reference_seeds} "
          f"seeds of {', '.join(case.optimizers)}, {case.budget} steps per run", flush=True)
    url, reused = run_reference(case, plan, folder)
    reference = read_reference(case, url)
    print(f"[{case.task}] reference {plan.reference_trials} trials x {plan.reference_seeds} "
          f"seeds ({'reused' if reused else f'{time.perf_counter() - started:.0f} s'}): "
          f"{reference.summary}", flush=True)
    verdicts: dict[str, list[Verdict]] = {"new": [], "old": []}
    for index, (small_url, seconds) in enumerate(run_smalls(case, plan, folder)):
        read = read_small(case, small_url)
        for way in verdicts:
            verdicts[way].append(read[way])
        new, old = read["new"], read["old"]
        first_seed = SMALL_SEED_BASE + plan.small_seeds * index
        print(f"[{case.task}] small {index + 1}/{plan.small} (sampler seed "
              f"{SMALL_SEED_BASE + index}, seeds from {first_seed}, "
              f"{'reused' if not seconds else f'{seconds:.0f} s'}): new {new.winner} "
              f"P {fmt(new.p_best)}; old {old.winner} P {fmt(old.p_best)}", flush=True)
    return reference, {way: figures(found, reference) for way, found in verdicts.items()}


def fmt(p: float | None) -> str:
    return "-" if p is None else f"{p:.2f}"


def run_smalls(case: Case, plan: Plan, folder: Path):
    """Each small study's (URL, seconds) in order: in this process with one worker, else in a
    pool of ``workers`` processes (each study is still run by one process)."""
    if plan.workers == 1:
        for index in range(plan.small):
            yield run_small(case, plan, folder, index)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(plan.workers, mp_context=context) as pool:
        futures = [pool.submit(small_in_process, case, plan, folder, index)
                   for index in range(plan.small)]
        for future in futures:
            yield future.result()


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(CASES),
                        type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
                        help=f"comma-separated, among: {', '.join(CASES)}")
    parser.add_argument("--small", type=int, default=30, help="small studies per task")
    parser.add_argument("--workers", type=int, default=1, help="processes (one torch thread each)")
    parser.add_argument("--out", type=Path,
                        default=Path(tempfile.gettempdir()) / "tuner-calibration",
                        help="folder of the stores, kept for reuse")
    parser.add_argument("--check-recording", action="store_true",
                        help="only compare a recorded small study with the driver's, per task")
    parser.add_argument("--quick", action="store_true",
                        help="4 small studies and a reference of 12 trials x 3 seeds: a smoke run")
    arguments = parser.parse_args()
    unknown = [t for t in arguments.tasks if t not in CASES]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    if arguments.small < 2 or arguments.workers < 1:
        parser.error("--small must be at least 2 and --workers at least 1")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    plan = Plan(reference_trials=12 if arguments.quick else 32, reference_seeds=3,
                small=4 if arguments.quick else arguments.small, small_trials=6, small_seeds=2,
                workers=arguments.workers, out=arguments.out)
    one_thread()
    started = time.perf_counter()
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print("small studies: " + (
        "created and run by the driver, training seeds set by the study option first_seed"
        if first_seed_supported() else
        "drawn as the driver draws them, trained and recorded by this bench (the study "
        "option first_seed is not in this tuner)"), flush=True)
    print(f"stores in {plan.out}; {os.cpu_count()} cores, {plan.workers} worker(s)", flush=True)
    if arguments.check_recording:
        checks = [check_recording(CASES[task], plan, folder_of(CASES[task], plan))
                  for task in arguments.tasks]
        raise SystemExit(0 if all(checks) else 1)
    results = [(CASES[task], *measure_case(CASES[task], plan)) for task in arguments.tasks]
    for case, reference, found in results:
        print_table(case, reference, found)
    if len(results) > 1:
        print_pooled([found for _, _, found in results])
    print(f"\n{plan.small} small studies ({plan.small_trials} trials x {plan.small_seeds} seeds) "
          f"per task against a reference of {plan.reference_trials} trials x "
          f"{plan.reference_seeds} seeds; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
