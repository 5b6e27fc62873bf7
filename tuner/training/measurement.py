"""The wall time and peak memory of a stretch of training: :class:`Measurement`.

Both loops measure their runs with it (a batch of runs shares one measurement), so a run
alone and a run in a batch report the same figures, defined once here (see
:class:`tuner.training.result.RunResult` for what they mean to a reader).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["Measurement"]


def _import_lazily_loaded_modules() -> None:
    """Import what torch imports on the first optimizer it builds (``torch._dynamo``, about 2 s),
    so that a process's first run is not charged for it."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # an exotic torch build without it: nothing to warm up
        pass


class _CpuPeakMemory:
    """Peak resident memory of this process over a stretch of time, as cheaply as possible."""

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.linux = True
        except OSError:
            self.linux = False

    def peak(self) -> int | None:
        if self.linux:
            try:
                with open("/proc/self/status") as handle:
                    for line in handle:
                        if line.startswith("VmHWM:"):
                            return int(line.split()[1]) * 1024
            except OSError:
                pass
        try:
            import resource
        except ImportError:
            return None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class Measurement:
    """The wall time and peak memory of a stretch of training on ``device``, started at
    construction (after the lazily loaded modules are imported).

    The peak is ``torch.cuda.max_memory_allocated`` on CUDA, after a reset; on the CPU the
    process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``;
    elsewhere the process's lifetime peak from ``getrusage``)."""

    def __init__(self, device: torch.device) -> None:
        import torch

        _import_lazily_loaded_modules()
        self.device, self.cuda = device, device.type == "cuda"
        self.memory = _CpuPeakMemory()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        else:
            self.memory.start()
        self.started = time.perf_counter()

    def seconds(self) -> float:
        """Wall seconds since the measurement started."""
        return time.perf_counter() - self.started

    def peak(self) -> int | None:
        """Peak memory in bytes since the measurement started (None where it cannot be read)."""
        if self.cuda:
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        return self.memory.peak()
