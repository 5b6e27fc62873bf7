"""What an optimizer's lr is, and which learning rates the advice may compare.

Every run records its optimizer plugin's ``lr_meaning`` (``tuner_runs.lr_meaning``), so these
rules need neither the plugins nor torch:

- ``step size`` (SGD, Adam, Lion): compared with any other step size.
- a named convention (``muon/match_rms_adamw``, Adafactor's ``relative step size``, Rprop's
  ``initial step size``): a step size of its own kind. Its lr ratios are given, and name the
  convention beside the number, so that nobody reads "Muon's lr is 1x AdamW's" without knowing
  that Muon's lr was scaled to match AdamW's on purpose.
- ``multiplier`` (learning-rate-free methods: Prodigy, D-Adaptation): a factor on a step size
  the optimizer estimates itself, 1.0 by design. It is not a step size, so it is left out of lr
  ratios and of the lr chart, with the reason shown; its good-lr interval and width fit are its
  own and say "multiplier".
- an optimizer whose runs recorded several meanings (its plugin changed what its lr is) is
  left out the same way: its lrs are not even comparable with each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tuner.plugin.optimizer import MULTIPLIER, STEP_SIZE

__all__ = ["MULTIPLIER", "STEP_SIZE", "chart_points", "combined", "is_mixed", "left_out_reason",
           "named"]

_MIXED = "mixed"


def combined(meanings: Sequence[str]) -> str:
    """One meaning for display: the meaning, ``step size`` when none was recorded, or
    ``mixed (a, b)`` for several."""
    if not meanings:
        return STEP_SIZE
    if len(meanings) == 1:
        return meanings[0]
    return f"{_MIXED} ({', '.join(meanings)})"


def is_mixed(meaning: str) -> bool:
    """Whether a :func:`combined` meaning stands for several."""
    return meaning.startswith(f"{_MIXED} (")


def left_out_reason(optimizer: str, meanings: Sequence[str]) -> str | None:
    """Why ``optimizer``'s lr is left out of lr ratios and the lr chart, in one sentence; None
    when it takes part."""
    if len(meanings) > 1:
        return (f"{optimizer}'s runs recorded different lr meanings ({', '.join(meanings)}): "
                "its lrs are not comparable")
    if list(meanings) == [MULTIPLIER]:
        return (f"{optimizer}'s lr is a multiplier on a step size it estimates itself "
                "(learning-rate free), not a step size")
    return None


def named(meaning: str) -> str:
    """`` (muon/match_rms_adamw)`` to put after an lr of a named convention; empty for a step
    size."""
    return "" if meaning == STEP_SIZE else f" ({meaning})"


def chart_points(
    points: Mapping[str, list[dict[str, Any]]], meanings: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """The points of a chart that puts every optimizer's lr on one axis: those of optimizers
    whose lr takes part, each point marked with its ``lr_meaning`` (so the chart can name a
    convention), and, for each optimizer left out, why. ``meanings`` are the recorded ones
    (:func:`tuner.store.queries.lr_meanings`); an optimizer without any counts as a step
    size."""
    kept: dict[str, list[dict[str, Any]]] = {}
    left_out: dict[str, str] = {}
    for optimizer, found in points.items():
        recorded = list(meanings.get(optimizer, []))
        reason = left_out_reason(optimizer, recorded)
        if reason:
            left_out[optimizer] = reason
            continue
        meaning = combined(recorded)
        kept[optimizer] = [{**point, "lr_meaning": meaning} for point in found]
    return kept, left_out
