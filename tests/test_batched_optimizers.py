"""Batched optimizer steps: K configurations stepped at once, each as its unbatched optimizer.

Tolerance, every family: parameters after 20 steps within rtol 1e-5 (atol 1e-8) of the
unbatched run (:func:`tuner.testing.batched_difference`, :func:`assert_as_alone`). What it is
made of: the batched step repeats the unbatched arithmetic op for op on a stacked tensor, so the
only freedom left is how a processor's vector units evaluate one element-wise expression in the
body of a vector against its tail (a fused multiply-add or not: one rounding of float32's
``2**-24`` more or less per operation); about 8 such operations per step over 20 steps give
``20 * 8 * 2**-24 ~ 1e-5``. On this project's x86-64 machines every built-in family, and the
more-optimizers extra's Adan, ADOPT and AdEMAMix against pytorch_optimizer, measures 0.0,
bit-identical: the fused torch.optim classes (SGD, Adagrad, Adam, AdamW) call the same
kernel per configuration, and the others repeat the unbatched arithmetic, which the sign-based
updates (Lion, Tiger, signSGD, Signum) need, since a sign turns a rounding difference at a value
within one rounding of zero into a step of ``lr`` (with the tests' random gradients, about one
chance in 10**7 per element and step). Exactness stays asserted where it is a property, not a
rounding: a configuration with lr scale 0, or a group with weight decay 0, does not move at all.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from tuner import testing
from tuner.errors import TunerError
from tuner.plugin.optimizer import eval_mode, optimizer_state_bytes, train_mode
from tuner.plugin.registry import get_registry
from tuner.plugin.space import Categorical, Float, Int
from tuner.training.batched.optimizers import (
    BatchedError,
    BatchedOptimizer,
    batch_signature,
    stack_hyperparams,
)

TOLERANCE = 1e-5
"""rtol of every family's batched step against its unbatched optimizer (measured: 0.0); see the
module docstring for what it is made of."""


def assert_as_alone(batched: torch.Tensor, alone: torch.Tensor) -> None:
    """One configuration's slice of a batched parameter against the same parameter stepped
    alone: within :data:`TOLERANCE` (rtol, and ``TOLERANCE * 1e-3`` atol near zero)."""
    torch.testing.assert_close(batched, alone, rtol=TOLERANCE, atol=TOLERANCE * 1e-3)

BATCHED = [
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "adamw",
    "amsgrad", "adamax", "nadam", "radam", "lion", "tiger", "signsgd", "signum",
    "schedulefree-adamw", "ranger",
    "lookahead-momentum", "lookahead-adam", "lookahead-lion", "lookahead-schedulefree-adamw",
    "adan", "adopt", "ademamix", "lookahead-adan",
]
"""Every built-in element-wise optimizer, the batched ones of the more-optimizers extra (Adan,
ADOPT, AdEMAMix: checked against pytorch_optimizer's own step), and Lookahead around one of
each family."""

UNBATCHED = ["lbfgs", "newton", "bfgs", "dfp", "cg", "lookahead-lbfgs",
             "soap", "shampoo", "kron", "prodigy", "dadapt-adam", "mars", "came", "lamb",
             "sam-adamw"]


def _plugin(name: str):
    return get_registry().optimizer(name)


def _variants(plugin) -> list[dict]:
    """The batches to check: the defaults of every categorical and integer, then each other
    choice of a categorical and one other value of an integer (each a batch of its own)."""
    variants: list[dict] = [{}]
    for param in plugin.space:
        if isinstance(param, Categorical):
            variants += [{param.name: c} for c in param.choices if c != param.default]
        elif isinstance(param, Int):
            variants.append({param.name: 3 if param.default != 3 else 4})
    return variants


def _draw(param: Float, rng: random.Random) -> float:
    if param.log:
        return math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
    return rng.uniform(param.low, param.high)


def _configs(plugin, variant: dict, count: int = 4) -> list[dict]:
    """``count`` configurations with different values of every float hyperparameter, drawn
    from inside the space (fixed seed); the first takes each float's low end (weight decay 0,
    momentum 0) wherever that keeps it in the others' batch."""
    rng = random.Random(f"{plugin.name} {sorted(variant.items())}")
    floats = [p for p in plugin.space if isinstance(p, Float) and not isinstance(p, Int)]
    configs = [
        plugin.space.complete({**{p.name: _draw(p, rng) for p in floats}, **variant})
        for _ in range(count)
    ]
    signature = batch_signature(plugin, configs[1])
    for param in floats:
        try:
            edge = plugin.space.complete({**configs[0], param.name: param.low})
        except TunerError:  # the low end deactivates another parameter (weight decay 0)
            continue
        if batch_signature(plugin, edge) == signature:
            configs[0] = edge
    return configs


CASES = [
    pytest.param(name, variant, id=f"{name}-{'-'.join(f'{k}={v}' for k, v in variant.items())}"
                 if variant else name)
    for name in BATCHED
    for variant in _variants(_plugin(name))
]


@pytest.mark.parametrize(("name", "variant"), CASES)
def test_batched_step_equals_the_unbatched_runs(name, variant):
    plugin = _plugin(name)
    configs = _configs(plugin, variant)
    assert len({batch_signature(plugin, c) for c in configs}) == 1
    for param in plugin.space:  # every float differs between the four configurations
        if isinstance(param, Float) and not isinstance(param, Int):
            assert len({c[param.name] for c in configs}) == 4, param.name
    difference = testing.batched_difference(
        plugin, configs, steps=20, exclude_biases_from_decay=bool(variant), switch_eval=True
    )
    assert difference <= TOLERANCE


def test_every_element_wise_builtin_is_batched_and_the_others_are_not():
    registry = get_registry()
    for name in BATCHED:
        assert registry.optimizer(name).build_batched is not None, name
    for name in UNBATCHED:
        assert registry.optimizer(name).build_batched is None, name


def test_batched_difference_sees_a_wrong_step():
    """The check is not blind: a batched step with the wrong learning rate fails it."""
    from dataclasses import replace

    adam = _plugin("adam")

    def halved(groups, hp):
        return adam.build_batched(groups, {**hp, "lr": hp["lr"] * 0.5})

    configs = _configs(adam, {})
    assert testing.batched_difference(replace(adam, build_batched=halved), configs) > 1e-3
    with pytest.raises(TunerError, match="no batched step"):
        testing.batched_difference(_plugin("lbfgs"), [{}])


def test_categoricals_that_change_the_update_split_the_batch():
    adam = _plugin("adam")
    base = {"lr": 1e-3, "weight_decay": 0.01}
    coupled = adam.space.complete({**base, "decoupled_weight_decay": False})
    decoupled = adam.space.complete({**base, "decoupled_weight_decay": True})
    other_floats = adam.space.complete(
        {"lr": 3e-2, "beta1": 0.7, "weight_decay": 0.05, "decoupled_weight_decay": False}
    )
    no_decay = adam.space.complete({"lr": 1e-3, "weight_decay": 0.0})  # decoupled inactive
    assert batch_signature(adam, coupled) != batch_signature(adam, decoupled)
    assert batch_signature(adam, coupled) == batch_signature(adam, other_floats)
    assert batch_signature(adam, coupled) != batch_signature(adam, no_decay)

    rmsprop = _plugin("rmsprop")
    assert batch_signature(rmsprop, rmsprop.space.complete({"centered": True})) != (
        batch_signature(rmsprop, rmsprop.space.complete({"centered": False}))
    )
    lookahead = _plugin("lookahead-adam")
    assert batch_signature(lookahead, lookahead.space.complete({"k": 3})) != (
        batch_signature(lookahead, lookahead.space.complete({"k": 5}))
    )
    assert batch_signature(lookahead, lookahead.space.complete({"alpha": 0.3})) == (
        batch_signature(lookahead, lookahead.space.complete({"alpha": 0.8}))
    )
    # nesterov and amsgrad are pinned by separate plugins: their names differ
    momentum, nesterov = _plugin("momentum"), _plugin("nesterov")
    assert batch_signature(momentum, {"lr": 0.1}) != batch_signature(nesterov, {"lr": 0.1})


def test_stack_hyperparams_stacks_floats_and_refuses_mixed_batches():
    adam = _plugin("adam")
    first = adam.space.complete({"lr": 1e-3, "weight_decay": 0.01})
    second = adam.space.complete({"lr": 3e-3, "weight_decay": 0.02})
    hp = stack_hyperparams([first, second], device="cpu", dtype=torch.float64)
    assert hp["lr"].tolist() == [1e-3, 3e-3]
    assert hp["lr"].dtype == torch.float64
    assert hp["decoupled_weight_decay"] is False
    mixed = adam.space.complete({**second, "decoupled_weight_decay": True})
    with pytest.raises(BatchedError, match="decoupled_weight_decay") as caught:
        stack_hyperparams([first, mixed], device="cpu", dtype=torch.float64)
    assert "\n" not in str(caught.value)
    with pytest.raises(BatchedError, match="only one of them"):
        stack_hyperparams([first, adam.space.complete({"weight_decay": 0.0})], "cpu", None)


MLP_SHAPES = [(16, 8), (16,), (1, 16), (1,)]


def _stacked_mlp(count: int, shapes=MLP_SHAPES) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(count, *shape, generator=generator).requires_grad_() for shape in shapes]


def _random_gradient_runs(name, configs, steps=6, lr_scale=None, poison=None, shapes=MLP_SHAPES):
    """Both runs on the same random gradients (independent of the parameters, so any
    difference shows as it is): the batched parameters and each configuration's alone.
    ``poison=(step, k)`` puts a NaN in configuration k's gradient at that step."""
    plugin = _plugin(name)
    count = len(configs)
    completed = [plugin.space.complete(c) for c in configs]
    stacked = _stacked_mlp(count, shapes)
    generator = torch.Generator().manual_seed(1)
    gradients = [[torch.randn(p.shape, generator=generator) for p in stacked]
                 for _ in range(steps)]
    if poison is not None:
        gradients[poison[0]][0][poison[1]].view(-1)[0] = float("nan")
    scales = [1.0] * count if lr_scale is None else lr_scale
    alone = []
    for k, config in enumerate(completed):
        params = [p[k].detach().clone().requires_grad_() for p in stacked]
        optimizer = plugin.build(
            [{"params": params}], {**config, "lr": config["lr"] * scales[k]}
        )
        for step in range(steps):
            for param, gradient in zip(params, gradients[step], strict=True):
                param.grad = gradient[k].clone()
            optimizer.step()
        alone.append(params)
    batched = plugin.build_batched([{"params": stacked}], stack_hyperparams(completed))
    if lr_scale is not None:
        batched.lr_scale = torch.tensor(lr_scale, dtype=torch.float64)
    for step in range(steps):
        for param, gradient in zip(stacked, gradients[step], strict=True):
            param.grad = gradient.clone()
        batched.step()
    return batched, stacked, alone


@pytest.mark.parametrize("name", ["adam", "rmsprop", "lion", "schedulefree-adamw", "ranger"])
def test_lr_scale_multiplies_each_configurations_learning_rate(name):
    configs = _configs(_plugin(name), {})
    _, stacked, alone = _random_gradient_runs(name, configs, lr_scale=[1.0, 0.5, 0.25, 2.0])
    for k, params in enumerate(alone):
        for whole, param in zip(stacked, params, strict=True):
            assert_as_alone(whole[k], param)


@pytest.mark.parametrize("name", BATCHED)
def test_a_configuration_with_lr_scale_zero_does_not_move(name):
    configs = _configs(_plugin(name), {})
    before = [p.detach().clone() for p in _stacked_mlp(4)]
    _, stacked, _ = _random_gradient_runs(name, configs, lr_scale=[1.0, 0.0, 1.0, 1.0])
    pairs = list(zip(before, stacked, strict=True))
    assert all(torch.equal(whole[1], start[1]) for start, whole in pairs)
    assert any(not torch.equal(whole[0], start[0]) for start, whole in pairs)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "lion", "signum", "schedulefree-adamw",
                                  "lookahead-adam", "adan", "adopt", "ademamix"])
def test_a_group_with_weight_decay_zero_is_not_decayed(name):
    """Zero gradients: only weight decay can move a parameter."""
    plugin = _plugin(name)
    high = plugin.space["weight_decay"].high
    configs = [plugin.space.complete({"weight_decay": share * high,
                                      "lr": plugin.space["lr"].high / 10})
               for share in (0.5, 0.8)]
    weights, biases = _stacked_mlp(2)[0::2], _stacked_mlp(2)[1::2]
    before = [p.detach().clone() for p in weights + biases]
    optimizer = plugin.build_batched(
        [{"params": weights}, {"params": biases, "weight_decay": 0.0}],
        stack_hyperparams(configs),
    )
    for _ in range(3):
        for param in weights + biases:
            param.grad = torch.zeros_like(param)
        optimizer.step()
    for start, param in zip(before[2:], biases, strict=True):
        assert torch.equal(param, start)
    for start, param in zip(before[:2], weights, strict=True):
        assert not torch.equal(param, start)


@pytest.mark.parametrize("name", ["schedulefree-adamw", "lookahead-schedulefree-adamw"])
def test_schedule_free_eval_and_train_match_the_unbatched_optimizer(name):
    plugin = _plugin(name)
    configs = _configs(plugin, {"warmup_steps": 4})
    assert testing.batched_difference(plugin, configs, steps=20, switch_eval=True) <= TOLERANCE
    batched, stacked, _ = _random_gradient_runs(name, configs)
    training = [p.detach().clone() for p in stacked]
    eval_mode(batched)
    assert all(not torch.equal(p, t) for p, t in zip(stacked, training, strict=True))
    with pytest.raises(BatchedError, match="evaluation mode"):
        batched.step()
    train_mode(batched)
    for p, t in zip(stacked, training, strict=True):
        # back from the averaged weights: two interpolations, each a few float32 roundings
        # (2**-24 ~ 6e-8) of the larger of |x| and |z|: within 16 roundings
        torch.testing.assert_close(p, t, rtol=1e-6, atol=1e-7)


def test_tiger_guard_skips_only_the_configuration_with_a_non_finite_gradient():
    configs = _configs(_plugin("tiger"), {"nan_guard": True})
    before = _stacked_mlp(4)[0].detach().clone()
    batched, stacked, alone = _random_gradient_runs("tiger", configs, poison=(3, 2))
    for k, params in enumerate(alone):
        for whole, param in zip(stacked, params, strict=True):
            assert_as_alone(whole[k], param)  # each as alone, the poisoned one included
    assert torch.isfinite(stacked[0]).all()
    assert not torch.equal(stacked[0][2], before[2])


@pytest.mark.parametrize(("name", "variant"), [
    ("rmsprop", {}), ("adadelta", {}), ("adamax", {}), ("nadam", {}), ("radam", {}),
    ("lion", {}), ("signum", {}), ("tiger", {"nan_guard": True}),
    ("adan", {}), ("adopt", {"decoupled_weight_decay": True}), ("ademamix", {}),
])
def test_parameters_stepped_in_blocks_of_configurations_match_too(name, variant):
    """A parameter above CPU_BLOCK_ELEMENTS per block is stepped a few configurations at a
    time on CPU; each configuration still steps as alone (RMSprop here mixes momentum 0 and
    > 0, Tiger's guard fires for one configuration)."""
    from tuner.training.batched.optimizers import CPU_BLOCK_ELEMENTS

    shapes = [(CPU_BLOCK_ELEMENTS // 2 - 7,), (3,)]  # two configurations per block
    configs = _configs(_plugin(name), variant)
    poison = (2, 3) if variant.get("nan_guard") else None
    _, stacked, alone = _random_gradient_runs(name, configs, shapes=shapes, poison=poison)
    for k, params in enumerate(alone):
        for whole, param in zip(stacked, params, strict=True):
            assert_as_alone(whole[k], param)


@pytest.mark.parametrize("name", ["momentum", "adam", "amsgrad", "nadam", "tiger",
                                  "schedulefree-adamw", "lookahead-adam", "signsgd",
                                  "adan", "adopt", "ademamix"])
def test_state_bytes_are_the_unbatched_state_times_k(name):
    plugin = _plugin(name)
    configs = _configs(plugin, {"nan_guard": True} if name == "tiger" else {})[1:]
    batched, stacked, _ = _random_gradient_runs(name, configs, steps=2)
    alone = 0
    for config in configs:
        params = [p[0].detach().clone().requires_grad_() for p in stacked]
        optimizer = plugin.create(params, config)
        for _ in range(2):
            for param in params:
                param.grad = torch.ones_like(param)
            optimizer.step()
        alone += optimizer_state_bytes(optimizer)
    assert isinstance(batched, BatchedOptimizer)
    assert batched.state_bytes() == alone


def test_zero_grad_sets_gradients_to_none():
    batched, stacked, _ = _random_gradient_runs("adam", _configs(_plugin("adam"), {}), steps=1)
    batched.zero_grad()
    assert all(p.grad is None for p in stacked)


@pytest.mark.parametrize(
    ("groups", "hp", "message"),
    [
        (lambda p: [{"params": p, "weight_decay": 0.1}], {}, "only be overridden with 0.0"),
        (lambda p: [{"params": p, "lr": 0.1}], {}, "only 'weight_decay'"),
        (lambda p: [{"params": [p[0], torch.zeros(3, 2, requires_grad=True)]}], {},
         "leading dimension"),
        (lambda p: [{"params": p}], {"lr": torch.ones(3)}, r"needs \(4,\)"),
        (lambda p: [{"params": []}], {}, "at least one parameter"),
    ],
)
def test_bad_input_is_one_line(groups, hp, message):
    adam = _plugin("adam")
    stacked = _stacked_mlp(4)
    full = {**stack_hyperparams(_configs(adam, {})), **hp}
    with pytest.raises(BatchedError, match=message) as caught:
        adam.build_batched(groups(stacked), full)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("class_name", "fixed", "name"), [
    ("SGD", {"momentum": 0.0}, "sgd"),
    ("SGD", {"nesterov": False}, "momentum"),
    ("SGD", {"nesterov": True}, "nesterov"),
    ("Adagrad", {}, "adagrad"),
    ("Adam", {}, "adam"),
    ("Adam", {"amsgrad": True}, "amsgrad"),
    ("AdamW", {}, "adamw"),
])
def test_elementwise_steps_where_no_fused_kernel_is_used_follow_torchs_single_tensor_loop(
    class_name, fixed, name
):
    """Off the fused kernels' devices the fused classes take the elementwise batched step;
    checked here, on CPU, against torch's single-tensor implementation."""
    from tuner.training.batched.torch_optim import batched_torch_optimizer
    from tuner_plugins.optimizers.torch_optim import torch_kwargs

    plugin = _plugin(name)
    configs = _configs(plugin, {"decoupled_weight_decay": True} if name == "adam" else {})
    stacked = _stacked_mlp(4)
    generator = torch.Generator().manual_seed(2)
    gradients = [[torch.randn(p.shape, generator=generator) for p in stacked] for _ in range(5)]
    batched = batched_torch_optimizer(class_name, [{"params": stacked}],
                                      stack_hyperparams(configs), fixed=fixed, fused=False)
    assert "Fused" not in type(batched).__name__
    for step in gradients:
        for param, gradient in zip(stacked, step, strict=True):
            param.grad = gradient.clone()
        batched.step()
    for k, config in enumerate(configs):
        params = [p[k].detach().clone().requires_grad_() for p in _stacked_mlp(4)]
        optimizer = getattr(torch.optim, class_name)(
            params, **{**fixed, **torch_kwargs(config)}, foreach=False
        )
        for step in gradients:
            for param, gradient in zip(params, step, strict=True):
                param.grad = gradient[k].clone()
            optimizer.step()
        for whole, param in zip(stacked, params, strict=True):
            assert_as_alone(whole[k], param)
