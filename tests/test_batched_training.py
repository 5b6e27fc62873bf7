"""The batched training loop: K configurations trained at once give the K unbatched runs.

Each check trains the same configurations batched
(:func:`tuner.training.batched.training.train_batched`) and one by one
(:func:`tuner.training.train`) on digits-mlp and compares them: the parameters after 20 steps (read
by a task whose ``evaluate`` keeps a copy of the model it is given, which the batched loop fills
from each configuration's slice), the curves, and the results' fields.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pytest
import torch

from tuner.plugin.registry import get_registry
from tuner.task.contract import Problem
from tuner.training.batched.training import train_batched
from tuner.training.loop import train
from tuner.training.options import make_options
from tuner_plugins.tasks._digits import VALIDATION_SIZE
from tuner_plugins.tasks.digits_mlp import DigitsMLP

DISPLACEMENT_RTOL = 1e-4
"""How far a batched run's parameters may be from its unbatched run's after 20 steps, as a share
of how far the unbatched run moved them (each tensor's L2 norm of the difference over the norm
of its displacement from the initial weights).

What it is made of: vmap computes the forward and backward passes as batched matrix products,
which sum in another order than the unbatched ones; each gradient then differs by about
``sqrt(k) * 2**-24`` relative in norm (float32's unit roundoff, ``k`` <= 64 terms per dot
product here: ~5e-7), and 20 steps through a nonlinear model compound it: ~1e-5. Compared in
norm, because one coordinate whose gradient is near zero can differ by far more, relative to
itself, under an adaptive or sign-based rule (Adam's ``m / sqrt(v)``), on a processor whose
vector units round differently. Measured on x86-64: at most 1.4e-6 (Ranger, RAdam). A wrong
update rule, or one configuration's hyperparameters given to another, moves it by 1e-2 or more.
"""

ONE_EXAMPLE = 1 / VALIDATION_SIZE + 1e-9
"""How far two val_accuracy values of runs equal within :data:`DISPLACEMENT_RTOL` may be: one
validation example whose two top logits are within rounding of each other may go either way."""

LOSS_RTOL = 1e-4
"""A training loss of runs equal within :data:`DISPLACEMENT_RTOL`: the same relative error."""

SHARED = ("wall_seconds", "peak_memory_bytes", "seconds_to_target", "batch", "curve", "options")
"""RunResult fields a batched run shares with its batch (or compares differently)."""


class Recording(DigitsMLP):
    """digits-mlp whose every evaluation keeps a copy of the parameters it evaluates."""

    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        self.seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return super().evaluate(model, problem)

    def take(self) -> list[dict[str, torch.Tensor]]:
        seen, self.seen = self.seen, []
        return seen


def both(task, plugin, configs, options, callbacks=None):
    """(batched results, unbatched results, each run's parameters at each evaluation batched,
    the same unbatched)."""
    callbacks = callbacks or [None] * len(configs)
    options_list = options if isinstance(options, list) else [options] * len(configs)
    batched = train_batched(task, plugin, configs, 0, options=options, callbacks=callbacks)
    batched_params = per_run(task.take(), batched, interleaved=True)
    single = [train(task, plugin, c, 0, options=o, callback=cb)
              for c, o, cb in zip(configs, options_list, callbacks, strict=True)]
    return batched, single, batched_params, per_run(task.take(), single, interleaved=False)


def per_run(seen: list, results: list, interleaved: bool) -> list[list]:
    """The recorded evaluations, run by run. One by one, each run's come together; a batch
    evaluates its runs in turn at each evaluation step (batches in the order of their first
    configuration)."""
    runs: list[list] = [[] for _ in results]
    if not interleaved:
        for index, result in enumerate(results):
            runs[index], seen = seen[:len(result.curve)], seen[len(result.curve):]
        return runs
    batches: dict[int, list[int]] = {}  # the tests' batches differ by their budget only
    for index, result in enumerate(results):
        batches.setdefault(result.options["budget"], []).append(index)
    for members in batches.values():
        steps = sorted({p.step for i in members for p in results[i].curve})
        for step in steps:
            for index in members:
                if any(p.step == step for p in results[index].curve):
                    runs[index].append(seen.pop(0))
    return runs


def assert_same_run(batched, single) -> None:
    """Every field equal, except the shared time and memory; curves equal within rounding."""
    assert batched.batch > 1 and batched.options["batch"] == batched.batch
    assert single.batch == 1
    for name, value in single.to_dict().items():
        if name not in SHARED:
            assert getattr(batched, name) == value, name
    assert {k: v for k, v in batched.options.items() if k != "batch"} == single.options
    assert len(batched.curve) == len(single.curve)
    for ours, theirs in zip(batched.curve, single.curve, strict=True):
        assert ours.step == theirs.step and ours.lr == pytest.approx(theirs.lr, rel=1e-12)
        assert ours.metric == pytest.approx(theirs.metric, abs=ONE_EXAMPLE)
        assert ours.train_loss == pytest.approx(theirs.train_loss, rel=LOSS_RTOL)


def initial_parameters(seed: int = 0) -> dict[str, torch.Tensor]:
    """digits-mlp's initial weights for ``seed``, built as the training loops build them."""
    torch.manual_seed(seed)
    model = DigitsMLP().build(seed, torch.device("cpu")).model
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_same_parameters(batched, single) -> None:
    """Each run's parameters at each of its evaluations: their displacement from the initial
    weights within :data:`DISPLACEMENT_RTOL` of the unbatched run's, tensor by tensor."""
    assert [len(run) for run in batched] == [len(run) for run in single]
    start = initial_parameters()
    for ours, theirs in zip(batched, single, strict=True):
        for mine, other in zip(ours, theirs, strict=True):
            for name in other:
                moved = torch.linalg.vector_norm(other[name] - start[name])
                apart = torch.linalg.vector_norm(mine[name] - other[name])
                assert apart <= DISPLACEMENT_RTOL * moved, (
                    f"{name}: {float(apart):.3g} apart, {float(moved):.3g} moved")


TWENTY = make_options(budget=20, eval_every=20, threads=1)

CONFIGS = {
    "adam": [{"lr": 1e-3, "weight_decay": 1e-4},
             {"lr": 3e-3, "beta1": 0.8, "beta2": 0.99, "weight_decay": 1e-2},
             {"lr": 1e-2, "eps": 1e-6, "weight_decay": 1e-3}],
    "sgd": [{"lr": 0.01}, {"lr": 0.1, "weight_decay": 1e-4}, {"lr": 0.5}],
}


@pytest.mark.parametrize("optimizer", sorted(CONFIGS))
def test_a_batch_gives_each_configuration_its_unbatched_run(optimizer):
    task = Recording()
    plugin = get_registry().optimizer(optimizer)
    batched, single, batched_params, single_params = both(task, plugin, CONFIGS[optimizer],
                                                          TWENTY)
    assert [r.status for r in batched] == ["complete"] * 3
    for ours, theirs in zip(batched, single, strict=True):
        assert_same_run(ours, theirs)
    assert_same_parameters(batched_params, single_params)
    assert len({r.wall_seconds for r in batched}) == 1, "the batch's time is shared"
    assert all(r.batch == 3 and r.optimizer_state_bytes == single[0].optimizer_state_bytes
               for r in batched)


def test_per_configuration_warmup_schedule_clipping_and_early_stopping():
    """Each configuration has its own warm-up, schedule, clipping norm and patience."""
    task = Recording()
    plugin = get_registry().optimizer("adam")
    options = [
        make_options(TWENTY, eval_every=5, warmup=6, schedule="cosine", clip_norm=0.05),
        make_options(TWENTY, eval_every=5, schedule="step", step_size=4, gamma=0.5),
        make_options(TWENTY, eval_every=5, warmup=3, clip_norm=0.5, patience=1,
                     min_delta=0.5),
    ]
    configs = [{"lr": 1e-2}, {"lr": 1e-2}, {"lr": 3e-3}]
    batched, single, batched_params, single_params = both(task, plugin, configs, options)
    for ours, theirs in zip(batched, single, strict=True):
        assert_same_run(ours, theirs)
    assert [r.stopped_early for r in batched] == [False, False, True]
    assert batched[2].steps == 10 < batched[0].steps == 20
    lrs = [[p.lr for p in r.curve] for r in batched]
    assert lrs[0] != lrs[1] != lrs[2]  # three schedules really ran
    assert_same_parameters(batched_params, single_params)


def test_a_configuration_that_diverges_stops_while_the_others_complete():
    task = Recording()
    sgd = get_registry().optimizer("sgd")
    wide = replace(sgd, space=sgd.space.with_range("lr", 1e-4, 1e4))
    configs = [{"lr": 0.05}, {"lr": 5000.0}, {"lr": 0.2}]
    batched, single, _, _ = both(task, wide, configs,
                                 make_options(TWENTY, budget=40, eval_every=10))
    assert [r.status for r in batched] == ["complete", "diverged", "complete"]
    for ours, theirs in zip(batched, single, strict=True):
        assert_same_run(ours, theirs)
    assert batched[1].steps < 10 and batched[1].final_metric is None
    assert batched[0].final_metric is not None and math.isfinite(batched[2].final_metric)


def test_a_pruned_configuration_stops_while_the_others_go_on():
    task = Recording()
    plugin = get_registry().optimizer("adam")
    calls = []

    def prune_at_ten(point):
        calls.append(point.step)
        return point.step >= 10

    callbacks = [None, prune_at_ten, None]
    batched = train_batched(task, plugin, CONFIGS["adam"], 0,
                            options=make_options(TWENTY, eval_every=5), callbacks=callbacks)
    assert [r.status for r in batched] == ["complete", "pruned", "complete"]
    assert batched[1].steps == 10 and calls == [5, 10]
    assert [p.step for p in batched[0].curve] == [5, 10, 15, 20]


class Branching(DigitsMLP):
    """A model with data-dependent control flow: vmap cannot trace it."""

    name = "branching"

    def loss(self, model, batch):
        inputs, labels = batch
        logits = model(inputs)
        if logits.sum() > 0:  # a Python branch on a tensor's value
            logits = logits * 1.0
        return torch.nn.functional.cross_entropy(logits, labels)


def test_what_cannot_be_batched_runs_one_by_one_with_one_note(caplog):
    caplog.set_level(logging.WARNING, logger="tuner.training.batched.training")
    registry = get_registry()
    options = make_options(budget=6, eval_every=3, threads=1)
    # A task that declares itself unbatchable (torch's embedding bag has no vmap rule).
    sparse = registry.task("sparse")
    assert sparse.unbatchable
    results = train_batched(sparse, "adam", [{"lr": 1e-3}, {"lr": 1e-2}], 0, options=options)
    alone = train(sparse, "adam", {"lr": 1e-2}, 0, options=options)
    assert [r.batch for r in results] == [1, 1]
    assert results[1].final_metric == alone.final_metric
    # A model whose first vectorised step fails: one note, then unbatched runs, twice.
    for _ in range(2):
        results = train_batched(Branching(), "adam", [{"lr": 1e-3}, {"lr": 1e-2}], 0,
                                options=options)
        assert [r.status for r in results] == ["complete", "complete"]
        assert [r.batch for r in results] == [1, 1]
    # An optimizer without a batched step.
    results = train_batched("logreg", "lbfgs", [{"lr": 1.0}, {"lr": 0.5}], 0,
                            options=make_options(options, budget=3))
    assert [r.batch for r in results] == [1, 1]
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 3, notes
    assert "'sparse' cannot be batched" in notes[0]
    assert "'branching' cannot be batched" in notes[1] and "vectorised step" in notes[1]
    assert "'lbfgs' has no batched step" in notes[2]


def test_configurations_with_different_step_options_are_separate_batches():
    """A budget (like a batch size or accumulation) shapes the shared steps: two batches."""
    task = Recording()
    plugin = get_registry().optimizer("sgd")
    options = [TWENTY, TWENTY, make_options(TWENTY, budget=10, eval_every=10), TWENTY]
    configs = [{"lr": 0.05}, {"lr": 0.1}, {"lr": 0.1}, {"lr": 0.2}]
    batched, single, batched_params, single_params = both(task, plugin, configs, options)
    assert [r.batch for r in batched] == [3, 3, 1, 3]
    assert [r.steps for r in batched] == [20, 20, 10, 20]
    for index in (0, 1, 3):
        assert_same_run(batched[index], single[index])
    assert_same_parameters(batched_params, single_params)


def _batched_optimizers() -> list[str]:
    registry = get_registry()
    names = [name for name in registry.optimizers
             if registry.optimizer(name).build_batched is not None]
    return sorted(names) + ["lookahead-adam"]


@pytest.mark.parametrize("optimizer", _batched_optimizers())
def test_every_batched_optimizer_gives_its_unbatched_parameters_after_20_steps(optimizer):
    """Through the whole loop (vmap's gradients included): the recommended configuration at
    half, once and twice its lr, batched against one by one, parameters within
    :data:`DISPLACEMENT_RTOL` of their displacement."""
    task = Recording()
    plugin = get_registry().optimizer(optimizer)
    recommended = plugin.space.recommended()
    configs = []
    for factor in (0.5, 1.0, 2.0):
        lr = plugin.space["lr"]
        configs.append({**recommended,
                        "lr": min(max(recommended["lr"] * factor, lr.low), lr.high)})
    batched, single, batched_params, single_params = both(task, plugin, configs, TWENTY)
    assert all(r.batch == 3 for r in batched), "the three configurations share one batch"
    assert [r.status for r in batched] == [r.status for r in single]
    assert_same_parameters(batched_params, single_params)
    for ours, theirs in zip(batched, single, strict=True):
        assert ours.final_metric == pytest.approx(theirs.final_metric, abs=ONE_EXAMPLE)
