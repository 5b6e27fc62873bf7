"""How many torch threads a run trains with: the count asked for (``threads``), else one thread per
:data:`FLOPS_PER_THREAD` floating-point operations of its training step, at least one and at most
the cores it may use (``cores``).

Why so few. The models tuner trains are small: a step of the digits MLP is 2.6 MFLOP, a fraction of
a millisecond. Spread over several threads, each operation mostly waits for the others, and a
thread that shares its core with another busy process stalls every operation it takes part in until
the scheduler runs it again: with one core of two kept busy by another process, two threads made
every built-in task whose operations torch splits (all but the 2-D quadratic and Rosenbrock) 6 to
30 times slower than one thread, and so every larger model measured, while on an idle machine two
threads gained nothing on most of them and 15-30% on the two largest (bench/threads.py,
bench/RESULTS.md). More threads pay only when each of them gets enough arithmetic per step to
outweigh waiting for the others, and on cores no other process needs.

How the step's cost is known. A run's first step runs on one thread under a dispatch mode that adds
up, by torch's own formulas (those of ``FlopCounterMode``), the floating-point operations of its
matrix products and convolutions: the operations that are split between threads (elementwise and
sparse ones are not counted, so an embedding bag's step counts as almost nothing). The rest of the
run uses the count chosen from it, which is recorded on the run (``options["threads"]``). The count
is exact and the same on every machine: what a run chooses depends on its model, its batch and its
cores, never on how busy the machine happened to be, so a study run again on one machine trains on
the same threads (which matters: torch splits sums between threads, and another split may round the
last bits differently). A batch of K configurations (:mod:`tuner.training.batched`) counts its
vectorised step, K times one run's.

The cores. Those this process may run on (its CPU affinity: :func:`available_cores`), less one left
to the rest of the machine (the store, the progress display, another process: a thread that would
have to share that core with them is the one that stalls), shared between the local worker
processes of a study: :func:`cores_per_worker`. On a GPU the step runs on the device and the CPU
only feeds it: one thread.

A run sets torch's thread count for its own steps and puts back the count it found, so a caller of
:func:`tuner.train` keeps its own setting.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

__all__ = ["FLOPS_PER_THREAD", "RunThreads", "available_cores", "cores_per_worker",
           "threads_for"]

FLOPS_PER_THREAD = 2e8
"""Floating-point operations of a step per thread it gets (a step needs twice this for two).
From bench/threads.py's ladder of model sizes on an idle machine (bench/RESULTS.md): a second
thread gained nothing on a step of 2.6 to 10 MFLOP, 10-30% from 31 to 41 MFLOP, and 25-70%
(60 to 85% of twice as fast) from 166 MFLOP to 4.9 GFLOP, so each thread gets at least 200
MFLOP of the step. Every built-in task's step is below 400 MFLOP: one thread."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says, else every
    core of the machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cores_per_worker(workers: int = 1) -> int:
    """The cores each of ``workers`` local worker processes may spread its runs over: the
    available cores less one left to the rest of the machine, shared out (at least one)."""
    return max(1, (available_cores() - 1) // max(1, workers))


def threads_for(step_flops: float, cores: int) -> int:
    """The threads of a run whose step costs ``step_flops`` on a CPU with ``cores`` for it: one
    per :data:`FLOPS_PER_THREAD`, at least 1, at most ``cores``."""
    return max(1, min(int(cores), int(step_flops // FLOPS_PER_THREAD)))


class RunThreads:
    """The torch threads of one run (or one batch of runs), around its training.

    ``threads`` given: the run uses that many. None: on a CPU the run's first step runs on one
    thread while its operations are counted (:meth:`first_step`), then the run takes
    :func:`threads_for` them within ``cores`` (None: :func:`cores_per_worker` of one worker);
    elsewhere one thread. ``used`` is the count the run trained with after its first step, the
    one to record. Entering sets torch's count; leaving puts back the count found.
    """

    def __init__(self, threads: int | None, cores: int | None, device: Any) -> None:
        self.choosing = threads is None and getattr(device, "type", "cpu") == "cpu"
        self.cores = cores or cores_per_worker()
        self.used = threads or 1
        self._found: int | None = None

    def __enter__(self) -> RunThreads:
        import torch

        self._found = torch.get_num_threads()
        torch.set_num_threads(self.used)
        return self

    def __exit__(self, *exc_info: object) -> None:
        import torch

        if self._found is not None:
            torch.set_num_threads(self._found)

    def first_step(self) -> AbstractContextManager[None]:
        """Around the run's first step: when the threads are to be chosen, count the step's
        operations and switch to the count chosen from them; else nothing."""
        return self._counting() if self.choosing else nullcontext()

    @contextmanager
    def _counting(self) -> Iterator[None]:
        import torch

        counter = _flop_counter()()
        with counter:
            yield
        self.used = threads_for(counter.flops, self.cores)
        torch.set_num_threads(self.used)


@functools.cache
def _flop_counter() -> type:
    """A torch dispatch mode that adds up the FLOPs of the operations run under it, by torch's
    own formulas (``torch.utils.flop_counter.flop_registry``). Not ``FlopCounterMode`` itself:
    its per-module bookkeeping hooks into autograd in a way ``torch.autograd.grad`` inside a
    step (a Newton optimizer's Hessian) refuses."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class FlopCounter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.flops += formula(*args, **kwargs, out_val=out)
            return out

    return FlopCounter
