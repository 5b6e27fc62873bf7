"""Trials per hour of ``tuner study run --batch K`` against ``--batch 1``, end to end.

For each task and each K, two copies of one study (adam, N = max(K, --trials) trials x 1 seed,
the task's default budget, seeded random sampler, no pruner, weight decay fixed at 0 so that
every sampled configuration has the same active hyperparameters) run through the driver in this
process, one with ``batch=1`` and one with ``batch=K``: claims, heartbeats, Optuna's storage,
training, recording, everything ``tuner study run`` does, on a fresh SQLite file each. The
sampler is seeded per slot, so both copies train the very same configurations. The two arms
alternate which goes first, one torch thread; printed are the medians over the repeats, the
trials per hour of each and their ratio (targets on digits-mlp: >= 3x at K=16, >= 5x at K=64),
and the share of runs the batched copy really trained in batches (``options["batch"] > 1``).
A warm-up study (both arms, not timed) runs first, so one-time costs (imports, torch's first
vmap) are not charged to either.

    python bench/batched_trials.py [--tasks digits-mlp,logreg] [--ks 4,16,64] [--trials 16]
                                   [--repeats 1] [--budget STEPS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_once(folder: Path, task: str, trials: int, batch: int, budget: int | None,
             tag: str) -> tuple[float, int, int]:
    """(seconds of ``run_study``, runs, runs trained in a batch) for one fresh study."""
    from sqlalchemy import select

    from tuner.driver import create, run_study
    from tuner.driver.resolve import resolve
    from tuner.store import Run, open_store
    from tuner.study.spec import RangeOverride

    url = f"sqlite:///{folder / f'{tag}.db'}"
    spec = resolve({
        "name": "bench", "task": task, "optimizers": "adam", "trials": trials, "seeds": 1,
        "budget": budget, "pruner": "none", "sampler": "random",
        "ranges": [RangeOverride(None, "weight_decay", 0.0, 0.0)],
    })
    create(spec, url)
    started = time.perf_counter()
    report = run_study("bench", url, batch=batch)
    seconds = time.perf_counter() - started
    assert report.stopped == "finished", report
    with open_store(url, create=False) as store, store.session() as session:
        options = session.scalars(select(Run.options)).all()
    batched = sum(1 for o in options if (o or {}).get("batch", 1) > 1)
    return seconds, len(options), batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits-mlp,logreg")
    parser.add_argument("--ks", default="4,16,64")
    parser.add_argument("--trials", type=int, default=16,
                        help="trials per study (at least K)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=int, default=None, help="steps per run")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    tasks = [t for t in args.tasks.split(",") if t]
    ks = [int(k) for k in args.ks.split(",") if k]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for task in tasks:  # warm-up: imports, the first vmap, Optuna's first storage
            for batch in (1, 2):
                run_once(folder, task, 2, batch, 20, f"warm-{task}-{batch}")
        for task in tasks:
            for k in ks:
                trials = max(k, args.trials)
                times: dict[int, list[float]] = {1: [], k: []}
                share = []
                for repeat in range(args.repeats):
                    order = (1, k) if repeat % 2 == 0 else (k, 1)
                    for batch in order:
                        seconds, runs, batched = run_once(
                            folder, task, trials, batch, args.budget,
                            f"{task}-{k}-{batch}-{repeat}")
                        times[batch].append(seconds)
                        if batch == k:
                            share.append(batched / runs)
                one, many = statistics.median(times[1]), statistics.median(times[k])
                rows.append({
                    "task": task, "K": k, "trials": trials, "batch 1 s": one,
                    "batch K s": many, "trials/h batch 1": trials / one * 3600,
                    "trials/h batch K": trials / many * 3600, "ratio": one / many,
                    "batched runs": statistics.fmean(share),
                })
                print_row(rows[-1], header=len(rows) == 1)
    print(f"\n{args.repeats} repeat(s), medians; torch {torch.__version__}, 1 thread, "
          f"load average {os.getloadavg()[0]:.1f}")


def print_row(row: dict[str, Any], header: bool) -> None:
    if header:
        print("| task | K | trials | --batch 1 | --batch K | trials/h (1) | trials/h (K) | ratio "
              "| runs in batches |")
        print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {row['task']} | {row['K']} | {row['trials']} | {row['batch 1 s']:.1f} s "
          f"| {row['batch K s']:.1f} s | {row['trials/h batch 1']:,.0f} "
          f"| {row['trials/h batch K']:,.0f} | {row['ratio']:.2f}x "
          f"| {row['batched runs']:.0%} |", flush=True)


if __name__ == "__main__":
    main()
