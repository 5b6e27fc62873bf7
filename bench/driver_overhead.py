"""What the study driver costs: ``tuner study run`` against a bare loop training the same runs.

A study of M trials x K seeds on digits-mlp (random sampler, no pruner, the task's default
budget) runs through the driver in this process (claims, heartbeats, Optuna's storage, run
recording); a bare loop trains the very same configurations and seeds by calling
``tuner.training.train``. The sampler is seeded, so every repeat trains the same
configurations: the two loops alternate which goes first, with the same torch threads, and
the medians over the repeats are printed with the ratio driver / bare (target: at most 1.10).

Beside them, on the same database: Optuna's storage alone (ask, suggest the same parameters,
tell; as tuner opens it and with Optuna's own defaults) and tuner's own writes alone (claim row,
each run with its curve, the trial's close), per trial; and from one counted run, the SQL
statements and committed write transactions per trial of each, steady state (trials 2..M) and
for the worker's start and end.

    python bench/driver_overhead.py [--trials 8] [--seeds 1] [--repeats 5] [--budget 440]
                                    [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

TASK = "digits-mlp"


def study_spec(name: str, trials: int, seeds: int, budget: int, optimizer: str) -> Any:
    from tuner.driver.resolve import resolve

    return resolve({
        "name": name, "task": TASK, "optimizers": optimizer, "trials": trials, "seeds": seeds,
        "budget": budget, "pruner": "none", "sampler": "random",
    })


def driver_run(url: str, spec: Any) -> tuple[float, float]:
    """(seconds of ``run_study``, seconds of it spent inside ``train``)."""
    import tuner.training as training
    from tuner.driver import create, run_study

    inner = training.train
    in_train = [0.0]

    def timed_train(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            in_train[0] += time.perf_counter() - started

    create(spec, url)
    training.train = timed_train  # the driver imports train at call time
    try:
        started = time.perf_counter()
        report = run_study(spec.name, url)
        elapsed = time.perf_counter() - started
    finally:
        training.train = inner
    assert report.stopped == "finished", report
    return elapsed, in_train[0]


def configurations(url: str) -> list[dict]:
    from sqlalchemy import select

    from tuner.store import Trial, open_store

    with open_store(url, create=False) as store, store.session() as session:
        return [
            dict(params) for params in session.scalars(
                select(Trial.params).where(Trial.status == "complete").order_by(Trial.slot)
            )
        ]


def bare_run(configs: list[dict], seeds: int, budget: int, optimizer: str) -> tuple[float, list]:
    """(seconds, the RunResults) of training the configurations in a plain loop."""
    from tuner.training.loop import train

    results = []
    started = time.perf_counter()
    for params in configs:
        for seed in range(seeds):
            results.append(
                train(TASK, optimizer, params, seed, budget=budget, schedule="constant")
            )
    return time.perf_counter() - started, results


def optuna_storage_alone(url: str, name: str, configs: list[dict], space: Any,
                         as_tuner_opens_it: bool) -> float:
    """Seconds per trial of Optuna's SQLite storage: ask, suggest, tell (no training)."""
    import optuna

    from tuner.store.database import optuna_storage

    storage = optuna_storage(url) if as_tuner_opens_it else url
    study = optuna.create_study(storage=storage, study_name=name)
    for params in configs:
        study.enqueue_trial(params)
    started = time.perf_counter()
    for _ in configs:
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, 0.5)
    return (time.perf_counter() - started) / len(configs)


def tuner_writes_alone(url: str, name: str, configs: list[dict], results: list,
                       optimizer: str) -> float:
    """Seconds per trial of tuner's own writes as the driver makes them: the claim row, one
    transaction per run (run + curve; the last one also closes the trial)."""
    from tuner.plugin.registry import get_registry
    from tuner.store import open_store
    from tuner.store.claims import insert_claim, record_and_close
    from tuner.store.models import utcnow
    from tuner.store.studies import write_study
    from tuner.store.tasks import TaskRecord

    seeds = len(results) // len(configs)
    spec = study_spec(name, len(configs), seeds, 1, optimizer)
    with open_store(url, create=False) as store:
        study = write_study(store, spec, TaskRecord.from_task(get_registry().task(TASK)))
        started = time.perf_counter()
        for number, params in enumerate(configs):
            now = utcnow()
            trial_id = insert_claim(store, {
                "study_id": study.id, "optimizer": optimizer, "optuna_study_name": name,
                "optuna_trial_number": number, "params": params, "started_at": now,
                "heartbeat_at": now, "slot": number, "origin": "sampled",
            })
            runs = results[number * seeds:(number + 1) * seeds]
            for index, result in enumerate(runs):
                closing = ("complete", 0.5) if index + 1 == len(runs) else None
                record_and_close(store, trial_id, result, plugin_version=None,
                                 space_hash=None, closing=closing)
        return (time.perf_counter() - started) / len(configs)


class StatementCounter:
    """SQL statements and committed write transactions, tuner's tables apart from Optuna's."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self.counts: Counter = Counter()
        self.paused = False
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.paused:
            return
        owner = "tuner" if "tuner_" in statement else "optuna"
        self.counts[owner, "statements"] += 1
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            conn.info["writing"] = owner

    def _commit(self, conn: Any) -> None:
        owner = conn.info.pop("writing", None)
        if owner is not None and not self.paused:
            self.counts[owner, "commits"] += 1

    def snapshot(self) -> Counter:
        return Counter(self.counts)


def counted_run(url: str, spec: Any) -> tuple[dict, Counter]:
    """Statements and commits per trial (trials 2..M), and for the worker's start, its first
    trial (the recommended configuration, a fixed one) and its end together."""
    from tuner.driver import Worker, WorkerSettings, create

    create(spec, url)
    counter = StatementCounter()
    marks = [counter.snapshot()]
    worker = Worker(spec.name, url, settings=WorkerSettings.from_env(),
                    on_trial=lambda: marks.append(counter.snapshot()))
    worker.run()
    marks.append(counter.snapshot())
    counter.paused = True
    trials = spec.trials
    # marks: [before the worker, after trial 1, ..., after trial M, after the worker]
    steady = marks[trials] - marks[1]
    per_trial = {key: value / (trials - 1) for key, value in steady.items()}
    fixed = (marks[1] - marks[0]) + (marks[-1] - marks[trials])  # start + first trial + end
    return per_trial, fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=int, default=440, help="digits-mlp's default: 440")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    if args.trials < 2:
        parser.error("--trials must be at least 2")

    import optuna
    import torch

    from tuner.plugin.registry import get_registry
    from tuner.training.loop import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    # Both loops run in this process with the same thread count; on shared cores more than
    # one thread makes run times swing by several times (see the training-loop section).
    torch.set_num_threads(args.threads)
    train(TASK, args.optimizer, {}, 0, budget=50)  # warm up: data, kernels, imports
    space = get_registry().optimizer(args.optimizer).space
    median = statistics.median

    rows: dict[str, list[float]] = {k: [] for k in (
        "ratio", "own", "overhead", "optuna_tuner", "optuna_plain", "writes", "trial")}
    with tempfile.TemporaryDirectory() as folder:
        # The counted run doubles as a warm-up of the driver and gives the configurations.
        url = f"sqlite:///{Path(folder) / 'counted.db'}"
        spec = study_spec("counted", args.trials, args.seeds, args.budget, args.optimizer)
        per_trial, fixed = counted_run(url, spec)
        configs = configurations(url)
        assert len(configs) == args.trials
        for repeat in range(args.repeats):
            url = f"sqlite:///{Path(folder) / f'bench{repeat}.db'}"
            spec = study_spec(f"bench{repeat}", args.trials, args.seeds, args.budget,
                              args.optimizer)
            if repeat % 2:
                bare, results = bare_run(configs, args.seeds, args.budget, args.optimizer)
                driver, in_train = driver_run(url, spec)
            else:
                driver, in_train = driver_run(url, spec)
                bare, results = bare_run(configs, args.seeds, args.budget, args.optimizer)
            assert configurations(url) == configs, "the seeded sampler drew other trials"
            rows["optuna_tuner"].append(
                optuna_storage_alone(url, "alone-tuner", configs, space, True))
            rows["optuna_plain"].append(
                optuna_storage_alone(url, "alone-plain", configs, space, False))
            rows["writes"].append(
                tuner_writes_alone(url, "writes-alone", configs, results, args.optimizer))
            rows["ratio"].append(driver / bare)
            rows["own"].append(driver / in_train)
            rows["overhead"].append((driver - in_train) / args.trials)
            rows["trial"].append(bare / args.trials)
            print(f"repeat {repeat}: driver {driver:.2f} s (training {in_train:.2f} s), "
                  f"bare loop {bare:.2f} s; driver / bare {driver / bare:.3f}, "
                  f"driver / its own training {driver / in_train:.3f}")
    ms = {key: median(values) * 1000 for key, values in rows.items()}
    print(f"{TASK}, {args.trials} trials x {args.seeds} seeds x {args.budget} steps, "
          f"{args.threads} thread(s), {args.repeats} repeats (medians):")
    print(f"  driver / bare loop:            {median(rows['ratio']):.3f}  (target <= 1.10)")
    print(f"  driver / its training time:    {median(rows['own']):.3f}  (immune to load drift "
          "between the two loops)")
    print(f"  bare trial:                    {ms['trial']:.1f} ms")
    print(f"  driver overhead per trial:     {ms['overhead']:.1f} ms (start and end included)")
    print(f"  Optuna's storage alone:        {ms['optuna_tuner']:.1f} ms per trial as tuner "
          f"opens it, {ms['optuna_plain']:.1f} ms with Optuna's defaults (ask, suggest, tell)")
    print(f"  tuner's own writes alone:      {ms['writes']:.1f} ms per trial (claim, runs, close)")
    for owner in ("optuna", "tuner"):
        print(f"  {owner + ':':7s} {per_trial.get((owner, 'statements'), 0):5.1f} statements, "
              f"{per_trial.get((owner, 'commits'), 0):4.1f} commits per trial; start + first "
              f"trial + end: {fixed.get((owner, 'statements'), 0):.0f} statements, "
              f"{fixed.get((owner, 'commits'), 0):.0f} commits")


if __name__ == "__main__":
    main()
