"""The learning-rate range test's figure (``tuner lr-find --out``): the loss against lr."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tuner.report.drawing import pyplot, save

if TYPE_CHECKING:
    from tuner.training.lr_find import LrFindResult


def plot_lr_find(result: LrFindResult, path: str | Path) -> Path:
    """The range test: raw and smoothed loss against lr (log scale), the suggestions marked."""
    figure, axes = pyplot().subplots(figsize=(7, 4.2))
    if result.lrs:
        axes.plot(result.lrs, result.losses, color="0.75", lw=1, label="loss")
        axes.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
        low = min(min(result.smoothed), min(result.losses))
        high = max(result.smoothed[: max(1, len(result.smoothed) // 10)] + [low])
        span = max(high - low, abs(low) * 0.1, 1e-12)
        axes.set_ylim(low - 0.15 * span, high + 0.6 * span)
    if result.suggested_lr is not None:
        axes.axvline(result.suggested_lr, color="C3", ls="--",
                     label=f"steepest descent: {result.suggested_lr:.2g}")
    if result.min_loss_lr is not None:
        axes.axvline(result.min_loss_lr / 10, color="C2", ls=":",
                     label=f"min-loss lr / 10: {result.min_loss_lr / 10:.2g}")
    if result.diverged_at is not None:
        axes.axvline(result.diverged_at, color="0.3", lw=1,
                     label=f"stopped (diverged) at {result.diverged_at:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    title = "learning-rate range test"
    if result.task:
        title += f": {result.optimizer} on {result.task}"
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    return save(figure, path)
