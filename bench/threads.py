"""Torch threads per run: steps per second of every built-in task at 1, 2 and all cores'
threads, on an idle machine and with one core kept busy by another process, beside the threads
tuner chooses by default (:mod:`tuner.training.threads`).

Each measurement is one ``tuner.train`` run of adam at its defaults (seed 0, the task's batch),
of as many steps as one thread takes about ``--seconds`` for on this machine (a short pilot run
says how many; at least 10, at most the task's budget), evaluated after each half: its steps per
second are those of the second half, the steady steps (the first half holds the one-time costs:
"counting ms" is what counting the default's first step added, idle, once per run). "default" is
the same run with ``threads`` left to tuner: its first step is counted on one thread, then the
run takes the threads chosen, which it records (shown in brackets). "busy" runs have another
process spinning on one core: a bounded busy loop (it ends by itself after ``--busy-seconds``
and is killed once the busy measurements of a round are done). Rounds interleave the settings
and the two conditions, so that the machine's other load falls on each alike; the medians over
``--repeats`` rounds are printed, and the default's rate as a share of the best setting's
(target: at least 0.90 for every task, idle and busy). The load average printed at the start
and the end says how idle "idle" was.

Each row also gives the step's MFLOP, as tuner counts them, and the threads the default would
give the run on a machine of 64 cores (where it may use 63). ``--ladder`` measures models of
growing step cost instead (the digits MLP from width 128 to 8192, the character Transformer from
width 64 to 256): where a second thread starts to pay on an idle machine sets
``FLOPS_PER_THREAD``.

``--main-job`` times the README's main job end to end instead (``tuner study create
quickstart --from studies/quickstart.toml`` and ``tuner study run quickstart`` on a fresh SQLite
file, as subprocesses), idle and busy, with the default threads and with ``--threads`` at all
cores (what a worker took before the default existed).

    python bench/threads.py [--repeats 5] [--seconds 0.5] [--tasks a,b] [--ladder]
    python bench/threads.py --main-job [--repeats 2]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\n" \
            "while time.monotonic() < end:\n    pass\n"

LADDER = [("digits-mlp", {"width": w}) for w in (128, 512, 2048, 8192)] + \
         [("charlm", {"width": w}) for w in (64, 128, 256)]


@contextmanager
def one_core_busy(seconds: float) -> Iterator[None]:
    """Another process spinning on one core while the block runs (at most ``seconds``)."""
    spinner = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(seconds)])
    time.sleep(0.3)  # let it start spinning
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def step_flops(task) -> float:
    """The FLOPs of one adam step of ``task``, by torch's formulas (those tuner's default
    counts with)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from tuner.plugin.registry import get_registry
    from tuner.training import batches, optimizer_step

    torch.manual_seed(0)
    problem = task.build(0, torch.device("cpu"))
    parameters = list(problem.model.parameters())
    adam = get_registry().optimizer("adam")
    optimizer = adam.create([{"params": parameters}], adam.space.complete({}, owner="adam"))
    batch = next(batches(problem, task.batch_size, 0))
    with FlopCounterMode(display=False) as counter:
        optimizer_step(optimizer, functools.partial(task.loss, problem.model), batch,
                       parameters=parameters)
    return float(counter.get_total_flops())


def rate(task, half: int, threads: int | None) -> tuple[float, float, int]:
    """One run of ``2 * half`` steps, evaluated after each half: (steps per second over the
    second half, seconds of the first half, threads recorded). The first half holds the
    one-time costs (the first step, counted by the default), the second the steady steps."""
    from tuner.training.loop import train

    result = train(task, "adam", {}, 0, budget=2 * half, eval_every=half, threads=threads)
    if result.status != "complete":
        raise SystemExit(f"{task.name}: the run ended {result.status}: {result.error}")
    first, second = result.curve
    return half / (second.seconds - first.seconds), first.seconds, \
        int(result.options["threads"])


def measure(task, settings: list[int | None], args: argparse.Namespace) -> dict:
    """Medians of steps per second per (condition, setting), the default's threads, and what
    counting its first step cost (idle: its first half's seconds less one thread's)."""
    rate(task, 10, 1)  # one-time costs (imports, first calls) go here
    pilot, _, _ = rate(task, 10, 1)
    half = max(5, min(task.budget // 2, math.ceil(args.seconds * pilot / 2)))
    rates: dict[tuple[str, int | None], list[float]] = {}
    firsts: dict[int | None, list[float]] = {}
    chosen: dict[str, int] = {}
    for round_index in range(args.repeats):
        order = settings if round_index % 2 == 0 else settings[::-1]
        for condition in ("idle", "busy"):
            with one_core_busy(args.busy_seconds) if condition == "busy" else nullcontext():
                for setting in order:
                    value, first, used = rate(task, half, setting)
                    rates.setdefault((condition, setting), []).append(value)
                    if condition == "idle":
                        firsts.setdefault(setting, []).append(first)
                    if setting is None:
                        chosen[condition] = used
    counting = statistics.median(firsts[None]) - statistics.median(firsts[1])
    return {"steps": 2 * half, "chosen": chosen, "counting": counting,
            "rates": {key: statistics.median(values) for key, values in rates.items()}}


def print_table(rows: list[tuple[str, float, dict]], counts: list[int]) -> None:
    """One line per task: its step's MFLOP and the threads the default would give it with 64
    cores, then per condition every setting's steps per second, the default's, and the default
    as a share of the best setting."""
    from tuner.training.threads import threads_for

    cores_per_worker_of_64 = 63
    head = " | ".join(f"{c} thr" for c in counts)
    print(f"| task | MFLOP/step | default on 64 cores | steps | counting ms | idle: {head} "
          f"| default (threads) | default/best | busy: {head} | default (threads) "
          f"| default/best |")
    print("|---" * (5 + 2 * (len(counts) + 2)) + "|")
    misses = []
    for name, flops, found in rows:
        cells = [name, f"{flops / 1e6:.1f}", str(threads_for(flops, cores_per_worker_of_64)),
                 str(found["steps"]), f"{found['counting'] * 1e3:+.0f}"]
        for condition in ("idle", "busy"):
            rates = found["rates"]
            best = max(rates[(condition, c)] for c in counts)
            default = rates[(condition, None)]
            cells += [f"{rates[(condition, c)]:.0f}" for c in counts]
            cells += [f"{default:.0f} ({found['chosen'][condition]})", f"{default / best:.2f}"]
            if default / best < 0.90:
                misses.append(f"{name} {condition} {default / best:.2f}")
        print("| " + " | ".join(cells) + " |")
    print(f"target default/best >= 0.90: {'met everywhere' if not misses else 'missed: '}"
          + ", ".join(misses))


def main_job(args: argparse.Namespace, cores: int) -> None:
    """The README's main job end to end: seconds of ``tuner study run quickstart``, idle and
    busy, with the default threads and with ``--threads`` at every core."""
    tuner = [sys.executable, "-m", "tuner"]
    seconds: dict[tuple[str, str], list[float]] = {}
    variants = {"default": [], f"--threads {cores}": ["--threads", str(cores)]}
    for round_index in range(args.repeats):
        for condition in ("idle", "busy"):
            names = list(variants) if round_index % 2 == 0 else list(variants)[::-1]
            for name in names:
                with tempfile.TemporaryDirectory() as folder:
                    env = {**os.environ, "TUNER_DB": f"sqlite:///{folder}/tuner.db"}
                    subprocess.run([*tuner, "study", "create", "quickstart", "--from",
                                    str(ROOT / "studies" / "quickstart.toml")], env=env,
                                   check=True, capture_output=True)
                    with one_core_busy(args.busy_seconds) if condition == "busy" \
                            else nullcontext():
                        started = time.perf_counter()
                        subprocess.run([*tuner, "study", "run", "quickstart",
                                        *variants[name]], env=env, check=True,
                                       capture_output=True)
                        seconds.setdefault((condition, name), []).append(
                            time.perf_counter() - started)
    print(f"README main job (tuner study run quickstart), {args.repeats} rounds, medians:")
    for (condition, name), values in sorted(seconds.items()):
        print(f"  {condition:4s} {name:12s} {statistics.median(values):6.1f} s  "
              f"(rounds: {', '.join(f'{v:.1f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="about how long one measurement takes at one thread")
    parser.add_argument("--busy-seconds", type=float, default=900.0,
                        help="the longest the busy loop may spin")
    parser.add_argument("--tasks", default=None, help="comma-separated (default: every one)")
    parser.add_argument("--ladder", action="store_true", help="models of growing step cost")
    parser.add_argument("--main-job", action="store_true", help="the README's main job")
    args = parser.parse_args()

    from tuner.plugin.registry import get_registry
    from tuner.training.threads import available_cores

    cores = available_cores()
    print(f"{cores} cores, load average {os.getloadavg()[0]:.1f} at the start, torch threads "
          f"measured at {sorted({1, 2, cores})}", flush=True)
    if args.main_job:
        main_job(args, cores)
        return
    registry = get_registry()
    if args.ladder:
        tasks = [registry.task(name).with_params(params) for name, params in LADDER]
    else:
        names = args.tasks.split(",") if args.tasks else list(registry.tasks)
        tasks = [registry.task(name) for name in names]
    counts = sorted({1, 2, cores})
    rows = []
    for task in tasks:
        found = measure(task, [*counts, None], args)
        rows.append((task.name, step_flops(task), found))
        print(f"{task.name}: done", file=sys.stderr, flush=True)
    print_table(rows, counts)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
