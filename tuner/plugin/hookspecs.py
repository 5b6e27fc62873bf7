"""The hook specifications: what a tuner plugin can provide. Each docstring is the manual.

A plugin is a module with functions decorated by ``@tuner.hookimpl`` whose names match the hooks
below, and one entry-point line in its package's ``pyproject.toml``::

    [project.entry-points.tuner]
    my_optimizers = "my_package.tuner_plugin"

tuner's own optimizers and tasks are registered through exactly this path.

Every hook takes a ``register`` callback: call it once per thing you provide. An implementation
may accept fewer arguments than the spec lists, so new arguments can be added without breaking
existing plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from tuner.plugin.optimizer import OptimizerPlugin, OptimizerWrapper
    from tuner.task.contract import Task

hookspec = pluggy.HookspecMarker("tuner")


@hookspec
def register_optimizers(register: Callable[[OptimizerPlugin], None]) -> None:
    """Register optimizers.

    Called once, the first time tuner needs the list of optimizers (``tuner optimizers list``,
    a study, a training run). Call ``register`` with one
    :class:`tuner.plugin.optimizer.OptimizerPlugin` per optimizer::

        from tuner import hookimpl
        from tuner.plugin.optimizer import OptimizerPlugin
        from tuner.plugin.space import Float

        @hookimpl
        def register_optimizers(register):
            register(OptimizerPlugin(
                name="my-sgd",
                summary="Plain SGD, my way.",
                space=[Float("lr", 1e-4, 1.0, default=1e-2, log=True)],
                build=lambda params, hp: torch.optim.SGD(params, lr=hp["lr"]),
                state_multiple=0,
            ))

    A method that works on the loss itself (Newton, BFGS, conjugate gradient) sets
    ``wants_flat_loss=True``: its ``step`` then receives a
    :class:`tuner.plugin.objective.FlatObjective` in place of the closure, the loss as a function
    of the flat parameter vector, with ``value(x)``, ``value_and_grad(x)`` and ``hessian(x)``; the
    training loop counts every call of them (``RunResult.function_evals``, ``gradient_evals``,
    ``hessian_evals``). Its state may grow with the parameter count:
    ``state_multiple=MatrixState(1, 2)`` declares a dense n x n matrix plus two vectors, and
    ``max_params=2000`` makes training refuse larger models. ``lr_meaning="multiplier"`` says
    that the space's ``lr`` is no step size (a learning-rate-free method's factor; or a named
    convention such as ``"muon/match_rms_adamw"``): runs record it, and the advice compares lrs
    only like with like. ``splits_by_role=True`` hands ``build`` the groups split into the
    task's hidden weight matrices and the rest (Muon). ``presets={"sequence": {"beta":
    0.965}}`` gives recommended values per task kind, which a study's recommended trial on a task
    of that kind uses. An optimizer built on a package tuner does not depend on declares it,
    ``requires=Requirement("pytorch_optimizer", 'pip install "tuner[more-optimizers]"')``, and
    imports it inside ``build`` only: where the package is missing, your module still loads,
    the optimizer is listed as not installed with that line, and naming it says what to
    install. A state that grows with each tensor's shape (a preconditioner per side of a
    matrix, as SOAP's and Shampoo's) is declared as ``state_multiple=TensorState(elements,
    "2n + 2 d^2 per matrix side")``, ``elements(shape, role)`` counting the state's elements
    for one parameter.

    Args:
        register: takes an ``OptimizerPlugin``. Its search space is validated on the spot; an
            invalid one (low > high, a default outside its range, a log range that is not
            positive), a preset for an unknown task kind or outside the space, or a name
            already taken stops tuner with one line naming your plugin.

    Returns:
        Nothing; the return value is ignored.
    """


@hookspec
def register_optimizer_wrappers(register: Callable[[OptimizerWrapper], None]) -> None:
    """Register optimizer wrappers: optimizers built around any other registered optimizer.

    A wrapper named ``lookahead`` makes ``lookahead-adamw``, ``lookahead-sgd``, ... selectable by
    name: tuner splits the name at the first ``-`` that follows a wrapper's name and hands the
    inner :class:`~tuner.plugin.optimizer.OptimizerPlugin` to the wrapper's ``wrap`` function,
    which returns the combined plugin (its own search space merged with the inner one).

    Args:
        register: takes a :class:`tuner.plugin.optimizer.OptimizerWrapper`.

    Returns:
        Nothing; the return value is ignored.
    """


@hookspec
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register reference tasks: the models and data that optimizers are measured on.

    Called once, the first time tuner needs the list of tasks. Call ``register`` with one
    :class:`tuner.task.Task` instance per task. A task must run offline: its data is generated
    or shipped inside your package, never downloaded when it runs.

    Args:
        register: takes a ``Task``. A name already taken stops tuner with one line naming your
            plugin.

    Returns:
        Nothing; the return value is ignored.
    """
