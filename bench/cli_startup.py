"""How long the `tuner best --task T` process takes, against a process that only imports what a
store query needs.

Builds a small store in a temporary folder (a task record and synthetic runs written through
the store API: optimizers x configurations x seeds), then runs, N times alternating:

* ``tuner best --task T --db <store>`` (the whole process: start-up, imports, the read-only
  open, the query, the table);
* the baseline ``python -c "import sqlalchemy, sqlalchemy.orm, click, rich"``;
* ``tuner --help``.

Prints each median, the ratio best / baseline (target <= 1.5x) and which heavy modules the
`tuner best` process imported (it should import neither torch, optuna nor the plugins).

    python bench/cli_startup.py                 # 15 alternating rounds
    python bench/cli_startup.py --rounds 31
    python bench/cli_startup.py --against REV   # also REV's tuner, side by side (target <= 1.05x)

``--against REV`` takes ``tuner/`` of the git revision REV (``git archive``) into the temporary
folder and times its ``tuner best`` and ``tuner --help`` in the same alternating rounds (through
``PYTHONPATH``, with the same interpreter and packages), so a change to the code is measured
against the code before it under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "bench-task"
OPTIMIZERS = ("adam", "adamw", "sgd", "lion", "rmsprop", "nadam")
CONFIGS = 20
SEEDS = 3
BASELINE = "import sqlalchemy, sqlalchemy.orm, click, rich"
PROBE = """
import json, sys
from tuner.cli import cli
try:
    cli(sys.argv[2:], standalone_mode=False)
finally:
    heavy = sorted({m.split(".")[0] for m in sys.modules
                    if m.split(".")[0] in ("torch", "optuna", "tuner_plugins", "matplotlib")
                    or m == "tuner.plugin.registry"})
    open(sys.argv[1], "w").write(json.dumps(heavy))
"""


def build(path: Path) -> str:
    """A store with one task record and OPTIMIZERS x CONFIGS x SEEDS runs; returns its URL."""
    import random

    from tuner.store import TaskRecord, open_store, record_run, record_task
    from tuner.training.loop import RunResult

    url = f"sqlite:///{path}"
    rng = random.Random(0)
    store = open_store(url)
    record_task(store, TaskRecord(TASK, "vision", "val_accuracy", "maximize", 0.9))
    for optimizer in OPTIMIZERS:
        for _ in range(CONFIGS):
            lr = 10 ** rng.uniform(-4, -1)
            for seed in range(SEEDS):
                final = 0.95 - 0.02 * abs(lr - 1e-3) + rng.gauss(0, 0.003)
                record_run(store, None, RunResult(
                    task=TASK, optimizer=optimizer, params={"lr": lr}, seed=seed,
                    status="complete", final_metric=final, best_metric=final, steps=100,
                    param_count=1000, optimizer_state_bytes=8000, options={"budget": 100},
                ))
    store.dispose()
    return url


def tuner_command() -> list[str]:
    """The installed ``tuner`` script beside this interpreter, else ``python -m tuner``."""
    script = Path(sys.executable).with_name("tuner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tuner"]


def timed(command: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return elapsed


def checkout(revision: str, folder: Path) -> Path:
    """``tuner/`` of git ``revision``, unpacked under ``folder``; returns the folder to put on
    PYTHONPATH."""
    root = Path(__file__).resolve().parents[1]
    target = folder / "before"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "tuner"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--against", metavar="REV", help="also time tuner/ of this git revision")
    arguments = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tuner-cli-startup-"))
    try:
        url = build(folder / "tuner.db")
        environment = {**os.environ, "XDG_DATA_HOME": str(folder)}
        environment.pop("TUNER_DB", None)
        before_environment = None
        if arguments.against:
            before = checkout(arguments.against, folder)
            before_environment = {**environment, "PYTHONPATH": str(before)}
            environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        tuner = [sys.executable, "-m", "tuner"] if arguments.against else tuner_command()
        best = [*tuner, "best", "--task", TASK, "--db", url]
        baseline = [sys.executable, "-c", BASELINE]
        helping = [*tuner, "--help"]
        listing = folder / "modules.json"
        subprocess.run([sys.executable, "-c", PROBE, str(listing), *best[len(tuner):]],
                       capture_output=True, env=environment, check=True)
        heavy = json.loads(listing.read_text())
        for command in (best, baseline, helping):  # warm the page cache once
            timed(command, environment)
        times: dict[str, list[float]] = {"best": [], "baseline": [], "help": []}
        if before_environment is not None:
            times.update({"best before": [], "help before": []})
            timed(best, before_environment)
        for _ in range(arguments.rounds):
            times["best"].append(timed(best, environment))
            times["baseline"].append(timed(baseline, environment))
            times["help"].append(timed(helping, environment))
            if before_environment is not None:
                times["best before"].append(timed(best, before_environment))
                times["help before"].append(timed(helping, before_environment))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    runs = len(OPTIMIZERS) * CONFIGS * SEEDS
    print(f"store: {runs} runs, {len(OPTIMIZERS) * CONFIGS} configurations of task {TASK!r}; "
          f"{arguments.rounds} alternating rounds, medians; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  tuner best --task {TASK}: {medians['best']:.0f} ms "
          f"(min {min(times['best']) * 1000:.0f})")
    print(f"  python -c \"{BASELINE}\": {medians['baseline']:.0f} ms "
          f"(min {min(times['baseline']) * 1000:.0f})")
    print(f"  tuner --help: {medians['help']:.0f} ms (min {min(times['help']) * 1000:.0f})")
    ratio = medians["best"] / medians["baseline"]
    print(f"ratio best / baseline: {ratio:.2f}x; target <= 1.5x: "
          f"{'met' if ratio <= 1.5 else 'NOT met'}")
    print(f"heavy modules imported by tuner best: {', '.join(heavy) if heavy else 'none'}")
    if arguments.against:
        for name in ("best", "help"):
            ratio = medians[name] / medians[f"{name} before"]
            print(f"tuner {'best' if name == 'best' else '--help'}: {medians[name]:.0f} ms now, "
                  f"{medians[name + ' before']:.0f} ms at {arguments.against}: {ratio:.3f}x; "
                  f"target <= 1.05x: {'met' if ratio <= 1.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
