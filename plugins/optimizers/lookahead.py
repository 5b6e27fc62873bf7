"""Lookahead, a wrapper over any optimizer (``lookahead-adamw``), and Ranger (Lookahead + RAdam).

Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back",
arXiv:1907.08610) keeps a copy of the weights, the slow weights. The inner optimizer moves the
model's weights (the fast weights) for ``k`` steps; then::

    slow <- slow + alpha * (fast - slow)
    fast <- slow

The slow weights start at the initial weights. The paper uses ``k = 5`` or ``10`` and
``alpha = 0.5`` or ``0.8``. Ranger (Wright 2019) is Lookahead (``k = 6``, ``alpha = 0.5``) over
RAdam (Liu et al. 2020, arXiv:1908.03265) with ``betas = (0.95, 0.999)`` and decoupled weight
decay; here it is torch's own ``RAdam``.

The :class:`Lookahead` object shares ``param_groups`` with the inner optimizer (so learning-rate
schedulers drive the inner one), exposes the inner state plus the slow weights in ``state``
(so :func:`tuner.plugin.optimizer.optimizer_state_bytes` counts both), saves and restores inner
state, slow weights and step counter, forwards ``eval()``/``train()`` to an inner optimizer that
has them (Schedule-Free), and passes closures through (L-BFGS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import torch

from tuner import hookimpl
from tuner.plugin.optimizer import OptimizerPlugin, OptimizerWrapper
from tuner.plugin.space import Float, Int, SpaceError
from tuner.plugin.wrapping import WrappingOptimizer
from tuner.training.batched.adaptive import BatchedRAdam
from tuner.training.batched.lookahead import BatchedLookahead, inner_hyperparams

LOOKAHEAD_REFERENCE = (
    "Zhang et al. 2019, Lookahead Optimizer: k steps forward, 1 step back, arXiv:1907.08610"
)
RANGER_REFERENCE = (
    "Wright 2019, Ranger (github.com/lessw2020/Ranger-Deep-Learning-Optimizer): Lookahead "
    "(arXiv:1907.08610) over RAdam (Liu et al. 2020, arXiv:1908.03265)"
)
SLOW_KEY = "lookahead_slow"
"""Key of the slow weights in each parameter's entry of ``state`` and of the state dict."""


class _CombinedState(Mapping):
    """A live, read-only view: each parameter's inner state plus its slow weights."""

    def __init__(self, inner_state: Mapping, slow: dict[torch.Tensor, torch.Tensor]) -> None:
        self._inner_state = inner_state
        self._slow = slow

    def _keys(self) -> list[Any]:
        keys = list(self._inner_state)
        seen = {id(key) for key in keys}
        return keys + [key for key in self._slow if id(key) not in seen]

    def __getitem__(self, param: Any) -> dict[str, Any]:
        entry = dict(self._inner_state.get(param, {}))
        if param in self._slow:
            entry[SLOW_KEY] = self._slow[param]
        if not entry and param not in self._inner_state:
            raise KeyError(param)
        return entry

    def __iter__(self) -> Iterator[Any]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


class Lookahead(WrappingOptimizer):
    """Lookahead around ``inner``: every ``k`` steps, pull the slow weights towards the fast.

    Args:
        inner: the optimizer that moves the fast weights (already built on the parameters).
        k: inner steps between synchronisations.
        alpha: how far the slow weights move towards the fast ones at a synchronisation.
    """

    def __init__(self, inner: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        super().__init__(inner, {"lookahead_k": k, "lookahead_alpha": alpha})
        self._slow: dict[torch.Tensor, torch.Tensor] = {}
        self.lookahead_steps = 0
        for group in self.param_groups:
            self._adopt(group)
        self.state = _CombinedState(inner.state, self._slow)  # type: ignore[assignment]

    def _adopt(self, group: dict[str, Any]) -> None:
        """Give a group Lookahead's settings and its parameters slow weights (their values now)."""
        group.setdefault("lookahead_k", self.defaults["lookahead_k"])
        group.setdefault("lookahead_alpha", self.defaults["lookahead_alpha"])
        with torch.no_grad():
            for param in group["params"]:
                if param not in self._slow:
                    self._slow[param] = param.detach().clone(memory_format=torch.preserve_format)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the inner optimizer (and so to this one) with fresh slow weights."""
        if "inner" not in self.__dict__:  # from Optimizer.__init__, before groups are shared
            super().add_param_group(param_group)
            return
        self.inner.add_param_group(param_group)
        self._adopt(self.param_groups[-1])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step; every ``k``-th step also synchronises slow and fast weights."""
        loss = self.inner.step(closure) if closure is not None else self.inner.step()
        self.lookahead_steps += 1
        with torch.no_grad():
            for group in self.param_groups:
                if self.lookahead_steps % group["lookahead_k"] != 0:
                    continue
                fast = list(group["params"])
                slow = [self._slow[param] for param in fast]
                torch._foreach_lerp_(slow, fast, group["lookahead_alpha"])
                torch._foreach_copy_(fast, slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The inner state dict, with each parameter's slow weights and the step counter."""
        inner = self.inner.state_dict()
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        state = {key: dict(value) for key, value in inner["state"].items()}
        for param, slow in self._slow.items():
            state.setdefault(index[id(param)], {})[SLOW_KEY] = slow
        return {**inner, "state": state, "lookahead_steps": self.lookahead_steps}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (inner state, slow weights, counter)."""
        params = [p for g in self.param_groups for p in g["params"]]
        inner_state: dict[Any, dict[str, Any]] = {}
        slow: dict[int, torch.Tensor] = {}
        for key, value in state_dict["state"].items():
            value = dict(value)
            if SLOW_KEY in value:
                slow[int(key)] = value.pop(SLOW_KEY)
            if value:
                inner_state[key] = value
        inner = {k: v for k, v in state_dict.items() if k not in ("state", "lookahead_steps")}
        self.inner.load_state_dict({**inner, "state": inner_state})
        with torch.no_grad():
            for position, tensor in slow.items():
                param = params[position]
                self._slow[param] = tensor.detach().to(
                    device=param.device, dtype=param.dtype, copy=True
                )
        self.lookahead_steps = int(state_dict.get("lookahead_steps", 0))

    def __repr__(self) -> str:
        group = self.param_groups[0] if self.param_groups else {}
        return (f"Lookahead(k={group.get('lookahead_k')}, alpha={group.get('lookahead_alpha')}, "
                f"inner={self.inner!r})")


def lookahead_space() -> list[Float]:
    """Lookahead's own parameters, added to the inner optimizer's space."""
    return [
        Int("k", 1, 20, default=5, recommended=5, help="inner steps per synchronisation"),
        Float("alpha", 0.1, 1.0, default=0.5, recommended=0.5, help="slow-weight step size"),
    ]


def wrap_in_lookahead(inner: OptimizerPlugin) -> OptimizerPlugin:
    """The plugin ``lookahead-<inner>``: inner space + (k, alpha), inner state + 1n."""
    own = lookahead_space()
    clash = [param.name for param in own if param.name in inner.space]
    if clash:
        raise SpaceError(
            f"lookahead cannot wrap {inner.name!r}: it already has a parameter {clash[0]!r}"
        )
    own_names = {param.name for param in own}

    def build(params: list[torch.Tensor], hp: Mapping[str, Any]) -> Lookahead:
        inner_hp = {name: value for name, value in hp.items() if name not in own_names}
        return Lookahead(inner.build(params, inner_hp), k=hp["k"], alpha=hp["alpha"])

    build_batched = None
    if inner.build_batched is not None:  # batched exactly when the inner optimizer is
        inner_batched = inner.build_batched

        def build_batched(groups: list[dict], hp: Mapping[str, Any]) -> BatchedLookahead:
            return BatchedLookahead(inner_batched(groups, inner_hyperparams(hp)), hp)

    return replace(
        inner,
        name=f"lookahead-{inner.name}",
        summary=f"Lookahead (k steps forward, 1 back) over {inner.name}.",
        space=inner.space + own,
        build=build,
        build_batched=build_batched,
        state_multiple=inner.state_multiple + 1,
        reference=LOOKAHEAD_REFERENCE + (f"; inner: {inner.reference}" if inner.reference else ""),
    )


def build_ranger(params: list[torch.Tensor], hp: Mapping[str, Any]) -> Lookahead:
    """Ranger: Lookahead over torch's RAdam with decoupled weight decay."""
    radam = torch.optim.RAdam(
        params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp.get("eps", 1e-8),
        weight_decay=hp["weight_decay"], decoupled_weight_decay=True, foreach=True,
    )
    return Lookahead(radam, k=hp["k"], alpha=hp["alpha"])


def build_ranger_batched(groups: list[dict], hp: Mapping[str, Any]) -> BatchedLookahead:
    """Ranger's batched step: batched Lookahead over batched RAdam with decoupled decay."""
    radam = BatchedRAdam(groups, inner_hyperparams(hp), decoupled=True)
    return BatchedLookahead(radam, hp)


RANGER = OptimizerPlugin(
    name="ranger",
    summary="Ranger: Lookahead (k=6, alpha=0.5) over RAdam with betas (0.95, 0.999).",
    space=[
        Float("lr", 1e-5, 1e-1, default=1e-3, log=True, recommended=1e-3),
        Float("beta1", 0.5, 0.99, default=0.95, recommended=0.95),
        Float("beta2", 0.9, 0.9999, default=0.999, recommended=0.999),
        Float("weight_decay", 0.0, 0.5, default=0.0, recommended=0.0, help="decoupled"),
        Int("k", 1, 20, default=6, recommended=6, help="inner steps per synchronisation"),
        Float("alpha", 0.1, 1.0, default=0.5, recommended=0.5, help="slow-weight step size"),
    ],
    build=build_ranger,
    build_batched=build_ranger_batched,
    state_multiple=3,
    reference=RANGER_REFERENCE,
)

LOOKAHEAD = OptimizerWrapper(
    name="lookahead",
    summary="Lookahead over any optimizer: lookahead-<name> (k steps forward, 1 step back).",
    wrap=wrap_in_lookahead,
)


@hookimpl
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register Ranger."""
    register(RANGER)


@hookimpl
def register_optimizer_wrappers(register: Callable[[OptimizerWrapper], None]) -> None:
    """Register the Lookahead wrapper."""
    register(LOOKAHEAD)
