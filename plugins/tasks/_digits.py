"""The 8x8 handwritten digits shipped in ``data/digits.npz``, split by seed."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from tuner_plugins.tasks._common import data_path

VALIDATION_SIZE = 360  # of 1,797 images: 1,437 train, 360 validation (20 %)
DIGITS_DATA = (
    "shipped: 1,797 8x8 images of the UCI Optical Recognition of Handwritten Digits set "
    "(Alpaydin & Kaynak), CC BY 4.0"
)


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    with np.load(data_path("digits.npz")) as archive:
        return archive["images"], archive["labels"]


Tensors = tuple[torch.Tensor, ...]


def digits(seed: int, device: torch.device) -> tuple[Tensors, Tensors]:
    """``((train_images, train_labels), (val_images, val_labels))``, images as float in [0, 1]
    with shape (n, 1, 8, 8), the split drawn from ``seed``."""
    images, labels = _load()
    order = np.random.default_rng(seed).permutation(len(labels))
    x = torch.from_numpy(images[order].astype(np.float32) / 16.0).unsqueeze(1).to(device)
    y = torch.from_numpy(labels[order].astype(np.int64)).to(device)
    val = VALIDATION_SIZE
    return (x[val:], y[val:]), (x[:val], y[:val])
