"""tuner's reference tasks, registered through the ``tuner`` entry-point group like any plugin.

Each task lives in its own module; data files ship under ``data/`` (sources and licences in
``data/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable

import tuner
from tuner.task.contract import Task


@tuner.hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register the reference tasks: two 2-D test functions, then the learning problems."""
    from tuner_plugins.tasks.charlm import CharLM
    from tuner_plugins.tasks.digits_cnn import DigitsCNN
    from tuner_plugins.tasks.digits_mlp import DigitsMLP
    from tuner_plugins.tasks.logreg import LogReg
    from tuner_plugins.tasks.quadratic import Quadratic
    from tuner_plugins.tasks.rosenbrock import Rosenbrock
    from tuner_plugins.tasks.sparse import Sparse

    for task in (Quadratic(), Rosenbrock(), LogReg(), Sparse(), DigitsMLP(), DigitsCNN(),
                 CharLM()):
        register(task)
