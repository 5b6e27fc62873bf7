"""Newton, BFGS, DFP and conjugate gradient, checked against SciPy and a NumPy reference.

Every run goes through tuner's own training loop (``tuner.training.train``) on float64 copies of
the tasks (``tests/float64_tasks.py``), whose evaluations record every iterate. References:

- the exact minimum (Newton: one step on the quadratic; SciPy's ``trust-exact`` on logreg);
- ``scipy.optimize.minimize`` BFGS and CG (Polak-Ribière+) on Rosenbrock and a small logistic
  regression: the same minimum, and evaluation counts within a factor of 2;
- a float64 NumPy transcription of each textbook update (BFGS, DFP, Fletcher-Reeves,
  Polak-Ribière+), searching with tuner's own line search: the first 5 iterates to 1e-8.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from float64_tasks import (
    SmallLogReg,
    float64,
    logreg_hessian,
    logreg_loss_and_grad,
    small_logreg_data,
)
from scipy.optimize import minimize, rosen, rosen_der

from tuner import testing
from tuner.cli import cli
from tuner.plugin.registry import get_registry
from tuner.task.contract import Problem, Task
from tuner.training.loop import train
from tuner.training.options import TrainOptionsError
from tuner_plugins.optimizers._flat_optimizer import TOLERANCE_GRAD
from tuner_plugins.optimizers._line_search import strong_wolfe

SECOND_ORDER = ("newton", "bfgs", "dfp", "cg")
ROSENBROCK_START = np.array([-1.5, 2.0])


def _task(name: str) -> Task:
    return float64(get_registry().task(name))


def _iterates(task: Task) -> np.ndarray:
    return np.array(task.iterates)


# -- Newton ---------------------------------------------------------------------------------------


def test_newton_lands_on_the_minimum_of_the_quadratic_in_one_step():
    result = train(_task("quadratic"), "newton", budget=1, eval_every=1)
    assert result.status == "complete"
    assert np.abs(result.trajectory[-1]).max() <= 1e-12
    assert result.final_metric <= 1e-24
    assert (result.hessian_evals, result.gradient_evals) == (1, 1)


def test_newton_reaches_the_minimum_of_logreg_within_ten_steps():
    task = _task("logreg")
    result = train(task, "newton", budget=10, eval_every=1)
    assert result.status == "complete"
    iterates = _iterates(task)[1:]
    torch.manual_seed(0)
    features, labels = (t.numpy() for t in task.build(0, torch.device("cpu")).train)
    exact = minimize(
        lambda x: logreg_loss_and_grad(x, features, labels), np.zeros(features.shape[1] + 1),
        jac=True, hess=lambda x: logreg_hessian(x, features), method="trust-exact",
        options={"gtol": 1e-12},
    )
    assert exact.success
    assert len(iterates) == 10
    errors = np.abs(iterates - exact.x).max(axis=1)
    assert errors.min() <= 1e-8
    assert errors[0] > 1.0  # the minimum is far from the start: the steps did the work


# -- BFGS and CG against SciPy --------------------------------------------------------------------


def _small_logreg_problem():
    features, labels = small_logreg_data()
    return (lambda x: logreg_loss_and_grad(x, features, labels)), np.zeros(features.shape[1] + 1)


def _rosenbrock_problem():
    return (lambda x: (rosen(x), rosen_der(x))), ROSENBROCK_START


PROBLEMS = {
    "rosenbrock": (lambda: _task("rosenbrock"), _rosenbrock_problem),
    "small-logreg": (SmallLogReg, _small_logreg_problem),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(("optimizer", "method"), [("bfgs", "BFGS"), ("cg", "CG")])
def test_bfgs_and_cg_match_scipy(problem, optimizer, method):
    make_task, make_reference = PROBLEMS[problem]
    task = make_task()
    result = train(task, optimizer, {}, budget=400, eval_every=400)
    assert result.status == "complete"
    function, start = make_reference()
    scipy_result = minimize(function, start, jac=True, method=method,
                            options={"gtol": TOLERANCE_GRAD, "maxiter": 10_000})
    assert np.abs(task.iterates[-1] - scipy_result.x).max() <= 1e-6
    # SciPy evaluates value and gradient together; so does the strong-Wolfe search
    assert result.function_evals == result.gradient_evals
    assert 0.5 <= result.function_evals / scipy_result.nfev <= 2.0
    assert 0.5 <= result.gradient_evals / scipy_result.njev <= 2.0


# -- the textbook updates in NumPy, searching with tuner's line search ----------------------------


def reference_quasi_newton(function, x, update, steps, lr=1.0, c1=1e-4, c2=0.9):
    """BFGS (N&W 6.17) or DFP (6.15) with H0 = I, rescaled before the first update (6.20)."""
    value, grad = function(x)
    inverse = np.eye(len(x))
    iterates = []
    for iteration in range(steps):
        direction = -inverse @ grad
        first = lr * min(1.0, 1.0 / np.linalg.norm(grad)) if iteration == 0 else lr
        found = strong_wolfe(_phi(function, x, direction), value, grad @ direction, first, c1, c2)
        x_new, value, grad_new = found.extra
        s, y = x_new - x, grad_new - grad
        if iteration == 0:
            inverse = (y @ s) / (y @ y) * np.eye(len(x))
        if update == "bfgs":
            rho = 1.0 / (y @ s)
            left = np.eye(len(x)) - rho * np.outer(s, y)
            inverse = left @ inverse @ left.T + rho * np.outer(s, s)
        else:
            hy = inverse @ y
            inverse = inverse - np.outer(hy, hy) / (y @ hy) + np.outer(s, s) / (y @ s)
        x, grad = x_new, grad_new
        iterates.append(x)
    return np.array(iterates)


def reference_conjugate_gradient(function, x, beta_rule, steps, lr=1.0, c1=1e-4, c2=0.1):
    """Nonlinear CG (N&W 5.41a, 5.45) with restarts every n iterations; first trial steps by
    N&W 3.60."""
    value, grad = function(x)
    direction = -grad
    previous_value = None
    iterates = []
    for iteration in range(steps):
        slope = grad @ direction
        if previous_value is None:
            first = lr * min(1.0, 1.0 / np.linalg.norm(grad))
        else:
            first = min(lr, 1.01 * 2.0 * (value - previous_value) / slope)
        found = strong_wolfe(_phi(function, x, direction), value, slope, first, c1, c2)
        x_new, value_new, grad_new = found.extra
        if beta_rule == "fletcher-reeves":
            beta = (grad_new @ grad_new) / (grad @ grad)
        else:
            beta = max(0.0, grad_new @ (grad_new - grad) / (grad @ grad))
        restart = (iteration + 1) % len(x) == 0
        direction = -grad_new if restart else -grad_new + beta * direction
        previous_value, value, x, grad = value, value_new, x_new, grad_new
        iterates.append(x)
    return np.array(iterates)


def _phi(function, x, direction):
    def phi(step):
        point = x + step * direction
        value, grad = function(point)
        return value, grad @ direction, (point, value, grad)

    return phi


REFERENCES = {
    "bfgs": ("bfgs", {}, lambda f, x, n: reference_quasi_newton(f, x, "bfgs", n)),
    "dfp": ("dfp", {}, lambda f, x, n: reference_quasi_newton(f, x, "dfp", n)),
    "polak-ribiere-plus": (
        "cg", {"beta": "polak-ribiere-plus"},
        lambda f, x, n: reference_conjugate_gradient(f, x, "polak-ribiere-plus", n),
    ),
    "fletcher-reeves": (
        "cg", {"beta": "fletcher-reeves"},
        lambda f, x, n: reference_conjugate_gradient(f, x, "fletcher-reeves", n),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_first_five_iterates_match_the_textbook_update(problem, method):
    optimizer, params, reference = REFERENCES[method]
    make_task, make_reference = PROBLEMS[problem]
    task = make_task()
    result = train(task, optimizer, params, budget=5, eval_every=1)
    assert result.status == "complete"
    function, start = make_reference()
    expected = reference(function, start, 5)
    got = _iterates(task)
    np.testing.assert_allclose(got[0], start, rtol=0, atol=0)  # the same numbers, as given
    # float64 both (2**-53 per rounding); each iterate is a few hundred roundings from the
    # textbook's, amplified by the Hessian's condition (Rosenbrock's about 2500 at its start):
    # near 1e-11; 1e-8, relative and near zero, leaves three orders of magnitude
    np.testing.assert_allclose(got[1:], expected, rtol=1e-8, atol=1e-8)
    assert np.abs(got[5] - got[0]).max() > 1e-2  # the steps moved


# -- the conformance kit --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_each_second_order_plugin_passes_the_conformance_kit(name):
    plugin = get_registry().optimizer(name)
    assert plugin.wants_flat_loss and plugin.full_batch_only
    assert testing.lowers_quadratic(plugin) < 1e-6
    declared = testing.declared_state_multiple(plugin)
    assert testing.measured_state_multiple(plugin) == pytest.approx(declared)
    assert testing.state_dict_roundtrip(plugin) == 0.0
    assert testing.eval_train_switch(plugin) == 0.0


def test_the_dense_methods_declare_a_state_that_grows_with_the_parameter_count():
    registry = get_registry()
    for name in ("bfgs", "dfp"):
        plugin = registry.optimizer(name)
        assert plugin.state_multiple_at(10) == 12 and plugin.state_multiple_at(100) == 102
        assert plugin.state_text == "n^2 + 2n"
    assert registry.optimizer("cg").state_multiple_at(1000) == 3
    listed = CliRunner().invoke(cli, ["optimizers", "list", "--json"], catch_exceptions=False)
    rows = {row["name"]: row for row in json.loads(listed.output)["optimizers"]}
    assert rows["bfgs"]["state"] == "n^2 + 2n" and rows["bfgs"]["state_multiple"] is None
    assert rows["newton"]["max_params"] == 2000


# -- refusals -------------------------------------------------------------------------------------


class WideRegression(Task):
    """A full-batch linear regression with 3,001 parameters: above Newton's limit."""

    name = "wide-regression"
    summary = "linear regression, 3,000 inputs"
    kind = "convex"
    metric = "loss"
    direction = "minimize"
    target = 0.0
    budget = 3
    eval_every = 1

    def build(self, seed, device):
        inputs = torch.randn(8, 3000)
        return Problem(torch.nn.Linear(3000, 1), (inputs, inputs.sum(1, keepdim=True)))

    def loss(self, model, batch):
        inputs, targets = batch
        return torch.nn.functional.mse_loss(model(inputs), targets)

    def evaluate(self, model, problem):
        return float(self.loss(model, problem.train))


def test_newton_refuses_a_model_above_its_parameter_limit_in_one_line():
    with pytest.raises(TrainOptionsError) as refused:
        train(WideRegression(), "newton")
    message = str(refused.value)
    assert message == (
        "optimizer 'newton' handles at most 2,000 parameters, and task 'wide-regression' "
        "has 3,001"
    )
    assert train(WideRegression(), "cg").status == "complete"  # CG has no such limit


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_a_second_order_optimizer_refuses_a_mini_batch_task_in_one_line(name, sqlite_url):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--task", "digits-mlp", "--optimizer", name])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: optimizer {name!r} only works on full batches, and task 'digits-mlp' trains "
        "on mini-batches of 64"
    ]
    study = runner.invoke(cli, ["study", "create", "s", "--task", "digits-mlp", "--optimizers",
                                name, "--trials", "1", "--seeds", "1", "--db", sqlite_url])
    assert study.exit_code == 1
    assert study.output.strip().splitlines() == [
        f"Error: optimizer {name!r} is full-batch only; task 'digits-mlp' trains on "
        "mini-batches of 64"
    ]
    listed = runner.invoke(cli, ["study", "list", "--db", sqlite_url, "--json"])
    assert listed.exit_code != 0 or json.loads(listed.output) == []  # nothing was written


def test_gradient_clipping_is_refused_for_a_flat_loss_optimizer():
    with pytest.raises(TrainOptionsError, match="clipping"):
        train("quadratic", "bfgs", clip_norm=1.0)
