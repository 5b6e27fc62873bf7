"""The training loop's overhead: ``tuner.training.train`` against a bare hand-written loop.

Both train ``digits-mlp`` with the registered ``adam`` at its defaults, same seed, same steps,
same batches (a seeded ``torch.randperm`` per epoch, the last incomplete batch dropped) and the
same evaluations (every 22 steps); both include building the data and the model. The bare loop
checks that it ended at exactly the same validation accuracy, so the two do the same work.
Rounds are interleaved (alternating which goes first) and the medians reported; the machine
is shared, so repeat.

With ``--dataloader``, the same comparison for a task fed by a ``torch.utils.data.Dataset``
(the digits as a map-style Dataset, through :func:`tuner.task.from_function`): ``train()``
against a bare loop over a ``DataLoader`` on the same Dataset, with a sampler that yields the
same seeded permutation, so both read the same examples in the same batches (checked again by
the final accuracy). Target: train()/bare <= 1.05.

Then, with ``--tasks``, one run of every reference task with adam at its defaults (median of
``--task-repeats``), the figure that says what one trial costs.

    python bench/training_overhead.py [--repeats 21] [--threads 1] [--budget STEPS]
        [--dataloader] [--tasks]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def val_accuracy(model: torch.nn.Module, val_x: torch.Tensor, val_y: torch.Tensor) -> float:
    """The validation accuracy, evaluated as the task does (eval mode, no gradients)."""
    model.eval()
    with torch.no_grad():
        accuracy = float((model(val_x).argmax(-1) == val_y).float().mean())
    model.train()
    return accuracy


def bare_loop(seed: int, budget: int, eval_every: int, batch_size: int) -> float:
    """The same training as ``train("digits-mlp", "adam", seed=seed)``, written out by hand."""
    from tuner.plugin.registry import get_registry

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
                accuracy = val_accuracy(model, val_x, val_y)
            if step == budget:
                break
    return accuracy


class Digits(torch.utils.data.Dataset):
    """The digits' training split as a map-style Dataset: one (image, label) per index."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


def digits_split(seed: int) -> tuple[Digits, tuple[torch.Tensor, torch.Tensor]]:
    from tuner.plugin.registry import get_registry

    torch.manual_seed(seed)
    problem = get_registry().task("digits-mlp").build(seed, torch.device("cpu"))
    return Digits(*problem.train), problem.val


def _mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def dataset_task(budget: int, eval_every: int, batch_size: int):
    """digits-mlp's model and split, fed through a Dataset."""
    from tuner.task.builders import from_function

    def build(seed: int):
        train, val = digits_split(seed)
        torch.manual_seed(seed)
        return _mlp(), train, val

    return from_function(name="digits-dataset", build=build, metric="val_accuracy",
                         direction="maximize", budget=budget, batch_size=batch_size,
                         eval_every=eval_every)


class SeededOrder(torch.utils.data.Sampler):
    """Indices in the order tuner's loop draws them: a permutation from a generator seeded with
    the run's seed, once per epoch, cut to whole batches."""

    def __init__(self, n: int, batch_size: int, seed: int, epochs: int) -> None:
        self.n, self.batch_size, self.epochs = n, batch_size, epochs
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        whole = (self.n // self.batch_size) * self.batch_size
        for _ in range(self.epochs):
            yield from torch.randperm(self.n, generator=self.generator)[:whole].tolist()

    def __len__(self) -> int:
        return self.epochs * (self.n // self.batch_size) * self.batch_size


def bare_dataloader_loop(seed: int, budget: int, eval_every: int, batch_size: int) -> float:
    """The Dataset task's training written out over a plain DataLoader."""
    from tuner.plugin.registry import get_registry

    train, (val_x, val_y) = digits_split(seed)
    torch.manual_seed(seed)
    model = _mlp()
    optimizer = get_registry().optimizer("adam").create(model.parameters(), {})
    epochs = -(-budget // (len(train) // batch_size))
    loader = torch.utils.data.DataLoader(
        train, batch_size=batch_size, drop_last=True,
        sampler=SeededOrder(len(train), batch_size, seed, epochs),
    )
    accuracy = 0.0
    for step, (x, y) in enumerate(loader, start=1):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step % eval_every == 0 or step == budget:
            accuracy = val_accuracy(model, val_x, val_y)
        if step == budget:
            break
    return accuracy


def compare(label: str, ours, bare, repeats: int) -> None:
    """Interleaved rounds of two loops that must end at the same accuracy; print the ratio."""
    ours_times, bare_times, ratios = [], [], []
    accuracy = None
    for round_index in range(repeats + 1):  # round 0 warms up both
        # alternate which one goes first, so that neither always runs on a warmer cache
        timed = [("ours", ours), ("bare", bare)]
        if round_index % 2:
            timed.reverse()
        seconds, finals = {}, {}
        for name, loop in timed:
            start = time.perf_counter()
            finals[name] = loop()
            seconds[name] = time.perf_counter() - start
        if finals["ours"] != finals["bare"]:
            raise SystemExit(f"{label}: the two loops disagree: train() {finals['ours']} vs "
                             f"bare {finals['bare']}")
        accuracy = finals["ours"]
        if round_index:
            ours_times.append(seconds["ours"])
            bare_times.append(seconds["bare"])
            ratios.append(seconds["ours"] / seconds["bare"])
    print(f"{label}, {repeats} interleaved rounds; final accuracy {accuracy:.4f} in both")
    print(f"  train():   median {statistics.median(ours_times) * 1000:7.1f} ms")
    print(f"  bare loop: median {statistics.median(bare_times) * 1000:7.1f} ms")
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"  ratio train()/bare: median of the rounds' ratios {statistics.median(ratios):.3f} "
          f"(quartiles {quartiles[0]:.3f} .. {quartiles[2]:.3f}); ratio of the medians "
          f"{statistics.median(ours_times) / statistics.median(bare_times):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=None, help="steps (default: the task's)")
    parser.add_argument("--tasks", action="store_true", help="also time every reference task")
    parser.add_argument("--dataloader", action="store_true",
                        help="also compare a Dataset-fed task with a bare DataLoader loop")
    parser.add_argument("--task-repeats", type=int, default=3)
    args = parser.parse_args()

    from tuner.plugin.registry import get_registry
    from tuner.training.loop import train

    torch.set_num_threads(args.threads)
    task = get_registry().task("digits-mlp")
    budget = args.budget or task.budget
    shape = (budget, task.eval_every, task.batch_size)
    compare(
        f"digits-mlp, adam defaults, {budget} steps, {args.threads} thread(s)",
        lambda: train("digits-mlp", "adam", {}, args.seed, budget=budget).final_metric,
        lambda: bare_loop(args.seed, *shape), args.repeats,
    )
    if args.dataloader:
        fed = dataset_task(*shape)
        compare(
            f"digits through a Dataset, adam defaults, {budget} steps, {args.threads} thread(s)",
            lambda: train(fed, "adam", {}, args.seed).final_metric,
            lambda: bare_dataloader_loop(args.seed, *shape), args.repeats,
        )

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
