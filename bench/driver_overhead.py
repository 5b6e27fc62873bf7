"""What the study driver costs: ``tuner study run`` against a bare loop training the same runs.

For each repeat, a fresh SQLite study of M trials (1 seed each, no pruner) on digits-mlp runs
through the driver in this process (claims, heartbeats, Optuna's storage, run recording), then
the very same M configurations are trained by calling ``tuner.training.train`` in a loop. The
ratio driver / bare is printed (target: at most 1.10), with the medians over the repeats.

Optuna's SQLite storage is timed on its own (ask, suggest the same parameters, tell, on an empty
study beside the runs), so its share of the driver's overhead can be read off.

    python bench/driver_overhead.py [--trials 8] [--seeds 1] [--repeats 3] [--budget 440]
                                    [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def driver_run(
    url: str, name: str, trials: int, seeds: int, budget: int, optimizer: str
) -> tuple[float, float]:
    """(seconds of ``run_study``, seconds of it spent inside ``train``)."""
    import tuner.training as training
    from tuner.driver import create, run_study
    from tuner.studyfile import resolve

    inner = training.train
    in_train = [0.0]

    def timed_train(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            in_train[0] += time.perf_counter() - started

    spec = resolve({
        "name": name, "task": "digits-mlp", "optimizers": optimizer, "trials": trials,
        "seeds": seeds, "budget": budget, "pruner": "none", "sampler": "random",
    })
    create(spec, url)
    training.train = timed_train  # the driver imports train at call time
    try:
        started = time.perf_counter()
        report = run_study(name, url)
        elapsed = time.perf_counter() - started
    finally:
        training.train = inner
    assert report.stopped == "finished", report
    return elapsed, in_train[0]


def configurations(url: str, name: str) -> list[dict]:
    from sqlalchemy import select

    from tuner.store import Trial, open_store

    with open_store(url, create=False) as store, store.session() as session:
        return [
            dict(params) for params in session.scalars(
                select(Trial.params).where(Trial.status == "complete").order_by(Trial.slot)
            )
        ]


def bare_run(configs: list[dict], seeds: int, budget: int, optimizer: str) -> float:
    from tuner.training import train

    started = time.perf_counter()
    for params in configs:
        for seed in range(seeds):
            train("digits-mlp", optimizer, params, seed, budget=budget, schedule="constant")
    return time.perf_counter() - started


def optuna_storage_alone(url: str, configs: list[dict], space) -> float:
    """Seconds per trial of Optuna's SQLite storage: ask, suggest, tell (no training)."""
    import optuna

    study = optuna.create_study(storage=url, study_name="storage-alone")
    started = time.perf_counter()
    for params in configs:
        study.enqueue_trial(params)
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, 0.5)
    return (time.perf_counter() - started) / len(configs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, default=440)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()

    import optuna
    import torch

    from tuner.plugins import get_registry
    from tuner.training import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    # Both loops run in this process with the same thread count; on shared cores more than
    # one thread makes run times swing by several times (see the training-loop section).
    torch.set_num_threads(args.threads)
    train("digits-mlp", args.optimizer, {}, 0, budget=50)  # warm up: data, kernels, imports
    space = get_registry().optimizer(args.optimizer).space

    ratios, inner_ratios, overheads, storage = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            url = f"sqlite:///{Path(folder) / f'bench{repeat}.db'}"
            name = f"bench{repeat}"
            driver, in_train = driver_run(
                url, name, args.trials, args.seeds, args.budget, args.optimizer
            )
            configs = configurations(url, name)
            assert len(configs) == args.trials
            bare = bare_run(configs, args.seeds, args.budget, args.optimizer)
            storage.append(optuna_storage_alone(url, configs, space))
            ratios.append(driver / bare)
            inner_ratios.append(driver / in_train)
            overheads.append((driver - in_train) / args.trials)
            print(f"repeat {repeat}: driver {driver:.2f} s (training {in_train:.2f} s), "
                  f"bare loop {bare:.2f} s; driver / bare {driver / bare:.3f}, "
                  f"driver / its own training {driver / in_train:.3f}")
    median = statistics.median
    print(f"digits-mlp, {args.trials} trials x {args.seeds} seeds x {args.budget} steps, "
          f"{args.repeats} repeats (medians):")
    print(f"  driver / bare loop:          {median(ratios):.3f}  (target <= 1.10)")
    print(f"  driver / its training time:  {median(inner_ratios):.3f}  (same, immune to load "
          "drift between the two loops)")
    print(f"  driver overhead per trial:   {median(overheads) * 1000:.1f} ms, of which Optuna's "
          f"SQLite storage alone (ask + suggest + tell): {median(storage) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
