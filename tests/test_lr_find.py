"""The learning-rate range test: the algorithm on a known curve, and on a real task."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from tuner.cli import cli
from tuner.lr_find import LrFindError, lr_schedule, range_test, smooth_losses, suggest_lr


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_schedule_is_geometric_from_start_to_end():
    lrs = lr_schedule(1e-6, 1.0, 7)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert all(r == pytest.approx(10.0) for r in ratios)
    with pytest.raises(LrFindError):
        lr_schedule(1.0, 1e-3, 10)


def test_smoothing_is_bias_corrected():
    # a constant loss stays exactly constant from the first step (no pull towards zero)
    assert smooth_losses([2.0] * 5) == pytest.approx([2.0] * 5)
    smoothed = smooth_losses([1.0, 3.0], beta=0.5)
    assert smoothed == pytest.approx([1.0, (0.5 * 0.5 + 0.5 * 3.0) / 0.75])


def test_suggestion_is_the_steepest_descent_and_divergence_stops_the_test():
    """Loss = sigmoid-shaped drop centred at lr 1e-3 in log space, then a blow-up past 1e-1."""

    def step(lr: float) -> float:
        x = math.log10(lr)
        if x > -1:
            return 10.0 ** (2 * (x + 1)) * 50
        return 1.0 + 1.0 / (1.0 + math.exp(3.0 * (x + 3.0)))

    result = range_test(step, start=1e-7, end=10.0, steps=200, beta=0.0)
    assert result.diverged_at is not None and result.diverged_at > 0.1
    assert max(result.lrs) < result.diverged_at
    # with no smoothing the steepest point of the drop is its centre, 1e-3
    assert math.log10(result.suggested_lr) == pytest.approx(-3.0, abs=0.1)
    assert result.min_loss_lr < result.diverged_at
    assert suggest_lr([1e-3, 1e-2], [1.0, 0.5]) is None  # too short to tell


def test_lr_find_on_a_real_task_writes_its_plot(tmp_path):
    plot = tmp_path / "lr.png"
    result = invoke("lr-find", "--task", "logreg", "--optimizer", "sgd", "--start", "1e-5",
                    "--end", "100", "--steps", "60", "--device", "cpu", "--out", str(plot),
                    "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"lrs", "losses", "smoothed", "suggested_lr", "min_loss_lr", "diverged_at",
            "plot"} <= set(data)
    assert data["task"] == "logreg" and data["optimizer"] == "sgd"
    assert 1e-5 <= data["suggested_lr"] <= 100
    # the loss at the suggestion is lower than at the start of the ramp: training worked
    assert min(data["smoothed"]) < data["smoothed"][0]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    text = invoke("lr-find", "--task", "logreg", "--optimizer", "sgd", "--steps", "30",
                  "--device", "cpu")
    assert text.exit_code == 0 and "suggested lr" in text.output


def test_lr_find_bad_input_is_one_line(tmp_path):
    bad = invoke("lr-find", "--task", "logreg", "--optimizer", "sgd", "--start", "1",
                 "--end", "0.1", "--device", "cpu")
    assert bad.exit_code == 1
    assert bad.output.strip() == "Error: need 0 < start < end, got start=1, end=0.1"
    unknown = invoke("lr-find", "--task", "logreg", "--optimizer", "nope", "--device", "cpu")
    assert unknown.exit_code == 1 and "unknown optimizer 'nope'" in unknown.output
