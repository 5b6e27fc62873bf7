"""Parameter groups by role, for an optimizer that trains hidden weight matrices apart (Muon).

The task says which of its model's parameters are hidden matrices
(:meth:`tuner.task.contract.Task.hidden_matrices`); an optimizer that ``splits_by_role``
receives its groups split by it (:func:`tuner.plugin.optimizer.split_by_role`). A task without
any refuses such an optimizer in one line: before the first step of a run
(:func:`role_groups`), and when a study is created (:func:`hidden_matrix_problem` builds the
model once on the CPU to ask).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.plugin.optimizer import split_by_role
from tuner.training.options import TrainOptionsError

if TYPE_CHECKING:
    import torch

    from tuner.plugin.optimizer import OptimizerPlugin
    from tuner.task.contract import Task


def role_groups(
    task: Task, plugin: OptimizerPlugin, model: torch.nn.Module, groups: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``groups`` as ``plugin`` takes them: split by role when it ``splits_by_role`` (raising
    :class:`TrainOptionsError` when the task has no hidden matrix), else as they are."""
    if not plugin.splits_by_role:
        return groups
    hidden = task.hidden_matrices(model)
    problem = _problem(task, plugin, hidden)
    if problem:
        raise TrainOptionsError(problem)
    return split_by_role(groups, hidden)


def hidden_matrix_problem(task: Task, plugin: OptimizerPlugin) -> str | None:
    """Why ``plugin`` cannot train ``task`` (no hidden matrices, or one that is not 2-D), in
    one line; None when it can or does not split by role. Builds the task's model on the CPU
    for seed 0, leaving torch's global generator as it was."""
    import torch

    if not plugin.splits_by_role:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = task.build(0, torch.device("cpu")).model
        except Exception:  # a task that builds only elsewhere: its runs will say it
            return None
        return _problem(task, plugin, task.hidden_matrices(model))


def _problem(task: Task, plugin: OptimizerPlugin, hidden: list[Any]) -> str | None:
    if not hidden:
        return (f"task {task.name!r} has no hidden weight matrices, and optimizer "
                f"{plugin.name!r} trains those apart: choose another optimizer (or declare them: "
                "Task.hidden_matrices)")
    flat = next((p for p in hidden if p.dim() != 2), None)
    if flat is not None:
        return (f"task {task.name!r} declares a hidden matrix of shape {tuple(flat.shape)}: "
                "hidden matrices are 2-D")
    return None
