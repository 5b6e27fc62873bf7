"""How a run's ``precision`` option is applied to its model, data and loss.

``float64`` puts the model and every floating tensor of the problem in double precision
(:func:`in_double`, and :func:`to_double` for the batches a Dataset yields); ``bf16`` and
``fp16`` run the forward pass and the loss under autocast (:func:`autocast`). Which precisions
a run may use is checked before training (:class:`tuner.training.settings.RunSettings`). Both
loops apply them through these functions, so a run alone and a run in a batch compute in the
same dtypes. torch is imported inside the functions: importing this module is free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.task.contract import Problem

__all__ = ["autocast", "in_double", "to_double"]


def autocast(loss_of: Callable[[Any], Any], device_type: str, precision: str) -> Callable:
    """``loss_of`` with its forward pass and loss under autocast (``bf16`` or ``fp16``); the
    backward pass runs outside, as torch recommends."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def loss(batch: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            value = loss_of(batch)
        return value.float()

    return loss


def to_double(data: Any) -> Any:
    """``data`` with every floating tensor in it (tuples, lists, dicts) in float64."""
    import torch

    if isinstance(data, torch.Tensor):
        return data.double() if data.is_floating_point() else data
    if isinstance(data, (tuple, list)):
        return type(data)(to_double(item) for item in data)
    if isinstance(data, dict):
        return {key: to_double(value) for key, value in data.items()}
    return data


def in_double(problem: Problem) -> Problem:
    """The problem in float64: the model, the training tensors and the validation data."""
    problem.model.double()
    return replace(problem, train=to_double(problem.train), val=to_double(problem.val))
