"""The training loop: statuses, schedules, accumulation, early stopping, pruning, the CLI."""

from __future__ import annotations

import inspect
import json
import math
import os

import pytest
import torch
from click.testing import CliRunner

from tuner.cli import cli
from tuner.errors import UnknownNameError
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.space import Float, SpaceError
from tuner.task.contract import Problem, Task
from tuner.training.loop import (
    STATUSES,
    CurvePoint,
    Pruned,
    RunResult,
    train,
)
from tuner.training.options import TrainOptionsError
from tuner.training.steps import StepError, batches, optimizer_step, resolve_device

FAST = {"threads": 1}


def wide_sgd(name: str = "wide-sgd") -> OptimizerPlugin:
    """Plain SGD whose lr may be anything, to provoke divergence on purpose."""
    return OptimizerPlugin(
        name=name, summary="SGD with an unbounded lr range",
        space=[Float("lr", 1e-9, 1e12, default=0.1, log=True)],
        build=lambda params, hp: torch.optim.SGD(params, lr=hp["lr"]), state_multiple=0,
    )


class Scripted(Task):
    """A task whose metric follows a given script, one value per evaluation."""

    name = "scripted"
    summary = "metric from a script"
    kind = "analytic"
    metric = "loss"
    direction = "minimize"
    target = 0.0
    budget = 100
    eval_every = 10

    def __init__(self, metrics: list[float]) -> None:
        self.metrics = list(metrics)
        self.calls = 0

    def build(self, seed: int, device: torch.device) -> Problem:
        self.calls = 0
        return Problem(model=torch.nn.Linear(1, 1, bias=False).to(device))

    def loss(self, model: torch.nn.Module, batch: tuple) -> torch.Tensor:
        return (model.weight**2).sum() * 0 + 1.0

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        value = self.metrics[min(self.calls, len(self.metrics) - 1)]
        self.calls += 1
        return value


# -- results and statuses -------------------------------------------------------------------


def test_a_complete_run_reports_everything() -> None:
    result = train("digits-mlp", "adam", {"lr": 3e-3}, seed=0, budget=66, **FAST)
    assert isinstance(result, RunResult) and result.status == "complete"
    assert result.status in STATUSES and result.error is None
    assert [p.step for p in result.curve] == [22, 44, 66]
    assert result.steps == 66
    assert result.final_metric == result.curve[-1].metric
    assert result.best_metric == max(p.metric for p in result.curve)
    assert all(p.lr == 3e-3 for p in result.curve)
    assert all(0 < p.seconds <= result.wall_seconds for p in result.curve)
    assert result.param_count == 64 * 128 + 128 + 128 * 10 + 10
    assert result.param_bytes == 4 * result.param_count  # float32
    assert result.optimizer_state_bytes == 2 * 4 * result.param_count  # Adam: two fp32 moments
    assert result.peak_memory_bytes and result.peak_memory_bytes > 10_000_000  # the process RSS
    # (that the figure measures the run, not the process's past, is test_peak_memory_...)
    assert result.device == "cpu"
    assert set(result.versions) == {"torch", "python", "tuner"}
    assert result.params["lr"] == 3e-3 and "beta1" in result.params  # defaults filled in
    assert result.options["budget"] == 66 and result.options["batch_size"] == 64
    json.dumps(result.to_dict())


class Ballast(Scripted):
    """A task whose model carries ``megabytes`` of buffer, written (so resident) when built."""

    def __init__(self, megabytes: int) -> None:
        super().__init__([1.0])
        self.megabytes = megabytes

    def build(self, seed: int, device: torch.device) -> Problem:
        problem = super().build(seed, device)
        if self.megabytes:
            problem.model.register_buffer("ballast", torch.ones(self.megabytes * 2**18))
        return problem


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"),
                    reason="the per-run CPU peak needs Linux's /proc/self/clear_refs")
def test_peak_memory_is_the_runs_own_peak() -> None:
    """A run holding 256 MB more reports a peak at least that much higher, and the peak is reset
    at each run's start: the small run after the big one reports less than the big one."""
    ballast = 256 * 2**20
    before = train(Ballast(0), "sgd", {"lr": 0.1}, budget=2, **FAST)
    big = train(Ballast(256), "sgd", {"lr": 0.1}, budget=2, **FAST)
    after = train(Ballast(0), "sgd", {"lr": 0.1}, budget=2, **FAST)
    assert big.peak_memory_bytes >= before.peak_memory_bytes + 0.95 * ballast
    assert after.peak_memory_bytes < big.peak_memory_bytes - 0.9 * ballast
    assert big.param_bytes == after.param_bytes == 4  # the ballast is a buffer, not trained


def test_the_training_loss_is_the_mean_since_the_last_evaluation() -> None:
    seen: list[float] = []

    class Recording(Scripted):
        def loss(self, model: torch.nn.Module, batch: tuple) -> torch.Tensor:
            value = float(len(seen))
            seen.append(value)
            return (model.weight**2).sum() * 0 + value

    result = train(Recording([1.0]), "sgd", {"lr": 0.1}, budget=20, eval_every=10, **FAST)
    assert [p.train_loss for p in result.curve] == [4.5, 14.5]  # mean of 0..9, of 10..19


def test_an_absurd_learning_rate_diverges_within_a_few_steps_without_raising() -> None:
    result = train("digits-mlp", wide_sgd(), {"lr": 1e9}, seed=0, **FAST)
    assert result.status == "diverged"
    assert result.steps <= 5
    assert result.final_metric is None and result.error is None
    assert result.curve == []


def test_a_nan_loss_is_divergence() -> None:
    class Poisoned(Scripted):
        def loss(self, model: torch.nn.Module, batch: tuple) -> torch.Tensor:
            self.steps = getattr(self, "steps", 0) + 1
            value = float("nan") if self.steps == 15 else 1.0
            return (model.weight**2).sum() * 0 + value

    result = train(Poisoned([3.0, 2.0]), "sgd", {"lr": 0.1}, **FAST)
    assert result.status == "diverged" and result.steps == 15
    assert len(result.curve) == 1 and result.best_metric == 3.0 and result.final_metric is None


def test_a_loss_above_the_divergence_threshold_is_divergence() -> None:
    class Growing(Scripted):
        def loss(self, model: torch.nn.Module, batch: tuple) -> torch.Tensor:
            self.steps = getattr(self, "steps", 0) + 1
            return (model.weight**2).sum() * 0 + 2.0**self.steps

    result = train(Growing([1.0]), "sgd", {"lr": 0.1}, **FAST)
    # first loss 2, threshold 1000 x 2 = 2000: 2^11 = 2048 is the first above
    assert result.status == "diverged" and result.steps == 11
    capped = train(Growing([1.0]), "sgd", {"lr": 0.1}, divergence_threshold=100.0, **FAST)
    assert capped.steps == 7  # 2^7 = 128


def test_an_exception_inside_the_run_is_a_failed_result() -> None:
    class Broken(Scripted):
        def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
            raise RuntimeError("the validation set fell over\nsecond line")

    result = train(Broken([1.0]), "sgd", {"lr": 0.1}, **FAST)
    assert result.status == "failed"
    # the first line of the message, and where it was raised in the task's code
    line = inspect.getsourcelines(Broken.evaluate)[1] + 1
    assert result.error.startswith("RuntimeError: the validation set fell over (at ")
    assert result.error.endswith(
        f'test_training.py:{line} in evaluate: raise RuntimeError("the validation set fell '
        'over\\nsecond line"))')
    assert result.steps == 10


def test_bad_arguments_raise_before_training() -> None:
    with pytest.raises(UnknownNameError):
        train("no-such-task", "adam")
    with pytest.raises(UnknownNameError):
        train("quadratic", "no-such-optimizer")
    with pytest.raises(SpaceError, match="lr"):
        train("quadratic", "adam", {"lr": 50.0})
    with pytest.raises(SpaceError, match="unknown parameter"):
        train("quadratic", "adam", {"momentum": 0.9})
    with pytest.raises(TrainOptionsError, match="schedule"):
        train("quadratic", "adam", schedule="exponential")
    with pytest.raises(TrainOptionsError, match="unknown training option"):
        train("quadratic", "adam", warmpu=3)
    with pytest.raises(TrainOptionsError, match="budget"):
        train("quadratic", "adam", budget=0)
    with pytest.raises(TrainOptionsError, match="full batches"):
        train("digits-mlp", "lbfgs")
    with pytest.raises(TrainOptionsError, match="accumulation"):
        train("logreg", "adam", accumulate=2)


# -- learning-rate schedules --------------------------------------------------------------


def expected_lrs(schedule: str, lr: float, budget: int, warmup: int) -> list[float]:
    """The lr of every step, from the formulas (not from torch's schedulers)."""
    after = budget - warmup
    values = []
    for step in range(budget):
        if step < warmup:
            values.append(lr * (step + 1) / (warmup + 1))
            continue
        k = step - warmup
        if schedule == "constant":
            values.append(lr)
        elif schedule == "cosine":
            values.append(lr * (1 + math.cos(math.pi * k / after)) / 2)
        elif schedule == "linear":
            values.append(lr * (1 - k / after))
        elif schedule == "step":
            values.append(lr * 0.1 ** (k // (after // 3)))
    return values


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear", "step"])
@pytest.mark.parametrize("warmup", [0, 5])
def test_each_schedule_with_warmup_gives_the_expected_lr_sequence(
    schedule: str, warmup: int
) -> None:
    result = train("quadratic", "sgd", {"lr": 0.01}, schedule=schedule, warmup=warmup,
                   budget=20, eval_every=1, **FAST)
    assert result.status == "complete"
    got = [p.lr for p in result.curve]
    assert got == pytest.approx(expected_lrs(schedule, 0.01, 20, warmup), rel=1e-9, abs=1e-15)


def test_the_step_schedule_takes_its_step_size_and_gamma() -> None:
    result = train("quadratic", "sgd", {"lr": 0.01}, schedule="step", step_size=4, gamma=0.5,
                   budget=12, eval_every=1, **FAST)
    assert [p.lr for p in result.curve] == pytest.approx(
        [0.01 * 0.5 ** (s // 4) for s in range(12)]
    )


def test_reduce_on_plateau_cuts_the_lr_after_patience_flat_evaluations() -> None:
    metrics = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    result = train(Scripted(metrics), "sgd", {"lr": 0.1}, schedule="plateau",
                   plateau_patience=2, gamma=0.5, **FAST)
    lrs = [p.lr for p in result.curve]
    # evaluation 2 is the best (4.0); 3 and 4 are flat (patience 2 is used up after the 3rd flat
    # one, at evaluation 5), so the steps after evaluation 5 run at half the lr, and so on.
    assert lrs[:5] == [0.1] * 5
    assert lrs[5] == pytest.approx(0.05)
    assert lrs[-1] < 0.05


def test_warmup_before_plateau() -> None:
    improving = Scripted([30.0 - i for i in range(30)])
    result = train(improving, "sgd", {"lr": 0.1}, schedule="plateau", warmup=10,
                   budget=30, eval_every=1, **FAST)
    expected = [0.1 * (s + 1) / 11 for s in range(10)] + [0.1] * 20
    assert [p.lr for p in result.curve] == pytest.approx(expected)
    # flat metrics during the warmup do not count against the plateau's patience
    flat = train(Scripted([5.0] * 12 + [4.0]), "sgd", {"lr": 0.1}, schedule="plateau",
                 warmup=100, plateau_patience=1, budget=130, eval_every=10, **FAST)
    assert [p.lr for p in flat.curve][-1] == pytest.approx(0.1)


# -- the optimizer step: clipping, accumulation, closures, eval mode --------------------------


def test_gradient_clipping_bounds_the_step() -> None:
    result = train("quadratic", "sgd", {"lr": 1.0}, clip_norm=0.5, budget=1, **FAST)
    (x0, y0), (x1, y1) = result.trajectory
    assert math.hypot(x1 - x0, y1 - y0) == pytest.approx(0.5, rel=1e-6)
    # the direction is the gradient's, (2x, 20y) at (4, 3) = (8, 60)
    assert (x0 - x1) / (y0 - y1) == pytest.approx(8 / 60, rel=1e-5)


def test_accumulating_k_batches_of_b_equals_one_batch_of_k_times_b() -> None:
    big = train("digits-mlp", "sgd", {"lr": 0.1}, seed=3, batch_size=128, budget=30,
                eval_every=10, **FAST)
    accumulated = train("digits-mlp", "sgd", {"lr": 0.1}, seed=3, batch_size=32, accumulate=4,
                        budget=30, eval_every=10, **FAST)
    assert big.status == accumulated.status == "complete"
    for one, other in zip(big.curve, accumulated.curve, strict=True):
        assert one.step == other.step
        assert one.train_loss == pytest.approx(other.train_loss, rel=1e-5)
        assert one.metric == pytest.approx(other.metric, abs=1 / 360 + 1e-9)
    small = train("digits-mlp", "sgd", {"lr": 0.1}, seed=3, batch_size=32, budget=30,
                  eval_every=10, **FAST)
    assert small.curve[-1].train_loss != pytest.approx(big.curve[-1].train_loss, rel=1e-3)


def test_lbfgs_runs_through_the_closure_on_a_full_batch_task() -> None:
    result = train("logreg", "lbfgs", {}, budget=20, **FAST)
    assert result.status == "complete", result.error
    assert result.steps_to_target is not None  # quasi-Newton makes light of the conditioning


def test_the_optimizer_is_switched_to_eval_mode_around_every_evaluation() -> None:
    calls: list[str] = []

    class Switching(torch.optim.SGD):
        def eval(self) -> None:
            calls.append("eval")

        def train(self) -> None:
            calls.append("train")

    plugin = OptimizerPlugin(
        name="switching", summary="records eval/train", space=[Float("lr", 1e-4, 1.0, 0.1)],
        build=lambda params, hp: Switching(params, lr=hp["lr"]), state_multiple=0,
    )

    class Watching(Scripted):
        def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
            calls.append("evaluate")
            return 1.0

    train(Watching([1.0]), plugin, budget=30, **FAST)
    assert calls == ["eval", "evaluate", "train"] * 3


def test_the_shared_step_drives_a_closure_optimizer_and_returns_the_loss_before_it() -> None:
    x = torch.nn.Parameter(torch.tensor([4.0, 3.0]))

    class ReturnsNothing(torch.optim.SGD):
        def step(self, closure=None):  # a closure optimizer that forgets to return the loss
            with torch.enable_grad():
                closure()
            super().step()

    for optimizer in (torch.optim.LBFGS([x], lr=0.1, max_iter=3), ReturnsNothing([x], lr=0.01)):
        x.data = torch.tensor([4.0, 3.0])
        loss = optimizer_step(optimizer, lambda _: x[0] ** 2 + 10 * x[1] ** 2,
                              needs_closure=True)
        assert float(loss) == 106.0 and not loss.requires_grad
        assert float((x[0] ** 2 + 10 * x[1] ** 2).detach()) < 106.0


def test_the_shared_batches_are_a_seeded_permutation_per_epoch() -> None:
    examples = torch.arange(10.0)
    problem = Problem(model=torch.nn.Linear(1, 1), train=(examples, examples * 2))
    order = batches(problem, 3, seed=5)
    epoch = [next(order) for _ in range(3)]  # 10 // 3 = 3 batches, one example dropped
    seen = torch.cat([inputs for inputs, _ in epoch])
    assert len(set(seen.tolist())) == 9 and all(torch.equal(y, x * 2) for x, y in epoch)
    again = batches(problem, 3, seed=5)
    assert all(torch.equal(next(again)[0], inputs) for inputs, _ in epoch)
    assert next(batches(problem, None, seed=5)) is problem.train  # full batch: the whole set
    accumulated = next(batches(problem, 2, seed=5, accumulate=2))
    assert isinstance(accumulated, list) and [len(x) for x, _ in accumulated] == [2, 2]
    with pytest.raises(StepError, match="task 'tiny' has 10 training examples, fewer than"):
        next(batches(problem, 4, seed=5, accumulate=11, task="tiny"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_asking_for_cuda_without_it_is_one_line() -> None:
    with pytest.raises(StepError, match="^device 'cuda' asked for, but CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(StepError, match=r"^unknown device 'bogus'; choose from: auto, cpu"):
        resolve_device("bogus")


# -- stopping: early stopping, pruning ----------------------------------------------------


def test_early_stopping_stops_after_patience_evaluations_without_improvement() -> None:
    metrics = [5.0, 4.0, 3.0, 3.5, 3.2, 2.9, 3.0, 3.0, 3.0, 1.0]
    result = train(Scripted(metrics), "sgd", {"lr": 0.1}, patience=3, **FAST)
    # best 2.9 at evaluation 6 (step 60); 7, 8, 9 do not improve: stop at step 90
    assert result.status == "complete" and result.stopped_early
    assert result.steps == 90 and [p.step for p in result.curve][-1] == 90
    assert result.best_metric == 2.9 and result.final_metric == 3.0
    assert train(Scripted(metrics), "sgd", {"lr": 0.1}, patience=4, **FAST).steps == 100


def test_min_delta_sets_what_counts_as_an_improvement() -> None:
    metrics = [5.0, 4.95, 4.9, 4.85, 4.8, 4.75]
    result = train(Scripted(metrics), "sgd", {"lr": 0.1}, patience=2, min_delta=0.1, **FAST)
    assert result.steps == 30 and result.stopped_early


def test_a_callback_returning_true_prunes_and_keeps_the_partial_result() -> None:
    points: list[CurvePoint] = []

    def callback(point: CurvePoint) -> bool:
        points.append(point)
        return point.step >= 44

    result = train("digits-mlp", "adam", {}, callback=callback, **FAST)
    assert result.status == "pruned" and result.error is None
    assert [p.step for p in result.curve] == [22, 44] == [p.step for p in points]
    assert result.steps == 44 and result.final_metric == points[-1].metric


def test_a_callback_raising_pruned_or_optuna_trial_pruned_prunes() -> None:
    import optuna

    def raise_pruned(point: CurvePoint) -> None:
        raise Pruned()

    def raise_optuna(point: CurvePoint) -> None:
        raise optuna.TrialPruned()

    for callback in (raise_pruned, raise_optuna):
        result = train("quadratic", "sgd", {"lr": 0.01}, callback=callback, **FAST)
        assert result.status == "pruned" and len(result.curve) == 1 and result.steps == 5


# -- the command line ---------------------------------------------------------------------


def test_tuner_train_json_is_valid_and_matches_its_curve() -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["train", "--task", "quadratic", "--optimizer", "adam", "--param", "lr=0.1",
              "--seed", "1", "--schedule", "cosine", "--warmup", "10", "--threads", "1",
              "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "complete" and data["task"] == "quadratic" and data["seed"] == 1
    assert data["final_metric"] == data["curve"][-1]["metric"]
    assert data["params"]["lr"] == 0.1
    assert data["options"]["schedule"] == "cosine" and data["options"]["warmup"] == 10
    assert data["curve"][0]["lr"] == pytest.approx(0.1 * 5 / 11)
    assert len(data["trajectory"]) == 101


def test_tuner_train_prints_the_curve_as_a_table() -> None:
    result = CliRunner().invoke(
        cli, ["train", "--task", "quadratic", "--optimizer", "sgd", "--param", "lr=0.09",
              "--threads", "1"], catch_exceptions=False,
    )
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("quadratic with sgd (lr=0.09")
    assert "step" in lines[1] and "loss" in lines[1]
    assert lines[-1].startswith("complete after 100 steps")
    # gradient descent: f_t = 16 (1 - 2 lr)^2t + 90 (1 - 20 lr)^2t at lr 0.09;
    # the evaluations come every 5 steps
    f = [16 * 0.82 ** (2 * t) + 90 * 0.64**t for t in range(101)]
    first = next(t for t in range(0, 101, 5) if f[t] <= 0.01)
    assert f"reached at step {first}" in lines[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "lr=fast"], "Error: adam: parameter 'lr': cannot read 'fast' as float(log)"),
        (["--param", "lr=5"], "Error: adam: parameter 'lr': 5 is outside [1e-05, 0.1]"),
        (["--budget", "0"], "Error: budget must be a whole number >= 1, got 0"),
        (["--param", "decoupled_weight_decay=maybe"],
         "Error: adam: parameter 'decoupled_weight_decay': 'maybe' is not one of [False, True]"),
        (["--param", "decoupled_weight_decay=true"],
         "Error: adam: parameter 'decoupled_weight_decay' is inactive: it applies only when "
         "weight_decay > 0, and here weight_decay is 0.0"),
    ],
)
def test_tuner_train_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        cli, ["train", "--task", "quadratic", "--optimizer", "adam", *args]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message]


def test_reading_the_loss_back_every_few_steps_gives_the_same_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The GPU way (losses read back in groups) on the CPU: same curve, same divergence step."""
    import tuner.training

    each = train("digits-mlp", "adam", {"lr": 3e-3}, budget=50, eval_every=20, **FAST)
    wild = train("digits-mlp", wide_sgd(), {"lr": 1e9}, **FAST)
    monkeypatch.setitem(tuner.training.LOSS_READBACK_EVERY, "cpu", 8)
    grouped = train("digits-mlp", "adam", {"lr": 3e-3}, budget=50, eval_every=20, **FAST)
    assert [p.step for p in grouped.curve] == [p.step for p in each.curve]
    for mine, theirs in zip(grouped.curve, each.curve, strict=True):
        assert (mine.train_loss, mine.metric) == pytest.approx(
            (theirs.train_loss, theirs.metric), rel=1e-12
        )
    late = train("digits-mlp", wide_sgd(), {"lr": 1e9}, **FAST)
    assert late.status == "diverged" and late.steps == wild.steps
