"""How advice prints numbers: metrics, spreads and learning rates as people write them."""

from __future__ import annotations

from collections.abc import Sequence


def format_metric(value: float | None, metric: str) -> str:
    """A metric value as people read it: accuracies in percent, others to 4 significant digits."""
    if value is None:
        return "-"
    if "acc" in metric.lower():
        return f"{value * 100:.1f}%"
    return f"{value:.4g}"


def format_spread(value: float | None, metric: str) -> str:
    """A standard deviation in the same units as :func:`format_metric` (without the % sign);
    ``?`` when it is unknown (one seed)."""
    if value is None:
        return "?"
    if "acc" in metric.lower():
        return f"{value * 100:.1f}"
    return f"{value:.2g}"


def format_lr(value: float | None) -> str:
    """A learning rate in the short form people write (``1e-3``, ``3.2e-4``)."""
    if value is None:
        return "-"
    mantissa, exponent = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def join_names(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
