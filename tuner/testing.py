"""Conformance checks that any optimizer plugin, ours or a third party's, can run against itself.

Each check builds the optimizer through the plugin (``plugin.create``), runs it on a small fixed
problem on the CPU and returns a number for the test to judge; none of them needs pytest.

- :func:`lowers_quadratic` -> the value of f(x1, x2) = x1^2 + 10 x2^2 after ``steps`` steps from
  (4, 3), where f is :data:`QUADRATIC_START_VALUE` (106). Assert it is lower, and by how much
  your optimizer should manage at its defaults.
- :func:`measured_state_multiple` -> optimizer-state bytes / parameter bytes after a few steps
  on a small MLP; compare with :func:`declared_state_multiple` (``plugin.state_multiple``, or
  its value at that MLP's parameter count or parameter shapes when it grows with them).
- :func:`state_dict_roundtrip` -> the largest difference between parameters after 10 steps in
  one go and after 5 steps, a save/load of ``state_dict()`` (through ``torch.save``) into a fresh
  optimizer, and 5 more; 0.0 means bit-identical.
- :func:`eval_train_switch` -> the largest change of any parameter after ``eval_mode`` followed
  by ``train_mode``; 0.0 (or rounding error) for a conforming optimizer. For an optimizer with
  evaluation weights (:func:`defines_eval_mode`), :func:`eval_weights_shift` -> how far
  ``eval_mode`` moves the parameters, so a test can see that the switch happens at all.
- :func:`batched_difference` -> for a plugin with a batched step (``build_batched``), the
  largest relative difference between K configurations trained together, stacked along a
  leading dimension, and each trained alone through ``build``; 0.0 means bit-identical. Assert
  it is at most your stated tolerance (1e-5 for the built-in optimizers, which measure 0.0 on
  CPU).

An optimizer that ``splits_by_role`` (Muon) is given its parameters split by role: on the small
MLP its first layer's weight is the hidden matrix and the output layer and the biases are the
rest; on the quadratic, which has no matrix, the point is given as one 1 x 2 hidden matrix.

Every check takes ``hyperparams`` (missing ones at the space's defaults; pass
``plugin.space.recommended()`` for the literature values) and steps the optimizer as a training
run does (:func:`tuner.training.steps.optimizer_step`: through ``step(closure)`` for a
``needs_closure`` optimizer, with a :class:`~tuner.plugin.objective.FlatObjective` for a
``wants_flat_loss`` one). A test module for a plugin package::

    import pytest
    from tuner.plugin.registry import get_registry
    from tuner import testing

    @pytest.mark.parametrize("name", ["lion", "tiger"])
    def test_conformance(name):
        plugin = get_registry().optimizer(name)
        assert testing.lowers_quadratic(plugin) < 0.5 * testing.QUADRATIC_START_VALUE
        declared = testing.declared_state_multiple(plugin)
        assert testing.measured_state_multiple(plugin) == pytest.approx(declared)
        assert testing.state_dict_roundtrip(plugin) == 0.0
        if testing.defines_eval_mode(plugin):  # evaluation weights: swapped in and back out
            assert testing.eval_train_switch(plugin) <= 1e-5
        if plugin.build_batched is not None:  # K configurations at once, as each alone
            configs = [{"lr": lr} for lr in plugin.space["lr"].grid(4)]
            assert testing.batched_difference(plugin, configs) <= 1e-5
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from tuner.plugin.optimizer import (
    HIDDEN,
    OTHER,
    OptimizerPlugin,
    eval_mode,
    optimizer_state_bytes,
    split_by_role,
    train_mode,
)
from tuner.training.steps import optimizer_step

if TYPE_CHECKING:
    import torch

__all__ = [
    "QUADRATIC_START",
    "QUADRATIC_START_VALUE",
    "SMALL_PROBLEM_PARAMS",
    "batched_difference",
    "declared_state_multiple",
    "defines_eval_mode",
    "eval_train_switch",
    "eval_weights_shift",
    "lowers_quadratic",
    "measured_state_multiple",
    "quadratic",
    "state_dict_roundtrip",
]

QUADRATIC_START = (4.0, 3.0)
"""Where :func:`lowers_quadratic` starts."""

QUADRATIC_START_VALUE = 106.0
"""f(4, 3) = 16 + 90."""

SMALL_PROBLEM_PARAMS = 8 * 16 + 16 + 16 * 1 + 1
"""Parameters of the small MLP (8-16-1) the state and state-dict checks train."""

"""The shapes of the small MLP's parameters, for a state that grows with them."""


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: the checks' tensors are tiny, and on a busy machine two
    intra-op threads make each small op wait for the other (measured: 0.2 ms vs 1-50 ms for a
    forward and backward pass of the check's MLP)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _single_threaded(check: Callable) -> Callable:
    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _one_thread():
            return check(*args, **kwargs)

    return run


def quadratic(x: torch.Tensor) -> torch.Tensor:
    """f(x1, x2) = x1^2 + 10 x2^2: an ill-conditioned bowl (curvatures 2 and 20), minimum 0."""
    return x[0] ** 2 + 10 * x[1] ** 2


def _step(
    plugin: OptimizerPlugin, optimizer: torch.optim.Optimizer, loss_fn: Callable[[], Any]
) -> None:
    """One optimizer step on ``loss_fn``, the training loop's own (:func:`optimizer_step`)."""
    optimizer_step(optimizer, lambda _: loss_fn(), needs_closure=plugin.needs_closure,
                   flat_loss=plugin.wants_flat_loss)


@_single_threaded
def lowers_quadratic(
    plugin: OptimizerPlugin, hyperparams: Mapping[str, Any] | None = None, steps: int = 100
) -> float:
    """Run ``steps`` steps on :func:`quadratic` from (4, 3) and return the final value.

    Args:
        plugin: the optimizer plugin.
        hyperparams: values for some parameters of its space; the rest take their defaults.
        steps: optimizer steps (``step`` calls: an L-BFGS step makes several iterations).

    Returns:
        f at the final point (float32 parameters); ``nan`` or ``inf`` if the run diverged.
    """
    import torch

    start = torch.tensor(QUADRATIC_START, dtype=torch.float32)
    if plugin.splits_by_role:  # the point as the one hidden matrix there is
        x = torch.nn.Parameter(start.reshape(1, 2))
        optimizer = plugin.create(split_by_role([x], hidden=[x]), hyperparams)
    else:
        x = torch.nn.Parameter(start)
        optimizer = plugin.create([x], hyperparams)
    for _ in range(steps):
        _step(plugin, optimizer, lambda: quadratic(x.reshape(2)))
    with torch.no_grad():
        return float(quadratic(x.reshape(2)))


def _small_problem(
    init_seed: int = 0,
) -> tuple[torch.nn.Module, Callable[[], torch.Tensor]]:
    """A 2-layer MLP (parameters of ndim 1 and 2) and a full-batch regression loss on fixed data.

    The data is always the same; ``init_seed`` picks the initial weights. torch's global random
    state is left as it was.
    """
    import torch

    inputs = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    targets = torch.sin(inputs.sum(dim=1, keepdim=True))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )

    def loss_fn() -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(inputs), targets)

    return model, loss_fn


def _hidden(model: torch.nn.Module) -> list[torch.Tensor]:
    """The small MLP's hidden matrix: its first layer's weight (the second is the head)."""
    return [model[0].weight]


def _parameters(plugin: OptimizerPlugin, model: torch.nn.Module) -> list[Any]:
    """The small MLP's parameters as ``plugin.create`` takes them: split by role for an
    optimizer that ``splits_by_role``, else as a list."""
    params = list(model.parameters())
    return split_by_role(params, _hidden(model)) if plugin.splits_by_role else params


def declared_state_multiple(plugin: OptimizerPlugin) -> float:
    """The state multiple the plugin declares for the small MLP of
    :func:`measured_state_multiple` (:data:`SMALL_PROBLEM_PARAMS` parameters)."""
    model, _ = _small_problem()
    hidden = {id(p) for p in _hidden(model)}
    tensors = [(tuple(p.shape), HIDDEN if id(p) in hidden else OTHER)
               for p in model.parameters()]
    return plugin.state_multiple_at(SMALL_PROBLEM_PARAMS, tensors)


@_single_threaded
def measured_state_multiple(
    plugin: OptimizerPlugin, hyperparams: Mapping[str, Any] | None = None, steps: int = 3
) -> float:
    """Optimizer-state bytes divided by parameter bytes after ``steps`` steps on a small MLP.

    Counts tensors of at least one dimension in ``optimizer.state`` (see
    :func:`tuner.plugin.optimizer.optimizer_state_bytes`). Three steps by default: enough for state
    created lazily after the first step, and for L-BFGS's history (one step is ``max_iter``
    iterations) to fill.
    """
    model, loss_fn = _small_problem()
    params = list(model.parameters())
    optimizer = plugin.create(_parameters(plugin, model), hyperparams)
    for _ in range(steps):
        _step(plugin, optimizer, loss_fn)
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    return optimizer_state_bytes(optimizer) / param_bytes


def _largest_difference(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(first, second, strict=True))


@_single_threaded
def state_dict_roundtrip(
    plugin: OptimizerPlugin, hyperparams: Mapping[str, Any] | None = None, steps: int = 5
) -> float:
    """Compare an uninterrupted run with one that saves and reloads the optimizer midway.

    Run A: ``2 * steps`` steps. Run B: ``steps`` steps, ``torch.save`` of the model's and the
    optimizer's state dicts, ``torch.load`` (``weights_only=True``, torch's safe default) into a
    fresh model and a fresh optimizer from the plugin, ``steps`` more steps.

    Returns:
        The largest absolute difference between the parameters of A and B (0.0: bit-identical).
    """
    import torch

    model, loss_fn = _small_problem()
    optimizer = plugin.create(_parameters(plugin, model), hyperparams)
    for _ in range(2 * steps):
        _step(plugin, optimizer, loss_fn)
    uninterrupted = [p.detach().clone() for p in model.parameters()]

    model, loss_fn = _small_problem()
    optimizer = plugin.create(_parameters(plugin, model), hyperparams)
    for _ in range(steps):
        _step(plugin, optimizer, loss_fn)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    del model, optimizer
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    model, loss_fn = _small_problem(init_seed=1)  # other initial weights: the load must set them
    model.load_state_dict(saved["model"])
    optimizer = plugin.create(_parameters(plugin, model), hyperparams)
    optimizer.load_state_dict(saved["optimizer"])
    for _ in range(steps):
        _step(plugin, optimizer, loss_fn)
    return _largest_difference(uninterrupted, [p.detach() for p in model.parameters()])


def defines_eval_mode(
    plugin: OptimizerPlugin, hyperparams: Mapping[str, Any] | None = None
) -> bool:
    """Whether the plugin's optimizer defines ``eval()`` and ``train()`` (Schedule-Free does;
    a wrapper such as Lookahead forwards them to the optimizer inside)."""
    model, _ = _small_problem()
    optimizer = plugin.create(_parameters(plugin, model), hyperparams)
    return callable(getattr(optimizer, "eval", None)) and callable(
        getattr(optimizer, "train", None)
    )


@_single_threaded
def eval_weights_shift(
    plugin: OptimizerPlugin, hyperparams: Mapping[str, Any] | None = None, steps: int = 3
) -> float:
    """The largest difference between the training weights and the weights ``eval_mode`` puts
    in place, after ``steps`` steps; 0.0 for an optimizer without evaluation weights.

    With :func:`eval_train_switch` it shows that a switch really happens and is undone.
    """
    model, loss_fn = _small_problem()
    optimizer = plugin.create(_parameters(plugin, model), hyperparams)
    for _ in range(steps):
        _step(plugin, optimizer, loss_fn)
    before = [p.detach().clone() for p in model.parameters()]
    eval_mode(optimizer)
    shift = _largest_difference(before, [p.detach() for p in model.parameters()])
    train_mode(optimizer)
    return shift


@_single_threaded
def eval_train_switch(
    plugin: OptimizerPlugin, hyperparams: Mapping[str, Any] | None = None, steps: int = 3
) -> float:
    """The largest parameter change made by ``eval_mode`` then ``train_mode`` after ``steps``.

    An optimizer with separate evaluation weights (Schedule-Free) swaps them in and back out;
    every other one must not touch the parameters.
    """
    model, loss_fn = _small_problem()
    optimizer = plugin.create(_parameters(plugin, model), hyperparams)
    for _ in range(steps):
        _step(plugin, optimizer, loss_fn)
    before = [p.detach().clone() for p in model.parameters()]
    eval_mode(optimizer)
    train_mode(optimizer)
    return _largest_difference(before, [p.detach() for p in model.parameters()])


def _decay_groups(
    params: list[torch.Tensor], exclude: bool, stacked: bool = False
) -> list[dict[str, Any]]:
    """The parameters as groups; with ``exclude``, those of one dimension (biases; two when
    ``stacked``) in a second group with ``weight_decay`` 0.0, as a run that excludes them from
    weight decay builds it."""
    if not exclude:
        return [{"params": list(params)}]
    vector = 2 if stacked else 1
    return [{"params": [p for p in params if p.dim() > vector]},
            {"params": [p for p in params if p.dim() <= vector], "weight_decay": 0.0}]


@_single_threaded
def batched_difference(
    plugin: OptimizerPlugin,
    configs: list[Mapping[str, Any]],
    steps: int = 20,
    *,
    exclude_biases_from_decay: bool = False,
    switch_eval: bool = False,
) -> float:
    """Compare the plugin's batched step with its unbatched optimizer on the small MLP.

    Each configuration (missing values at the space's defaults) is trained alone for ``steps``
    steps through ``plugin.create``; then all of them together, their parameters stacked along
    a leading dimension of size K (``torch.func.stack_module_state``'s layout) and stepped by
    ``plugin.build_batched`` with :func:`~tuner.training.batched.optimizers.stack_hyperparams`.
    Every run starts from the same initial weights and sees the same (full) batch. In the batched
    run each configuration's gradient comes from its own copy of the model at its slice: the check
    compares the optimizer steps, not a vectorised forward pass (which rounds differently).

    Args:
        plugin: a plugin with ``build_batched``.
        configs: K configurations that may share a batch
            (:func:`~tuner.training.batched.optimizers.batch_signature`).
        steps: optimizer steps.
        exclude_biases_from_decay: both runs put the biases in a parameter group with
            ``weight_decay`` 0.0.
        switch_eval: also compare after ``eval_mode`` (Schedule-Free's averaged weights) and
            again after ``train_mode``.

    Returns:
        The largest ``|a - b| / (|b| + 1e-3)`` over every element of every parameter of every
        configuration, ``a`` batched and ``b`` alone; at most ``r`` exactly when
        ``torch.allclose(a, b, rtol=r, atol=r * 1e-3)`` holds for all of them (at r = 1e-5:
        allclose's default atol, 1e-8). 0.0: bit-identical. ``inf`` or ``nan`` where one run
        diverged and the other did not.

    Raises:
        tuner.errors.TunerError: the plugin has no batched step, a configuration does not fit
            its space, or the configurations cannot share a batch.
    """
    import torch

    from tuner.errors import TunerError
    from tuner.training.batched.optimizers import BatchedError, stack_hyperparams

    if plugin.build_batched is None:
        raise TunerError(f"optimizer {plugin.name!r} has no batched step (build_batched)")
    if not configs:
        raise BatchedError("batched_difference needs at least one configuration")
    completed = [plugin.space.complete(config, owner=plugin.name) for config in configs]
    exclude = exclude_biases_from_decay

    alone: list[list[list[torch.Tensor]]] = []  # per configuration, per comparison point
    for config in completed:
        model, loss_fn = _small_problem()
        optimizer = plugin.build(_decay_groups(list(model.parameters()), exclude), config)
        for _ in range(steps):
            _step(plugin, optimizer, loss_fn)
        points = [[p.detach().clone() for p in model.parameters()]]
        if switch_eval:
            eval_mode(optimizer)
            points.append([p.detach().clone() for p in model.parameters()])
            train_mode(optimizer)
            points.append([p.detach().clone() for p in model.parameters()])
        alone.append(points)

    problems = [_small_problem() for _ in completed]
    copies = [list(model.parameters()) for model, _ in problems]
    stacked = [
        torch.stack([params[i].detach() for params in copies]).requires_grad_()
        for i in range(len(copies[0]))
    ]
    hp = stack_hyperparams(completed, device=stacked[0].device, dtype=torch.float64)
    batched = plugin.build_batched(_decay_groups(stacked, exclude, stacked=True), hp)
    for _ in range(steps):
        for k, (model, loss_fn) in enumerate(problems):
            with torch.no_grad():
                for param, whole in zip(copies[k], stacked, strict=True):
                    param.copy_(whole[k])
            model.zero_grad(set_to_none=True)
            loss_fn().backward()
        for i, whole in enumerate(stacked):
            whole.grad = torch.stack([params[i].grad for params in copies])
        batched.step()
    points = [[whole.detach().clone() for whole in stacked]]
    if switch_eval:
        eval_mode(batched)
        points.append([whole.detach().clone() for whole in stacked])
        train_mode(batched)
        points.append([whole.detach().clone() for whole in stacked])

    worst = 0.0
    for k, runs in enumerate(alone):
        for run, together in zip(runs, points, strict=True):
            for b, whole in zip(run, together, strict=True):
                a = whole[k]
                if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
                    return math.inf
                close = torch.isfinite(b)
                if not close.any():
                    continue
                difference = (a[close] - b[close]).abs() / (b[close].abs() + 1e-3)
                worst = max(worst, float(difference.max()))
    return worst
