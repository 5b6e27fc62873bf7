"""The contract of a batched optimizer step: K configurations of one optimizer, stepped at once.

Every model parameter is one leaf tensor of shape ``(K, *S)``: slice ``k`` is configuration
``k``'s copy of a parameter of shape ``S``. The training loop fills each tensor's ``.grad`` and
calls :meth:`BatchedOptimizer.step`, which updates each slice as the plugin's own (unbatched)
optimizer would update that configuration's parameter, with that configuration's
hyperparameters. A float hyperparameter arrives as a tensor of shape ``(K,)``; inside the step
it is viewed as ``(K, 1, ..., 1)`` so that it broadcasts along the leading dimension.

Which configurations can share a batch is decided by :func:`batch_signature`: the same active
hyperparameters, and equal values of every one that is not a float (``nesterov``, ``amsgrad``,
``decoupled_weight_decay``, Lookahead's integer ``k``), since those change the form of the
update, not its numbers. :func:`stack_hyperparams` turns K completed configurations with one
signature into the ``hp`` mapping a batched optimizer takes.

Numbers: scalar arithmetic that the unbatched optimizer does in Python (bias corrections, step
sizes, ``1 - lr * weight_decay``) is done here per configuration in float64 and rounded once, to
the parameters' compute type, where torch would convert the Python float, so each slice follows
its unbatched run to within rounding (checked by :func:`tuner.testing.batched_difference`).

torch is imported inside the functions: the driver can group configurations without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError

if TYPE_CHECKING:
    import torch

    from tuner.plugin.optimizer import OptimizerPlugin

__all__ = [
    "BatchedError",
    "BatchedOptimizer",
    "Factors",
    "batch_signature",
    "is_batched_float",
    "stack_hyperparams",
]


class BatchedError(TunerError, ValueError):
    """Configurations or parameters that cannot be stepped as one batch; one line says why."""


def is_batched_float(value: Any) -> bool:
    """Whether a completed hyperparameter value varies within a batch: a Python float.

    :meth:`tuner.plugin.space.SearchSpace.complete` returns every ``Float`` parameter as a float
    and every ``Int`` as an int; booleans and other categorical choices are equal within a batch.
    """
    return isinstance(value, float)


def batch_signature(plugin: OptimizerPlugin, hp: Mapping[str, Any]) -> tuple:
    """Configurations may share a batch only when their signatures are equal: the names of the
    active hyperparameters and the values of every non-float one (nesterov, amsgrad,
    decoupled_weight_decay, ints such as lookahead's k).

    Args:
        plugin: the optimizer plugin (its name is part of the signature).
        hp: one configuration, as ``plugin.space.complete()`` returns it.

    Returns:
        A hashable tuple: ``(plugin name, active names in space order, ((name, value), ...)
        for every value that is not a float)``.
    """
    order = {name: index for index, name in enumerate(plugin.space.names)}
    names = sorted(hp, key=lambda name: (order.get(name, len(order)), name))
    fixed = tuple((name, hp[name]) for name in names if not is_batched_float(hp[name]))
    return (plugin.name, tuple(names), fixed)


def stack_hyperparams(
    configs: list[Mapping[str, Any]], device: Any = None, dtype: Any = None
) -> dict[str, Any]:
    """K completed configurations with one signature -> the hp dict above.

    Args:
        configs: K configurations (``plugin.space.complete()`` of each), equal in their active
            names and in every value that is not a float.
        device: the parameters' device (default: the CPU).
        dtype: the dtype of the stacked floats: float64 (the default) keeps each value exactly
            as the unbatched optimizer receives it; the parameters' dtype is also accepted.

    Returns:
        ``{name: tensor of shape (K,)}`` for every float, ``{name: value}`` for the rest.

    Raises:
        BatchedError: no configurations, or two that may not share a batch (named).
    """
    import torch

    if not configs:
        raise BatchedError("no configurations to stack")
    first = configs[0]
    for index, config in enumerate(configs[1:], start=1):
        if set(config) != set(first):
            differ = sorted(set(config) ^ set(first))
            raise BatchedError(
                f"configuration {index} cannot share a batch with configuration 0: "
                f"parameter {differ[0]!r} is active in only one of them"
            )
        for name, value in config.items():
            if is_batched_float(value) != is_batched_float(first[name]) or (
                not is_batched_float(value) and value != first[name]
            ):
                raise BatchedError(
                    f"configuration {index} cannot share a batch with configuration 0: "
                    f"{name} is {value!r} there and {first[name]!r} in 0"
                )
    dtype = torch.float64 if dtype is None else dtype
    device = torch.device("cpu") if device is None else device
    return {
        name: torch.tensor([float(c[name]) for c in configs], dtype=dtype, device=device)
        if is_batched_float(value) else value
        for name, value in first.items()
    }


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The type torch computes a ``dtype`` tensor's elementwise ops in (its "opmath" type):
    float32 for float32 and the 16-bit floats, float64 for float64."""
    import torch

    return torch.float64 if dtype == torch.float64 else torch.float32


class Factors:
    """Per-configuration numbers of one step, each viewed to broadcast against a parameter.

    Holds float64 tensors of shape ``(K,)``; ``factors.at(name, param)`` returns one as
    ``(K, 1, ..., 1)`` in the parameter's compute type (:func:`compute_dtype`), converted once
    per step, dtype and rank.
    """

    def __init__(self, values: Mapping[str, torch.Tensor]) -> None:
        self.values = dict(values)
        self._cache: dict[tuple[str, Any, int], torch.Tensor] = {}

    def at(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """``values[name]`` shaped ``(K, 1, ..., 1)`` to broadcast against ``like``."""
        key = (name, like.dtype, like.dim())
        found = self._cache.get(key)
        if found is None:
            value = self.values[name].to(compute_dtype(like.dtype))
            found = self._cache[key] = value.view(-1, *([1] * (like.dim() - 1)))
        return found

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def rows(self, part: slice) -> Factors:
        """The same numbers for the configurations in ``part`` (a block of rows)."""
        return Factors({name: value[part] for name, value in self.values.items()})


CPU_BLOCK_ELEMENTS = 1 << 16
"""On CPU, a stacked parameter larger than this is stepped in blocks of whole configurations
(rows of the leading dimension) of about this many elements (256 KiB of float32 per tensor), so
that a block, its gradient and its state stay in cache through all the ops of a step instead of
streaming from memory once per op. Measured on a 64-128-10 MLP at K=64, 1 thread, a loaded
2-core machine (noisy): RMSprop's step 3.3 -> 1.6-2.8 ms, RAdam's 4.6-5.0 -> 2.0-3.9 ms, NAdam's
5.9-7.0 -> 2.8-4.6 ms; at K=16 (below one block per tensor for most) no change."""


def _rows_per_block(param: torch.Tensor) -> int:
    """Configurations per block for ``param`` (all of them off the CPU)."""
    size = param.shape[0]
    if param.device.type != "cpu" or size == 0:
        return size
    per_row = max(param.numel() // size, 1)
    return max(1, min(size, CPU_BLOCK_ELEMENTS // per_row))


def _state_rows(state: dict[str, Any], part: slice, size: int) -> dict[str, Any]:
    """``state`` with every tensor that runs along the leading dimension cut to ``part``."""
    import torch

    return {
        name: value[part]
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size
        else value
        for name, value in state.items()
    }


class BatchedOptimizer:
    """K configurations' optimizer state and step, along the leading dimension.

    Args:
        groups: torch-style parameter groups, ``[{"params": [stacked tensors]},
            {"params": [...], "weight_decay": 0.0}]``. Every tensor has shape ``(K, *S)``,
            with the same K and device. A group may override ``weight_decay`` only, and only
            with 0.0: its parameters are excluded from weight decay.
        hp: every float hyperparameter as a tensor of shape ``(K,)`` (float64 or the parameters'
            dtype, on their device); every other one (bool, categorical, int) a plain Python
            value, equal for all K. Only the active hyperparameters are present, as
            ``plugin.space.complete()`` returns them per configuration (see
            :func:`stack_hyperparams`).

    Attributes:
        lr_scale: shape ``(K,)`` float64, ones at first. The training loop writes the schedule's
            factor per configuration here (warm-up, cosine...) before each step; the effective
            learning rate of configuration ``k`` is ``hp["lr"][k] * lr_scale[k]``.
        size: K.
        state: per parameter tensor, a dict of its state tensors (each ``(K, *S)``) and its
            step count ``"step"`` (an int).

    A subclass implements :meth:`factors` (the step's per-configuration numbers, from the
    hyperparameters, the learning rate and the step count) and :meth:`update` (one parameter's
    step); the base class walks the groups, skips parameters without a gradient and counts
    steps per parameter, as ``torch.optim`` does. ``maximize`` is never set: every step
    descends.
    """

    def __init__(self, groups: list[dict], hp: Mapping[str, Any]) -> None:
        import torch

        self.param_groups: list[dict[str, Any]] = []
        for index, group in enumerate(groups):
            if not isinstance(group, Mapping) or "params" not in group:
                raise BatchedError(f"parameter group {index} is not a dict with 'params'")
            extra = sorted(set(group) - {"params", "weight_decay"})
            if extra:
                raise BatchedError(
                    f"parameter group {index}: only 'weight_decay' may be set per group, "
                    f"not {extra[0]!r}"
                )
            if "weight_decay" in group and group["weight_decay"] != 0.0:
                raise BatchedError(
                    f"parameter group {index}: weight_decay may only be overridden with 0.0, "
                    f"got {group['weight_decay']!r}"
                )
            params = group["params"]
            params = [params] if isinstance(params, torch.Tensor) else list(params)
            self.param_groups.append({"params": params, "decay": "weight_decay" not in group})
        tensors = [p for group in self.param_groups for p in group["params"]]
        if not tensors:
            raise BatchedError("a batched optimizer needs at least one parameter")
        if any(p.dim() == 0 for p in tensors):
            raise BatchedError("every stacked parameter needs a leading dimension of size K")
        size = tensors[0].shape[0]
        device = tensors[0].device
        for p in tensors:
            if p.shape[0] != size or p.device != device:
                raise BatchedError(
                    f"stacked parameters disagree: leading dimension {p.shape[0]} on "
                    f"{p.device} against {size} on {device}"
                )
        if len({id(p) for p in tensors}) != len(tensors):
            raise BatchedError("a parameter appears in more than one place in the groups")
        self.size: int = size
        self.device = device
        self.hp: dict[str, Any] = {}
        for name, value in hp.items():
            if isinstance(value, torch.Tensor):
                if tuple(value.shape) != (size,):
                    raise BatchedError(
                        f"hyperparameter {name!r} has shape {tuple(value.shape)}; "
                        f"a batch of {size} needs ({size},)"
                    )
                value = value.detach().to(device=device, dtype=torch.float64)
            self.hp[name] = value
        self.lr_scale: torch.Tensor = torch.ones(size, dtype=torch.float64, device=device)
        self.state: dict[torch.Tensor, dict[str, Any]] = {}
        self._rows = slice(None)

    # -- what a subclass provides -------------------------------------------------------------

    def factors(self, lr: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The step's per-configuration numbers, each a float64 tensor of shape ``(K,)``.

        Args:
            lr: the effective learning rates, ``hp["lr"] * lr_scale`` (float64, ``(K,)``).
            step: the parameter's step count, 1 on its first step.

        Returns:
            Named ``(K,)`` tensors that :meth:`update` reads through :class:`Factors`.
        """
        return {"lr": lr}

    def init_state(self, param: torch.Tensor, state: dict[str, Any]) -> None:
        """Create a parameter's state tensors on its first step (none by default).

        Args:
            param: the stacked parameter.
            state: its empty state dict, to fill.
        """

    def update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, Any],
        factors: Factors,
        decay: bool,
    ) -> None:
        """Update one stacked parameter in place (and its state).

        On CPU a large parameter comes in blocks of configurations: ``param``, ``grad``, the
        state tensors and the factors are then the block's rows (``(k1 - k0, *S)``), so an
        update must only assign into the state's tensors, never add entries (create them in
        :meth:`init_state`), and read any other ``(K,)`` vector through :meth:`rows_of`.

        Args:
            param: the stacked parameter ``(K, *S)``, or a block of its rows.
            grad: its gradient.
            state: its state dict (``state["step"]`` already counts this step).
            factors: this step's numbers from :meth:`factors`, viewed with ``factors.at``.
            decay: False for a parameter in a group excluded from weight decay.
        """
        raise NotImplementedError

    def rows_of(self, values: torch.Tensor) -> torch.Tensor:
        """The rows of a ``(K, ...)`` tensor that the current :meth:`update` call steps."""
        return values[self._rows]

    # -- the step ---------------------------------------------------------------------------

    def float_hp(self, name: str, default: float | None = None) -> torch.Tensor:
        """Hyperparameter ``name`` as a float64 ``(K,)`` tensor; ``default`` if it is absent."""
        import torch

        value = self.hp.get(name)
        if value is None:
            if default is None:
                raise BatchedError(f"{type(self).__name__} needs the hyperparameter {name!r}")
            value = default
        if isinstance(value, torch.Tensor):
            return value
        return torch.full((self.size,), float(value), dtype=torch.float64, device=self.device)

    def learning_rates(self) -> torch.Tensor:
        """The effective learning rates of this step: ``hp["lr"] * lr_scale``, float64."""
        import torch

        return self.float_hp("lr") * self.lr_scale.to(device=self.device, dtype=torch.float64)

    def step(self) -> None:
        """One step of every configuration, for every parameter with a gradient."""
        import torch

        with torch.no_grad():
            self.before_step()
            lr = self.learning_rates()
            by_count: dict[Any, Factors] = {}
            for group in self.param_groups:
                for param in group["params"]:
                    grad = param.grad
                    if grad is None:
                        continue
                    if grad.is_sparse:
                        raise BatchedError(
                            f"{type(self).__name__} does not support sparse gradients"
                        )
                    state = self.state.get(param)
                    if state is None:
                        state = self.state[param] = {"step": 0}
                        self.init_state(param, state)
                    state["step"] += 1
                    count = state["step"]
                    factors = by_count.get(count)
                    if factors is None:
                        factors = by_count[count] = Factors(self.factors(lr, count))
                    rows = _rows_per_block(param)
                    if rows >= self.size:
                        self.update(param, grad, state, factors, group["decay"])
                        continue
                    for start in range(0, self.size, rows):
                        part = self._rows = slice(start, start + rows)
                        key = (count, start, rows)
                        block = by_count.get(key)
                        if block is None:
                            block = by_count[key] = factors.rows(part)
                        self.update(param[part], grad[part], _state_rows(state, part, self.size),
                                    block, group["decay"])
                    self._rows = slice(None)
            self.after_step()

    def before_step(self) -> None:
        """Called at the start of each step, before any parameter moves (no-op by default)."""

    def after_step(self) -> None:
        """Called at the end of each step, after every parameter moved (no-op by default)."""

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None."""
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    def state_bytes(self) -> int:
        """Bytes of the state tensors for all K configurations together.

        Counts the tensors shaped like their parameter (moments, buffers): K times what
        :func:`tuner.plugin.optimizer.optimizer_state_bytes` counts for one unbatched optimizer,
        whose scalars (NAdam's momentum product, Tiger's centres) are ``(K,)`` vectors here and
        left out in the same way.
        """
        import torch

        return sum(
            value.numel() * value.element_size()
            for param, state in self.state.items()
            for value in state.values()
            if isinstance(value, torch.Tensor) and value.shape == param.shape
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.size}, hyperparameters={sorted(self.hp)})"
