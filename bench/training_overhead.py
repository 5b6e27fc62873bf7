"""The training loop's overhead: ``tuner.training.train`` against a bare hand-written loop.

Both train ``digits-mlp`` with the registered ``adam`` at its defaults, same seed, same steps,
same batches (a seeded ``torch.randperm`` per epoch, the last incomplete batch dropped) and the
same evaluations (every 22 steps); both include building the data and the model. The bare loop
checks that it ended at exactly the same validation accuracy, so the two do the same work.
Rounds are interleaved (alternating which goes first) and the medians reported; the machine
is shared, so repeat.

Then, with ``--tasks``, one run of every reference task with adam at its defaults (median of
``--task-repeats``), the figure that says what one trial costs.

    python bench/training_overhead.py [--repeats 21] [--threads 1] [--budget STEPS] [--tasks]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def bare_loop(seed: int, budget: int, eval_every: int, batch_size: int) -> float:
    """The same training as ``train("digits-mlp", "adam", seed=seed)``, written out by hand."""
    from tuner.plugins import get_registry

    task = get_registry().task("digits-mlp")
    plugin = get_registry().optimizer("adam")
    torch.manual_seed(seed)
    problem = task.build(seed, torch.device("cpu"))
    model = problem.model
    optimizer = plugin.create(model.parameters(), {})
    (x, y), (val_x, val_y) = problem.train, problem.val
    n = len(y)
    steps_per_epoch = n // batch_size
    generator = torch.Generator().manual_seed(seed)
    accuracy = 0.0
    step = 0
    while step < budget:
        order = torch.randperm(n, generator=generator)
        for index in order[: steps_per_epoch * batch_size].view(steps_per_epoch, batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            step += 1
            if step % eval_every == 0 or step == budget:
                model.eval()
                with torch.no_grad():
                    accuracy = float((model(val_x).argmax(-1) == val_y).float().mean())
                model.train()
            if step == budget:
                break
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=None, help="steps (default: the task's)")
    parser.add_argument("--tasks", action="store_true", help="also time every reference task")
    parser.add_argument("--task-repeats", type=int, default=3)
    args = parser.parse_args()

    from tuner.plugins import get_registry
    from tuner.training import train

    torch.set_num_threads(args.threads)
    task = get_registry().task("digits-mlp")
    budget = args.budget or task.budget
    shape = (budget, task.eval_every, task.batch_size)
    ours_times, bare_times, ratios = [], [], []
    def time_ours() -> tuple[float, float]:
        start = time.perf_counter()
        result = train("digits-mlp", "adam", {}, args.seed, budget=budget)
        return time.perf_counter() - start, result.final_metric

    def time_bare() -> tuple[float, float]:
        start = time.perf_counter()
        accuracy = bare_loop(args.seed, *shape)
        return time.perf_counter() - start, accuracy

    for round_index in range(args.repeats + 1):  # round 0 warms up both
        # alternate which one goes first, so that neither always runs on a warmer cache
        if round_index % 2:
            (bare, accuracy), (ours, final) = time_bare(), time_ours()
        else:
            (ours, final), (bare, accuracy) = time_ours(), time_bare()
        if final != accuracy:
            raise SystemExit(f"the two loops disagree: train() {final} vs bare {accuracy}")
        if round_index:
            ours_times.append(ours)
            bare_times.append(bare)
            ratios.append(ours / bare)
    print(f"digits-mlp, adam defaults, {budget} steps, {args.threads} thread(s), "
          f"{args.repeats} interleaved rounds; final accuracy {accuracy:.4f} in both")
    print(f"  train():   median {statistics.median(ours_times) * 1000:7.1f} ms")
    print(f"  bare loop: median {statistics.median(bare_times) * 1000:7.1f} ms")
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"  ratio train()/bare: median of the rounds' ratios {statistics.median(ratios):.3f} "
          f"(quartiles {quartiles[0]:.3f} .. {quartiles[2]:.3f}); ratio of the medians "
          f"{statistics.median(ours_times) / statistics.median(bare_times):.3f}")

    if not args.tasks:
        return
    print(f"\none run per task, adam defaults, median of {args.task_repeats}:")
    print(f"  {'task':<12} {'steps':>6} {'seconds':>8} {'ms/step':>8}  metric")
    for name, task in sorted(get_registry().tasks.items()):
        times, last = [], None
        for _ in range(args.task_repeats):
            last = train(task, "adam", {}, args.seed)
            times.append(last.wall_seconds)
        seconds = statistics.median(times)
        print(f"  {name:<12} {last.steps:>6} {seconds:>8.2f} {seconds / last.steps * 1000:>8.2f}"
              f"  {task.metric} {last.final_metric:.4g} ({last.status})")


if __name__ == "__main__":
    main()
