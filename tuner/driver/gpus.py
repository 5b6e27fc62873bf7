"""Local GPU placement: which GPUs ``--gpus`` names, and which GPU each worker process sees.

``--gpus 0,1`` or ``--gpus all`` spreads the workers over those GPUs round-robin, several workers
per GPU allowed (``--workers 8 --gpus 0,1``: four on each). A worker process is given its GPU as
``CUDA_VISIBLE_DEVICES`` in its environment when it is spawned, so it holds the variable before it
imports torch, and inside it the GPU is ``cuda:0``. GPUs are found without importing torch:
``nvidia-smi -L``, else the entries of ``/proc/driver/nvidia/gpus``; when the parent already has
``CUDA_VISIBLE_DEVICES`` (a Slurm or Kubernetes allocation), only those GPUs are used.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tuner.driver.settings import DriverError

VISIBLE_DEVICES_ENV = "CUDA_VISIBLE_DEVICES"
NVIDIA_PROC_GPUS = Path("/proc/driver/nvidia/gpus")


def detect_gpus() -> list[str]:
    """The indices of this machine's NVIDIA GPUs ("0", "1", ...), restricted to
    ``$CUDA_VISIBLE_DEVICES`` when it is set; empty without GPUs. Never imports torch."""
    found = _nvidia_smi_gpus()
    if found is None:
        found = _proc_gpus()
    visible = os.environ.get(VISIBLE_DEVICES_ENV)
    if visible is None:
        return found
    allowed = [item.strip() for item in visible.split(",") if item.strip()]
    return [gpu for gpu in allowed if gpu in found]


def _nvidia_smi_gpus() -> list[str] | None:
    """The GPUs ``nvidia-smi -L`` lists; None when the tool is missing or fails."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        listing = subprocess.run(
            [tool, "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return re.findall(r"^GPU (\d+):", listing, flags=re.MULTILINE)


def _proc_gpus() -> list[str]:
    """One index per entry of the NVIDIA driver's ``/proc`` listing (PCI bus order)."""
    if not NVIDIA_PROC_GPUS.is_dir():
        return []
    return [str(index) for index in range(len(list(NVIDIA_PROC_GPUS.iterdir())))]


def parse_gpus(text: str, available: Sequence[str] | None = None) -> list[str]:
    """The GPUs ``--gpus`` names: ``all`` or comma-separated indices, each one present.

    ``available`` defaults to :func:`detect_gpus`. Raises DriverError (one line) when the machine
    has no GPU, an index is not one of its GPUs, or the text is malformed.
    """
    present = list(detect_gpus() if available is None else available)
    if not present:
        raise DriverError("--gpus: no GPU found on this machine (nvidia-smi -L lists none)")
    if text.strip() == "all":
        return present
    named = [item.strip() for item in text.split(",")]
    if not named or any(not item.isdigit() for item in named):
        raise DriverError(f"--gpus takes 'all' or indices such as 0,1; got {text!r}")
    missing = [item for item in named if item not in present]
    if missing:
        raise DriverError(
            f"--gpus: no GPU {', '.join(missing)} on this machine (it has {', '.join(present)})"
        )
    return list(dict.fromkeys(named))


def assign_gpus(workers: int, gpus: Sequence[str]) -> list[str]:
    """The GPU of each of ``workers`` workers: round-robin over ``gpus``."""
    if not gpus:
        raise DriverError("no GPU to place the workers on")
    return [gpus[index % len(gpus)] for index in range(workers)]


def worker_environments(workers: int, gpus: Sequence[str]) -> list[dict[str, str]]:
    """The environment variables each worker process is spawned with: its GPU, or none."""
    if not gpus:
        return [{} for _ in range(workers)]
    return [{VISIBLE_DEVICES_ENV: gpu} for gpu in assign_gpus(workers, gpus)]
