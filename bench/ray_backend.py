"""Ray as a launcher: the same study run with 2 local worker processes and with
``--backend ray --workers 2``, side by side.

Each repeat creates two identical studies (digits-mlp, random sampler seeded alike, no pruner) on
fresh SQLite files and runs one with ``run_study(workers=2)`` and the other with
``run_study(workers=2, backend="ray")`` (a local Ray of 2 CPUs started and shut down by tuner);
the order alternates between repeats. Ray's start-up (``ray.init`` until the tasks are submitted,
seen as the first progress call) is reported apart, and so is its shut-down; the ratio compares
the time the workers took: local wall time against Ray's wall time from submission to the last
task's end (target: at most 1.15). Both spawn fresh Python processes that import torch and
claim from the same kind of store, so that time is part of both.

    python bench/ray_backend.py [--trials 6] [--optimizers adam,sgd] [--repeats 3]
                                [--budget 440]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

TASK = "digits-mlp"


def create(url: str, name: str, optimizers: str, trials: int, budget: int) -> None:
    from tuner.driver import create_study

    create_study({
        "name": name, "task": TASK, "optimizers": optimizers, "trials": trials, "seeds": 1,
        "budget": budget, "pruner": "none", "sampler": "random",
    }, url)


def timed_run(url: str, name: str, backend: str) -> dict[str, float]:
    """Wall times of one run: total, until the first progress call (start-up), and after the
    last one (shut-down)."""
    from tuner.driver import run_study

    marks: list[float] = []
    started = time.perf_counter()
    report = run_study(name, url, workers=2, backend=backend,
                       on_progress=lambda status: marks.append(time.perf_counter()))
    ended = time.perf_counter()
    assert report.stopped == "finished", report
    first = marks[0] - started
    last = marks[-1] - started
    return {"total": ended - started, "startup": first, "work": last - first,
            "shutdown": ended - started - last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--optimizers", default="adam,sgd")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=int, default=440)
    args = parser.parse_args()

    rows: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            order = ["local", "ray"] if repeat % 2 == 0 else ["ray", "local"]
            for backend in order:
                url = f"sqlite:///{Path(folder) / f'{backend}-{repeat}.db'}"
                name = f"bench-{backend}-{repeat}"
                create(url, name, args.optimizers, args.trials, args.budget)
                rows[backend].append(timed_run(url, name, backend))
                print(f"repeat {repeat} {backend:5}: " + ", ".join(
                    f"{key} {value:.2f} s" for key, value in rows[backend][-1].items()))

    def median(backend: str, key: str) -> float:
        return statistics.median(row[key] for row in rows[backend])

    runs = len(args.optimizers.split(",")) * args.trials
    print(f"\n{TASK}, {runs} trials x 1 seed, budget {args.budget}, 2 workers, "
          f"medians of {args.repeats}:")
    local = median("local", "total")
    ray_work = median("ray", "work")
    print(f"  local processes, wall time         {local:7.2f} s")
    print(f"  Ray tasks, submission to last end  {ray_work:7.2f} s  "
          f"(ratio ray / local {ray_work / local:.2f}, target <= 1.15)")
    print(f"  Ray start-up (ray.init)            {median('ray', 'startup'):7.2f} s")
    print(f"  Ray shut-down                      {median('ray', 'shutdown'):7.2f} s")
    print(f"  Ray total wall time                {median('ray', 'total'):7.2f} s  "
          f"(ratio {median('ray', 'total') / local:.2f})")


if __name__ == "__main__":
    main()
