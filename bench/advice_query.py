"""How long `tuner best` takes over a store of a million runs, on SQLite.

Fills an SQLite store (created by tuner, so it has the real schema and indexes) with generated
runs: many studies of several tasks, each study a handful of optimizers x trials x 3 seeds, with
a mix of complete, pruned, diverged and failed runs, each study at one of two budgets (so one
params set under two budgets is two configurations), with the task records a study create
writes. Then times :func:`tuner.advice.rank_task` (the query behind `tuner best --json`) for each
task, repeated, against a baseline beside it: the same ranking computed by fetching the task's
runs into Python (what a naive report does). The ranking includes what issue 12 added: P(best)
per optimizer and lr ratios with their intervals (a nested resample of each optimizer's
best configurations and its draws, B = 1000, at an equal number of trials per optimizer, and
what would settle an unsettled ranking), and the Pareto set; the same ranking without the
resample is timed beside it, and ``advise`` (defaults against tuning and importance besides)
once per task. The store's runs carry their protocol (each study's budget), so each task's
ranking compares the configurations of one budget, as ``tuner best`` does.

    python bench/advice_query.py                  # 1,000,000 runs in /tmp
    python bench/advice_query.py --runs 200000 --db /tmp/small.db

The store file is reused when it already holds the asked-for number of runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sqlite3
import statistics
import time
from pathlib import Path

TASKS = ("quadratic", "rosenbrock", "logreg", "digits-mlp", "digits-cnn", "charlm", "sparse")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad", "lion", "nadam")
STATE_MULTIPLE = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1,
                  "lion": 1, "nadam": 2}
BUDGETS = (500, 1000)
SEEDS = 3
TRIALS_PER_OPTIMIZER = 50
OPTIMIZERS_PER_STUDY = 5


def generate(path: Path, total: int, rng: random.Random) -> int:
    """Write about ``total`` runs into a fresh store at ``path``; returns the row count."""
    from tuner.plugin.registry import get_registry
    from tuner.store import TaskRecord, config_hash, open_store, params_hash, record_task
    from tuner.store.config_key import protocol_hash, protocol_key

    if path.exists():
        path.unlink()
    store = open_store(f"sqlite:///{path}")
    for task in TASKS:
        record_task(store, TaskRecord.from_task(get_registry().task(task)))
    store.dispose()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous = OFF")
    columns = (
        "study_id, task, optimizer, plugin_version, space_hash, params, params_hash, lr, seed, "
        "status, final_metric, best_metric, steps, steps_to_target, seconds_to_target, "
        "wall_seconds, optimizer_state_bytes, param_count, device, versions, created_at, "
        "options, config_hash, param_bytes, protocol"
    )
    insert = f"INSERT INTO tuner_runs ({columns}) VALUES ({', '.join('?' * 25)})"
    protocols = {}
    for budget in BUDGETS:
        meaning = protocol_key(budget, "steps", {"budget": budget, "schedule": "constant"})
        protocols[budget] = protocol_hash(meaning)
        connection.execute("INSERT INTO tuner_protocols (key, budget, unit, training) "
                           "VALUES (?, ?, 'steps', '{}')", (protocols[budget], budget))
    study_insert = (
        "INSERT INTO tuner_studies (name, task, optimizers, trials_per_optimizer, seeds, sampler,"
        " pruner, options, search_spaces, status, tuner_version, created_at) "
        "VALUES (?, ?, ?, ?, ?, 'tpe', 'median', '{}', '{}', 'finished', '0.1.0', "
        "'2025-01-01 00:00:00')"
    )
    written = 0
    study = 0
    param_count = 10_000
    while written < total:
        study += 1
        task = TASKS[study % len(TASKS)]
        chosen = rng.sample(OPTIMIZERS, OPTIMIZERS_PER_STUDY)
        cursor = connection.execute(
            study_insert,
            (f"study-{study}", task, json.dumps(chosen), TRIALS_PER_OPTIMIZER,
             json.dumps(list(range(SEEDS)))),
        )
        study_id = cursor.lastrowid
        options = {"budget": BUDGETS[study % len(BUDGETS)], "schedule": "constant"}
        options_text = json.dumps(options)
        rows = []
        for optimizer in chosen:
            sweet = 10 ** rng.uniform(-3.5, -1.0)
            for _ in range(TRIALS_PER_OPTIMIZER):
                lr = 10 ** rng.uniform(-5, 0)
                params = {"lr": lr, "weight_decay": rng.choice((0.0, 1e-4, 1e-2))}
                key = params_hash(params)
                config = config_hash(params, options)
                text = json.dumps(params)
                distance = abs(math.log10(lr / sweet))
                quality = 0.97 - 0.08 * distance**2
                for seed in range(SEEDS):
                    roll = rng.random()
                    if distance > 2.5 and lr > sweet or roll < 0.04:
                        status, final = "diverged", None
                    elif roll < 0.14:
                        status, final = "pruned", None
                    elif roll < 0.17:
                        status, final = "failed", None
                    else:
                        status, final = "complete", quality + rng.gauss(0, 0.004)
                    reached = final is not None and final > 0.9
                    rows.append((
                        study_id, task, optimizer, "0.1.0", "abc", text, key, lr, seed, status,
                        final, final, 1000, rng.randint(100, 900) if reached else None,
                        rng.uniform(1, 9) if reached else None, 10.0,
                        STATE_MULTIPLE[optimizer] * param_count * 4, param_count, "cpu", "{}",
                        "2025-01-01 00:00:00", options_text, config, param_count * 4,
                        protocols[options["budget"]],
                    ))
        connection.executemany(insert, rows)
        written += len(rows)
    connection.commit()
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()
    return written


def naive_best(url: str, task: str, maximize: bool) -> dict:
    """The baseline: every run of the task fetched into Python, grouped there by protocol,
    configuration and seed (a seed's value: the mean of its runs), and each optimizer's best
    configuration found under the protocol with the most observations (no resample)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT protocol, optimizer, config_hash, seed, status, final_metric "
                 "FROM tuner_runs WHERE task = :task"), {"task": task},
        ).all()
    engine.dispose()
    configs: dict = {}
    for protocol, optimizer, key, seed, status, final in rows:
        entry = configs.setdefault((protocol, optimizer, key), {"seeds": {}, "diverged": 0})
        if status == "complete" and final is not None:
            entry["seeds"].setdefault(seed, []).append(final)
        entry["diverged"] += status == "diverged"
    observed: dict = {}
    for (protocol, _, _), entry in configs.items():
        observed[protocol] = observed.get(protocol, 0) + len(entry["seeds"])
    chosen = max(observed, key=observed.get)
    best: dict = {}
    for (protocol, optimizer, _), entry in configs.items():
        if protocol != chosen or not entry["seeds"] or entry["diverged"]:
            continue
        values = [sum(v) / len(v) for v in entry["seeds"].values()]
        mean = sum(values) / len(values)
        if optimizer not in best or (mean > best[optimizer]) == maximize:
            best[optimizer] = mean
    return best


@contextlib.contextmanager
def _without_resample():
    """rank_task without what the resample adds: no contenders read, no expected best at
    equal trials, no nested resample (P(best), ties, lr intervals, what would settle it)."""
    import tuner.advice.ranking as ranking_module
    import tuner.store.queries as queries

    saved = (queries.contender_configs, ranking_module.weigh_evidence,
             ranking_module._expect)
    queries.contender_configs = lambda *args, **kwargs: {}
    ranking_module.weigh_evidence = lambda *args, **kwargs: ([], None, [], {})
    ranking_module._expect = lambda *args, **kwargs: None
    try:
        yield
    finally:
        (queries.contender_configs, ranking_module.weigh_evidence,
         ranking_module._expect) = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/tuner-bench-advice.db"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    from tuner.advice import advise, rank_task
    from tuner.store import HEAD_REVISION, open_store

    path = arguments.db
    count = 0
    if path.exists():
        with sqlite3.connect(path) as connection:
            try:
                revision = connection.execute(
                    "SELECT version_num FROM tuner_alembic_version").fetchone()[0]
                count = connection.execute("SELECT count(*) FROM tuner_runs").fetchone()[0]
            except sqlite3.Error:
                revision = None
            if revision != HEAD_REVISION:  # a store of an older schema: made again
                count = 0
    if count < arguments.runs:
        started = time.perf_counter()
        count = generate(path, arguments.runs, random.Random(arguments.seed))
        print(f"generated {count:,} runs in {time.perf_counter() - started:.1f} s")
    url = f"sqlite:///{path}"
    store = open_store(url, readonly=True)
    print(f"store: {path} ({path.stat().st_size / 1e6:.0f} MB), {count:,} runs, "
          f"{len(TASKS)} tasks")
    # warm the page cache once; then interleave the two measurements
    from tuner.store import get_task

    maximize = {task: get_task(store, task).direction == "maximize" for task in TASKS}
    rank_task(TASKS[0], db=store)
    naive_best(url, TASKS[0], maximize[TASKS[0]])
    advice_times: list[float] = []
    naive_times: list[float] = []
    per_task_rows = {}
    per_task_times: dict[str, list[float]] = {task: [] for task in TASKS}
    plain_times: list[float] = []
    for _ in range(arguments.repeat):
        for task in TASKS:
            started = time.perf_counter()
            with _without_resample():
                rank_task(task, db=store)
            plain_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            ranking = rank_task(task, db=store)
            advice_times.append(time.perf_counter() - started)
            per_task_times[task].append(advice_times[-1])
            per_task_rows[task] = sum(s.runs for s in ranking.optimizers)
            started = time.perf_counter()
            naive = naive_best(url, task, maximize[task])
            naive_times.append(time.perf_counter() - started)
            for standing in ranking.optimizers:  # the same best configuration's mean
                assert abs(naive[standing.optimizer] - standing.mean) < 1e-9, task
    advise_times = []
    for task in TASKS:
        ranking = rank_task(task, db=store)
        started = time.perf_counter()
        advise(task, db=store)
        advise_times.append(time.perf_counter() - started)
        winner = ranking.optimizers[0]
        ratio = ranking.optimizers[1].lr_ratio
        print(f"{task}: winner {winner.optimizer} P(best) {winner.p_best}, "
              f"{ratio.sentence() if ratio else '-'}; settled {ranking.certainty.settled}")
    store.dispose()
    print(f"the same ranking without P(best), lr ratios and ties from the resample: median "
          f"{statistics.median(plain_times) * 1000:.1f} ms (interleaved)")
    added = statistics.median(advice_times) - statistics.median(plain_times)
    print(f"so the contenders' read, the expected best at equal trials and the nested "
          f"resample add: {added * 1000:.1f} ms")
    print(f"advise (defaults, importance of the winner besides): median "
          f"{statistics.median(advise_times) * 1000:.1f} ms, max {max(advise_times) * 1000:.1f}")
    advice_ms = statistics.median(advice_times) * 1000
    naive_ms = statistics.median(naive_times) * 1000
    print(f"runs per task: {min(per_task_rows.values()):,}..{max(per_task_rows.values()):,}")
    print("tuner best per task (median ms): " + ", ".join(
        f"{task} {statistics.median(times) * 1000:.1f}" for task, times in per_task_times.items()
    ))
    print(f"tuner best (SQL aggregation): median {advice_ms:.1f} ms, "
          f"max {max(advice_times) * 1000:.1f} ms over {len(advice_times)} queries")
    print(f"baseline (runs fetched into Python): median {naive_ms:.1f} ms")
    print(f"speed-up: {naive_ms / advice_ms:.1f}x; target < 100 ms: "
          f"{'met' if advice_ms < 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
