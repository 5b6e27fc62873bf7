"""Learning-rate ratios between optimizers: how much smaller or larger one's best lr is.

``ratio = lr_a / lr_b`` of the two optimizers' best configurations; its interval is the 5%..95%
quantiles of the resampled ratio (:mod:`tuner.advice.bootstrap`). Printed the way people say it:
"lion's best lr is 8x (4x-12x) below adamw's". Only lrs that are step sizes are compared; one
of a named convention is named beside it ("muon's best lr (muon/match_rms_adamw) is 1.2x above
adamw's"), and a multiplier gets no ratio (:mod:`tuner.advice.lr_meaning`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tuner.advice.lr_meaning import STEP_SIZE, named


@dataclass
class LrRatio:
    """``optimizer``'s best lr over ``reference``'s: ``ratio`` and its 5%..95% interval;
    ``optimizer_meaning`` and ``reference_meaning`` say what each lr is."""

    optimizer: str
    reference: str
    ratio: float
    low: float | None
    high: float | None
    optimizer_meaning: str = STEP_SIZE
    reference_meaning: str = STEP_SIZE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def factor_text(self) -> str:
        """``8x (4x-12x) below``, ``3x (2x-5x) above``, ``1x (0.5x-2x)``."""
        below = self.ratio < 1
        factor = 1 / self.ratio if below else self.ratio
        interval = ""
        if self.low is not None and self.high is not None:
            low, high = (1 / self.high, 1 / self.low) if below else (self.low, self.high)
            interval = f" ({_factor(low)}-{_factor(high)})"
        if close_to_one(self.ratio):
            return f"1x{interval}"
        return f"{_factor(factor)}{interval} {'below' if below else 'above'}"

    def sentence(self) -> str:
        """``lion's best lr is 8x (4x-12x) below adamw's``; an lr of a named convention is
        named: ``muon's best lr (muon/match_rms_adamw) is 2x below adamw's``."""
        mine = f"{self.optimizer}'s best lr{named(self.optimizer_meaning)}"
        theirs = f"{self.reference}'s{named(self.reference_meaning)}"
        if close_to_one(self.ratio):
            settled = self.low is None or (close_to_one(self.low) and close_to_one(self.high))
            return (f"{mine} is about {theirs}"
                    + ("" if settled else f" ({self.factor_text()})"))
        return f"{mine} is {self.factor_text()} {theirs}"


def close_to_one(ratio: float) -> bool:
    """Whether a ratio prints as 1x (within 5%)."""
    return abs(ratio - 1) < 0.05


def _factor(value: float) -> str:
    """``8x``, ``1.5x``, ``120x``: two significant digits."""
    return f"{value:.2g}x" if value < 100 else f"{value:.0f}x"
