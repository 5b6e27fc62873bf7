"""Time one optimizer step of tuner's own optimizers against torch's SGD-momentum and AdamW.

All optimizers step the same ~5M-parameter model (five 1024x1024 linear layers) with the same
fixed gradients; Muon, which trains hidden matrices apart, takes the five weights as hidden and
leaves the biases to AdamW. Repetitions are interleaved (one step of each optimizer per round,
in a shuffled order) so that load from other processes hits all of them alike; the figures are
medians. The baselines are torch's ``SGD(momentum=0.9, foreach=True)`` and
``AdamW(fused=True)``.

Besides tuner's own (Lion, Tiger, ..., Muon, Adafactor, Rprop, ASGD), the optimizers of the
more-optimizers extra (pytorch_optimizer: SOAP, Shampoo, Kron, AdEMAMix, ...; skipped where it
is not installed) and SAM. SAM's step is timed with a closure that leaves the fixed gradients in
place: its perturbation, restore and inner step, not the second gradient evaluation it also
pays for. Naming optimizers times a chosen few (Shampoo's SVDs take seconds a step on a CPU).

    python bench/optimizer_step.py [--rounds 60] [--threads 2] [--device auto] [OPTIMIZER ...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch

from tuner.plugin.optimizer import split_by_role
from tuner.plugin.registry import get_registry

OURS = [
    ("lion", {}),
    ("tiger", {}),
    ("tiger", {"nan_guard": True}),
    ("signsgd", {}),
    ("signum", {}),
    ("ranger", {}),
    ("schedulefree-adamw", {}),
    ("lookahead-adamw", {}),
    ("muon", {}),
    ("adafactor", {}),
    ("rprop", {}),
    ("asgd", {}),
]

MORE = [
    ("soap", {}),
    ("shampoo", {}),
    ("shampoo", {"preconditioning_compute_steps": 10}),
    ("kron", {}),
    ("ademamix", {}),
    ("prodigy", {}),
    ("dadapt-adam", {}),
    ("mars", {}),
    ("came", {}),
    ("adan", {}),
    ("adopt", {}),
    ("lamb", {}),
    ("sam-adamw", {}),
]
"""The more-optimizers extra's (where pytorch_optimizer is installed) and SAM."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _model(device: torch.device) -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    layers = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(5)]).to(device)
    params = list(layers.parameters())
    for param in params:
        param.grad = torch.randn_like(param) * 1e-2
    return params


def _timer(step: Callable[[], object], device: torch.device) -> Callable[[], float]:
    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("only", nargs="*", metavar="OPTIMIZER",
                        help="time only these of tuner's optimizers (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    params = _model(device)
    count = sum(p.numel() for p in params)

    steppers: dict[str, Callable[[], float]] = {
        "torch SGD momentum (foreach)": _timer(
            torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=True).step, device
        ),
        "torch AdamW (fused)": _timer(torch.optim.AdamW(params, lr=1e-3, fused=True).step, device),
    }
    registry = get_registry()
    weights = [p for p in params if p.dim() == 2]
    for name, hp in OURS + MORE:
        if (args.only and name not in args.only) or name in registry.not_installed:
            continue
        label = name + "".join(f" {k}={v}" for k, v in hp.items())
        plugin = registry.optimizer(name)
        groups = split_by_role(params, weights) if plugin.splits_by_role else params
        optimizer = plugin.create(groups, hp)
        step = (lambda o=optimizer: o.step(lambda: None)) if plugin.needs_closure else (
            optimizer.step)
        steppers[label] = _timer(step, device)

    times: dict[str, list[float]] = {label: [] for label in steppers}
    for timed in steppers.values():  # the first steps create the state
        timed()
        timed()
    order = list(steppers)
    for _ in range(args.rounds):
        random.shuffle(order)
        for label in order:
            times[label].append(steppers[label]())

    medians = {label: statistics.median(values) for label, values in times.items()}
    sgd, adamw = medians["torch SGD momentum (foreach)"], medians["torch AdamW (fused)"]
    print(f"{count / 1e6:.2f}M parameters on {device}, {torch.get_num_threads()} threads, "
          f"{args.rounds} interleaved rounds, torch {torch.__version__}")
    print(f"{'optimizer':46} {'median ms':>10} {'/ SGD-mom':>10} {'/ AdamW':>8}")
    for label, median in medians.items():
        print(f"{label:46} {median * 1e3:10.2f} {median / sgd:10.2f} {median / adamw:8.2f}")


if __name__ == "__main__":
    main()
