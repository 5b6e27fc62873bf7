"""The learning-rate range test: the algorithm on a known curve, and on a real task."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from tuner.cli import cli
from tuner.training.lr_find import LrFindError, lr_schedule, range_test, smooth_losses, suggest_lr


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
    device = invoke("lr-find", "--task", "logreg", "--optimizer", "sgd", "--device", "gpu0")
    assert device.exit_code == 1
    assert device.output.splitlines() == [
        "Error: unknown device 'gpu0'; choose from: auto, cpu, cuda[:N]"]
    inactive = invoke("lr-find", "--task", "logreg", "--optimizer", "adam", "--param",
                      "decoupled_weight_decay=maybe", "--device", "cpu")
    assert inactive.exit_code == 1 and inactive.output.splitlines() == [
        "Error: adam: parameter 'decoupled_weight_decay': 'maybe' is not one of [False, True]"]


def recording_task(name: str = "digits-mlp"):
    """The registered task, recording the inputs of every batch its loss is given."""
    from tuner.plugin.registry import get_registry

    class Recording(type(get_registry().task(name))):
        def __init__(self) -> None:
            self.seen: list = []

        def loss(self, model, batch):
            self.seen.append(batch[0].clone())
            return super().loss(model, batch)

    return Recording()


@pytest.mark.parametrize("batch_size", [None, 32])
def test_lr_find_sees_the_batches_a_training_run_sees(batch_size):
    import torch

    from tuner.training.loop import train
    from tuner.training.lr_find import lr_find

    k = 40  # more than one epoch of digits-mlp at batch size 32 (1,078 examples / 32 = 33)
    ranged, trained, other_seed = recording_task(), recording_task(), recording_task()
    found = lr_find(ranged, "sgd", start=1e-6, end=1e-5, steps=k, seed=3, device="cpu",
                    batch_size=batch_size)
    assert len(found.lrs) == k and found.diverged_at is None
    train(trained, "sgd", {"lr": 1e-3}, seed=3, budget=k, batch_size=batch_size, threads=1)
    train(other_seed, "sgd", {"lr": 1e-3}, seed=4, budget=k, batch_size=batch_size, threads=1)
    assert len(ranged.seen) == len(trained.seen) == k
    assert all(torch.equal(a, b) for a, b in zip(ranged.seen, trained.seen, strict=True))
    assert not torch.equal(ranged.seen[0], other_seed.seen[0])  # the seed picks the order


def test_lr_find_keeps_what_is_not_given_at_the_recommended_values():
    from tuner.plugin.registry import get_registry
    from tuner.plugin.space import SpaceError
    from tuner.training.lr_find import lr_find

    recommended = get_registry().optimizer("momentum").space.recommended()
    found = lr_find("logreg", "momentum", start=1e-4, end=1e-2, steps=5, device="cpu",
                    params={"dampening": 0.5})
    assert found.params == {
        k: (0.5 if k == "dampening" else v) for k, v in recommended.items() if k != "lr"}
    decayed = lr_find("logreg", "adam", start=1e-4, end=1e-2, steps=5, device="cpu",
                      params={"weight_decay": 0.01})
    assert decayed.params["decoupled_weight_decay"] is False  # active now: its default
    with pytest.raises(SpaceError, match="'decoupled_weight_decay' is inactive"):
        lr_find("logreg", "adam", steps=5, device="cpu", params={"decoupled_weight_decay": True})


def test_lr_find_takes_the_threads_a_training_run_takes_and_gives_torch_its_count_back():
    import torch

    from tuner.training.lr_find import LrFindError, lr_find

    found_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # logreg's step is a few kFLOP, far below a thread's share (FLOPS_PER_THREAD): one thread,
        # where torch's own default would be every core.
        chosen = lr_find("logreg", "sgd", start=1e-4, end=1e-2, steps=5, device="cpu")
        assert chosen.threads == 1 and chosen.to_dict()["threads"] == 1
        assert torch.get_num_threads() == 2
        asked = lr_find("logreg", "sgd", start=1e-4, end=1e-2, steps=5, device="cpu", threads=2)
        assert asked.threads == 2
        with pytest.raises(LrFindError, match="threads must be at least 1"):
            lr_find("logreg", "sgd", steps=5, device="cpu", threads=0)
    finally:
        torch.set_num_threads(found_before)
