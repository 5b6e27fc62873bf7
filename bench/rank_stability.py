"""Rank stability: does the same small study, repeated with fresh seeds, name the same optimizers?

One study (4 optimizers on digits-mlp; by default 6 trials x 2 seeds each, 220 steps per run,
TPE, no pruner) is repeated R times, each time in a fresh temporary SQLite store with a fresh
sampler seed, and ranked as ``tuner best`` ranks it. Two figures:

* top-3 agreement: over every pair of repetitions, the share whose three best optimizers are
  the same in the same order (and whether all R agree);
* confident winners: for each repetition whose winner has P(best) >= 0.9 (the advice names it
  without "too few runs"), the share of the *other* repetitions whose winner is the same one.

The study's training seeds are 0 .. seeds-1 in every study (the study spec fixes them), so the
repetitions differ in the configurations the sampler draws; the first trial of each optimizer,
its recommended configuration, is the same in all of them. The baseline beside the figures is
what chance would give: with 4 optimizers, a random top 3 agrees with another 1 time in 24.

    python bench/rank_stability.py                  # R = 3: about 5 minutes on 2 cores
    python bench/rank_stability.py -n 5 --trials 8
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

TASK = "digits-mlp"
OPTIMIZERS = ("adam", "adamw", "momentum", "lion")


def run_repetition(folder: Path, index: int, arguments: argparse.Namespace) -> dict:
    """One study in its own store; its ranking's order, means, P(best) and certainty."""
    from tuner import Study
    from tuner.advice import best

    url = f"sqlite:///{folder / f'repeat-{index}.db'}"
    started = time.perf_counter()
    Study.create(
        f"stability-{index}", task=TASK, optimizers=list(arguments.optimizers),
        trials=arguments.trials, seeds=arguments.seeds, db=url, budget=arguments.budget,
        sampler="tpe", pruner="none", seed=arguments.seed + index,
    ).run(workers=arguments.workers)
    ranking = best(TASK, db=url)
    ranked = [s for s in ranking.optimizers if s.mean is not None]
    return {
        "order": [s.optimizer for s in ranked],
        "means": {s.optimizer: s.mean for s in ranked},
        "p_best": {s.optimizer: s.p_best for s in ranked},
        "lr": {s.optimizer: s.lr for s in ranked},
        "confident": bool(ranking.certainty and ranking.certainty.settled),
        "seconds": time.perf_counter() - started,
    }


def top3_agreement(orders: list[list[str]]) -> tuple[int, int]:
    """(pairs of repetitions with the same ordered top 3, pairs)."""
    pairs = list(itertools.combinations(range(len(orders)), 2))
    same = sum(orders[a][:3] == orders[b][:3] for a, b in pairs)
    return same, len(pairs)


def confident_winner_agreement(results: list[dict]) -> tuple[int, int, int]:
    """(other repetitions agreeing with a confident winner, comparisons, confident repeats)."""
    agree = compared = confident = 0
    for index, result in enumerate(results):
        if not result["confident"] or not result["order"]:
            continue
        confident += 1
        winner = result["order"][0]
        for other_index, other in enumerate(results):
            if other_index == index:
                continue
            compared += 1
            agree += int(bool(other["order"]) and other["order"][0] == winner)
    return agree, compared, confident


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--repeats", type=int, default=3, help="repetitions R (>= 2)")
    parser.add_argument("--trials", type=int, default=6, help="trials per optimizer")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per trial")
    parser.add_argument("--budget", type=int, default=220, help="steps per run")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes")
    parser.add_argument("--seed", type=int, default=100, help="sampler seed of repetition 0")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                        type=lambda text: tuple(t.strip() for t in text.split(",") if t))
    arguments = parser.parse_args()
    if arguments.repeats < 2:
        parser.error("--repeats must be at least 2")

    folder = Path(tempfile.mkdtemp(prefix="tuner-stability-"))
    started = time.perf_counter()
    results = []
    try:
        for index in range(arguments.repeats):
            result = run_repetition(folder, index, arguments)
            results.append(result)
            shown = ", ".join(
                f"{name} {result['means'][name]:.4f}"
                + (f" (P {result['p_best'][name]:.2f})" if result["p_best"][name] is not None
                   else "")
                for name in result["order"])
            print(f"repeat {index} (sampler seed {arguments.seed + index}, "
                  f"{result['seconds']:.0f} s): {shown}; "
                  f"{'confident' if result['confident'] else 'too few runs'}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    orders = [result["order"] for result in results]
    same, pairs = top3_agreement(orders)
    everyone = all(order[:3] == orders[0][:3] for order in orders)
    agree, compared, confident = confident_winner_agreement(results)
    winners = [order[0] for order in orders if order]
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]]) or 'rank_stability.py'}")
    print(f"{len(arguments.optimizers)} optimizers x {arguments.trials} trials x "
          f"{arguments.seeds} seeds, {arguments.budget} steps, R = {arguments.repeats}; "
          f"total {time.perf_counter() - started:.0f} s")
    count = len(arguments.optimizers)
    chance = 1 / max(1, count * (count - 1) * (count - 2))
    print(f"top-3 identical: {same} of {pairs} pairs ({same / pairs:.2f}; chance "
          f"{chance:.2f}); all {arguments.repeats} identical: {'yes' if everyone else 'no'}")
    print(f"winners: {', '.join(winners)}")
    if confident:
        print(f"confident winners (P(best) >= 0.9): {confident} of {arguments.repeats} "
              f"repetitions; best again in {agree} of {compared} other repetitions "
              f"({agree / compared:.2f})")
    else:
        print(f"confident winners (P(best) >= 0.9): none of {arguments.repeats} repetitions")


if __name__ == "__main__":
    main()
