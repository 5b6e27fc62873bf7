"""Benchmark: which torch.optim implementation (single-tensor, foreach, fused) is fastest on CPU.

Two ~5M-parameter MLPs: a wide one (1024-2048-1536-10, 6 tensors) and a deep one (20 x 512x512
layers, 40 tensors, where per-tensor overhead shows). Gradients are random and fixed; only
``optimizer.step()`` is timed. Implementations are interleaved round by round and the median
per-step time is reported, with the ratio to the default (single-tensor on CPU).

    python bench/bench_torch_optim_impl.py [--rounds 7] [--steps 10] [--threads N] [case ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

CASES: dict[str, tuple[type, dict]] = {
    "sgd": (torch.optim.SGD, {"lr": 1e-2}),
    "momentum": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {"lr": 1e-2}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 1e-3}),
    "adadelta": (torch.optim.Adadelta, {"lr": 1.0}),
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3}),
    "amsgrad": (torch.optim.Adam, {"lr": 1e-3, "amsgrad": True}),
    "adamax": (torch.optim.Adamax, {"lr": 2e-3}),
    "nadam": (torch.optim.NAdam, {"lr": 2e-3}),
    "radam": (torch.optim.RAdam, {"lr": 1e-3}),
    "adafactor": (torch.optim.Adafactor, {"lr": 1e-2}),
    "rprop": (torch.optim.Rprop, {"lr": 1e-2}),
    "asgd": (torch.optim.ASGD, {"lr": 1e-2, "t0": 0}),
}


def models() -> dict[str, torch.nn.Module]:
    wide = torch.nn.Sequential(
        torch.nn.Linear(1024, 2048), torch.nn.ReLU(),
        torch.nn.Linear(2048, 1536), torch.nn.ReLU(),
        torch.nn.Linear(1536, 10),
    )
    deep = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(20)])
    return {"wide": wide, "deep": deep}


def implementations(cls: type) -> list[str]:
    names = ["default", "foreach"]
    if "fused" in cls.__init__.__code__.co_varnames:
        names.append("fused")
    return names


def time_steps(model: torch.nn.Module, cls: type, kwargs: dict, impl: str, steps: int) -> float:
    """Median milliseconds per step of one freshly built optimizer (two warm-up steps)."""
    params = list(model.parameters())
    extra = {} if impl == "default" else {impl: True}
    optimizer = cls(params, **kwargs, **extra)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"of {', '.join(CASES)}")
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for model_name, model in models().items():
        with torch.no_grad():
            for p in model.parameters():
                p.grad = torch.randn_like(p) * 1e-3
        count = sum(p.numel() for p in model.parameters())
        print(f"\n{model_name}: {count / 1e6:.2f}M parameters, "
              f"{len(list(model.parameters()))} tensors; median ms/step (ratio to default)")
        for case, (cls, kwargs) in CASES.items():
            if args.cases and case not in args.cases:
                continue
            impls = implementations(cls)
            results: dict[str, list[float]] = {impl: [] for impl in impls}
            for _ in range(args.rounds):
                for impl in impls:
                    results[impl].append(time_steps(model, cls, kwargs, impl, args.steps))
            medians = {impl: statistics.median(v) for impl, v in results.items()}
            base = medians["default"]
            cells = "  ".join(
                f"{impl} {ms:6.2f} ({ms / base:4.2f})" for impl, ms in medians.items()
            )
            best = min(medians, key=medians.get)
            print(f"  {case:9s} {cells}   fastest: {best}")


if __name__ == "__main__":
    main()
