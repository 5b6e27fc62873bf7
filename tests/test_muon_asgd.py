"""torch.optim's Muon and ASGD as plugins: the same numbers as torch.optim, Muon's split of the
parameters by role (each built-in task's hidden matrices, and refusal where there are none), and
ASGD evaluated at its average.

The references are built by hand from the torch.optim documentation, independently of the
plugin modules: Muon is ``torch.optim.Muon`` over the hidden matrices with
``adjust_lr_fn="match_rms_adamw"`` plus ``torch.optim.AdamW`` over the rest, each stepped on its
own; ASGD is ``torch.optim.ASGD``.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from test_torch_optimizers import _largest_difference, _problem, _run

from tuner import testing
from tuner.cli import cli
from tuner.plugin.optimizer import HIDDEN, OTHER, RoleError, eval_mode, split_by_role, train_mode
from tuner.plugin.registry import get_registry
from tuner.training import TrainOptionsError, train
from tuner.training.roles import hidden_matrix_problem, role_groups

MUON = "muon/match_rms_adamw"


def plugin(name: str):
    return get_registry().optimizer(name)


# -- Muon against torch.optim ---------------------------------------------------------------------

# Muon's keyword arguments and AdamW's at the plugin's defaults, and one non-default case per
# space parameter: (space values, changes to Muon's keywords, changes to AdamW's).
MUON_DEFAULTS = {"lr": 1e-3, "momentum": 0.95, "weight_decay": 0.1, "nesterov": True,
                 "ns_steps": 5, "adjust_lr_fn": "match_rms_adamw"}
ADAMW_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.0}
MUON_CASES = {
    "lr": ({"lr": 2e-2}, {"lr": 2e-2}, {}),
    "momentum": ({"momentum": 0.85}, {"momentum": 0.85}, {}),
    "weight_decay": ({"weight_decay": 0.0, "lr": 2e-2}, {"weight_decay": 0.0, "lr": 2e-2}, {}),
    "nesterov": ({"nesterov": False}, {"nesterov": False}, {}),
    "ns_steps": ({"ns_steps": 3}, {"ns_steps": 3}, {}),
    "adamw_lr": ({"adamw_lr": 1e-2}, {}, {"lr": 1e-2}),
    "adamw_beta1": ({"adamw_beta1": 0.7}, {}, {"betas": (0.7, 0.95)}),
    "adamw_beta2": ({"adamw_beta2": 0.999}, {}, {"betas": (0.9, 0.999)}),
    "adamw_weight_decay": ({"adamw_weight_decay": 0.2, "adamw_lr": 1e-2}, {},
                           {"weight_decay": 0.2, "lr": 1e-2}),
}


class _Both:
    """Two torch optimizers stepped one after the other, as the reference for Muon + AdamW."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad()

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()


def _muon_groups(model: torch.nn.Module) -> list[dict]:
    """The test MLP (5-12-2) split by role: its first weight is hidden, the head is not."""
    return split_by_role(list(model.parameters()), hidden=[model[0].weight])


def test_every_muon_hyperparameter_has_a_case():
    space = plugin("muon").space
    assert sorted(MUON_CASES) == sorted(space.names)
    for param, (values, _, _) in MUON_CASES.items():
        assert values[param] != space[param].default, param
        space.complete(values, owner="muon")


@pytest.mark.parametrize("param", sorted(MUON_CASES))
def test_muon_matches_torch_muon_and_adamw_step_by_step(param):
    values, muon_changes, adamw_changes = MUON_CASES[param]
    make_model, loss = _problem()
    ours_model = make_model()
    ours = plugin("muon").create(_muon_groups(ours_model), values)
    reference_model = make_model()
    hidden = [reference_model[0].weight]
    rest = [reference_model[0].bias, reference_model[2].weight, reference_model[2].bias]
    reference = _Both(
        torch.optim.Muon(hidden, **{**MUON_DEFAULTS, **muon_changes}),
        torch.optim.AdamW(rest, **{**ADAMW_DEFAULTS, **adamw_changes}),
    )
    ours_steps = _run(ours, ours_model, loss, 10, False)
    reference_steps = _run(reference, reference_model, loss, 10, False)

    baseline_model = make_model()  # the case must matter
    baseline = plugin("muon").create(_muon_groups(baseline_model),
                                     {k: v for k, v in values.items() if k != param})
    effect = _largest_difference(_run(baseline, baseline_model, loss, 10, False)[-1],
                                 ours_steps[-1])
    assert effect > 1e-5, f"{param} barely changes the run ({effect:.1e})"
    for step, (mine, theirs) in enumerate(zip(ours_steps, reference_steps, strict=True), start=1):
        for a, b in zip(mine, theirs, strict=True):
            # Muon's part is torch's own code on the same numbers; AdamW's may be the fused
            # kernel against torch's default loop: the same rule in float32 in another order,
            # ~20 roundings of 2**-24 a step over 10 steps (measured: at most 3e-8)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step}")


def test_muon_steps_the_hidden_matrices_by_orthogonalised_updates():
    """Independently of torch's code: one step from zero momentum, without Nesterov or decay,
    moves the hidden matrix by lr * 0.2 * sqrt(max(rows, cols)) * U V^T of its gradient (the
    Newton-Schulz iteration approximates U V^T in bfloat16: singular values within 0.6..1.3)."""
    make_model, loss = _problem()
    model = make_model()
    before = model[0].weight.detach().clone()
    optimizer = plugin("muon").create(_muon_groups(model), {
        "lr": 1e-2, "nesterov": False, "weight_decay": 0.0})
    optimizer.zero_grad()
    loss(model).backward()
    gradient = model[0].weight.grad.clone()
    optimizer.step()
    update = (before - model[0].weight.detach()) / (1e-2 * 0.2 * max(gradient.shape) ** 0.5)
    singular = torch.linalg.svdvals(update)
    assert singular.min() > 0.6 and singular.max() < 1.3
    u, _, vh = torch.linalg.svd(gradient, full_matrices=False)
    cosine = float((update * (u @ vh)).sum() / (update.norm() * (u @ vh).norm()))
    assert cosine > 0.95


def test_muon_is_one_optimizer_to_schedules_and_state_dicts():
    make_model, _ = _problem()
    optimizer = plugin("muon").create(_muon_groups(make_model()), {"lr": 2e-2, "adamw_lr": 1e-3})
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-2, 1e-3]  # Muon's first
    assert optimizer.muon.param_groups[0] is optimizer.param_groups[0]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 5e-4]
    assert optimizer.adamw.param_groups[0]["lr"] == 5e-4  # the inner optimizer sees it
    del schedule
    assert all("role" not in group for group in optimizer.param_groups)  # torch's keys only


def test_muon_state_is_one_buffer_per_hidden_element_and_two_per_other():
    muon = plugin("muon")
    # the kit's MLP (8-16-1): 128 hidden elements, 33 others
    assert testing.declared_state_multiple(muon) == pytest.approx((128 + 2 * 33) / 161)
    assert testing.measured_state_multiple(muon) == pytest.approx((128 + 2 * 33) / 161)
    assert muon.state_text == "1n hidden + 2n other"


def test_muon_without_roles_or_without_a_hidden_matrix_is_refused():
    weight = torch.nn.Parameter(torch.zeros(3, 3))
    with pytest.raises(RoleError, match="split by role"):
        plugin("muon").create([weight])
    with pytest.raises(RoleError, match="no hidden weight matrix"):
        plugin("muon").create(split_by_role([weight], hidden=[]))


def test_the_lr_meanings_are_declared():
    meanings = {name: plugin(name).lr_meaning for name in ("muon", "asgd", "adafactor", "rprop",
                                                          "adamw")}
    assert meanings == {"muon": MUON, "asgd": "step size", "adafactor": "relative step size",
                        "rprop": "initial step size", "adamw": "step size"}
    assert plugin("muon").splits_by_role and not plugin("adamw").splits_by_role
    assert plugin("rprop").full_batch_only


# -- the split by role, per built-in task ---------------------------------------------------------

# Written by hand from each task's model: the hidden weight matrices by parameter name.
HIDDEN_MATRICES = {
    "charlm": {f"blocks.{i}.{part}.weight" for i in (0, 1)
               for part in ("qkv", "out", "mlp.0", "mlp.2")},
    "digits-mlp": {"1.weight"},  # Flatten, Linear(64, width), ReLU, Linear(width, 10): the head
    "digits-cnn": set(),  # two convolution kernels and the head
    "logreg": set(),  # the model is its head
    "sparse": set(),  # an embedding bag and a bias
    "quadratic": set(),
    "rosenbrock": set(),
}


def test_every_built_in_task_is_covered():
    built_in = {name for name, task in get_registry().tasks.items() if task.plugin == "tasks"}
    assert built_in == set(HIDDEN_MATRICES)


def _model(task):
    torch.manual_seed(0)
    return task.build(0, torch.device("cpu")).model


@pytest.mark.parametrize("name", sorted(n for n, hidden in HIDDEN_MATRICES.items() if hidden))
def test_muon_gets_each_tasks_hidden_matrices_and_only_them(name):
    task = get_registry().task(name)
    model = _model(task)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = role_groups(task, plugin("muon"), model, [{"params": list(model.parameters())}])
    by_role = {role: {names[id(p)] for g in groups if g["role"] == role for p in g["params"]}
               for role in (HIDDEN, OTHER)}
    assert by_role[HIDDEN] == HIDDEN_MATRICES[name]
    assert by_role[OTHER] == set(names.values()) - HIDDEN_MATRICES[name]
    # 2-D parameters that are not hidden stay with AdamW: embeddings, the position table, the head
    flat_or_outer = {n for n, p in model.named_parameters() if p.dim() == 2} - by_role[HIDDEN]
    if name == "charlm":
        assert flat_or_outer == {"embed.weight", "position", "head.weight"}
    # the optimizer trains every parameter exactly once
    built = plugin("muon").create(groups)
    assert sum(len(g["params"]) for g in built.param_groups) == len(names)


@pytest.mark.parametrize("name", sorted(n for n, hidden in HIDDEN_MATRICES.items() if not hidden))
def test_a_task_without_hidden_matrices_refuses_muon_in_one_line(name):
    task = get_registry().task(name)
    problem = hidden_matrix_problem(task, plugin("muon"))
    assert problem == (f"task {name!r} has no hidden weight matrices, and optimizer 'muon' "
                       "trains those apart: choose another optimizer (or declare them: "
                       "Task.hidden_matrices)")
    assert hidden_matrix_problem(task, plugin("adamw")) is None


def test_the_decay_exclusion_group_is_split_by_role_too():
    task = get_registry().task("digits-mlp")
    model = _model(task)
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    excluded = [p for p in model.parameters() if p.dim() < 2]
    groups = role_groups(task, plugin("muon"), model,
                         [{"params": decayed}, {"params": excluded, "weight_decay": 0.0}])
    assert [(g["role"], len(g["params"]), g.get("weight_decay")) for g in groups] == [
        (HIDDEN, 1, None), (OTHER, 1, None), (OTHER, 2, 0.0)]


def test_training_refuses_muon_on_the_quadratic_and_trains_it_on_charlm():
    with pytest.raises(TrainOptionsError, match="no hidden weight matrices"):
        train("quadratic", "muon")
    result = train("charlm", "muon", budget=10, eval_every=10)
    assert result.status == "complete", result.error
    assert result.lr_meaning == MUON
    assert result.curve[-1].lr == pytest.approx(1e-3)  # the recorded lr is Muon's


def test_cli_refuses_muon_on_the_quadratic_in_one_line_and_leaves_the_store_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade", "--db", url]).exit_code == 0
    result = runner.invoke(cli, ["study", "create", "bowl", "--task", "quadratic",
                                 "--optimizers", "adamw,muon", "--trials", "2", "--seeds", "1",
                                 "--db", url])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: task 'quadratic' has no hidden weight matrices, and optimizer 'muon' trains "
        "those apart: choose another optimizer (or declare them: Task.hidden_matrices)"]
    listed = runner.invoke(cli, ["study", "list", "--json", "--db", url],
                           catch_exceptions=False)
    assert json.loads(listed.output) == []
    shown = runner.invoke(cli, ["optimizers", "show", "muon"], catch_exceptions=False)
    assert f"lr: {MUON}" in shown.output
    assert "hidden weight matrices apart from the rest" in shown.output


# -- ASGD -----------------------------------------------------------------------------------------

ASGD_DEFAULTS = {"lr": 1e-2, "t0": 100.0, "lambd": 1e-4, "alpha": 0.75, "weight_decay": 0.0}
ASGD_CASES = {  # t0 3: the average starts within the 10 steps
    "lr": ({"lr": 0.1, "t0": 3}, {"lr": 0.1, "t0": 3.0}),
    "t0": ({"t0": 3}, {"t0": 3.0}),
    "lambd": ({"lambd": 1e-2, "lr": 0.5}, {"lambd": 1e-2, "lr": 0.5}),
    "alpha": ({"alpha": 0.5, "lambd": 1e-2, "lr": 0.5},
              {"alpha": 0.5, "lambd": 1e-2, "lr": 0.5}),
    "weight_decay": ({"weight_decay": 1e-3, "lr": 0.5}, {"weight_decay": 1e-3, "lr": 0.5}),
}


def _with_average(optimizer, model, loss, steps: int) -> list[list[torch.Tensor]]:
    """Per step: the parameters, then the averaged weights (ASGD's ``ax``)."""
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss(model).backward()
        optimizer.step()
        params = list(model.parameters())
        history.append([p.detach().clone() for p in params]
                       + [optimizer.state[p]["ax"].clone() for p in params])
    return history


def test_every_asgd_hyperparameter_has_a_case():
    space = plugin("asgd").space
    assert sorted(ASGD_CASES) == sorted(space.names)
    for param, (values, _) in ASGD_CASES.items():
        assert values[param] != space[param].default, param
        space.complete(values, owner="asgd")


@pytest.mark.parametrize("param", sorted(ASGD_CASES))
def test_asgd_matches_torch_asgd_step_by_step_with_its_average(param):
    values, torch_changes = ASGD_CASES[param]
    make_model, loss = _problem()
    ours_model = make_model()
    ours = plugin("asgd").create(ours_model.parameters(), values)
    reference_model = make_model()
    reference = torch.optim.ASGD(reference_model.parameters(),
                                 **{**ASGD_DEFAULTS, **torch_changes})
    ours_steps = _with_average(ours, ours_model, loss, 10)
    reference_steps = _with_average(reference, reference_model, loss, 10)

    baseline_model = make_model()
    baseline = plugin("asgd").create(baseline_model.parameters(),
                                     {k: v for k, v in values.items() if k != param})
    effect = _largest_difference(_with_average(baseline, baseline_model, loss, 10)[-1],
                                 ours_steps[-1])
    assert effect > 1e-5, f"{param} barely changes the run or its average ({effect:.1e})"
    for step, (mine, theirs) in enumerate(zip(ours_steps, reference_steps, strict=True), start=1):
        for a, b in zip(mine, theirs, strict=True):
            # the same single-tensor code; within float32 rounding all the same
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step}")


def test_asgd_evaluates_at_its_average_and_switches_back_exactly():
    make_model, loss = _problem()
    model = make_model()
    optimizer = plugin("asgd").create(model.parameters(), {"t0": 2, "lr": 0.1})
    for _ in range(6):
        optimizer.zero_grad()
        loss(model).backward()
        optimizer.step()
    weights = [p.detach().clone() for p in model.parameters()]
    averages = [optimizer.state[p]["ax"].clone() for p in model.parameters()]
    assert _largest_difference(weights, averages) > 1e-3
    eval_mode(optimizer)
    assert _largest_difference([p.detach() for p in model.parameters()], averages) == 0.0
    with pytest.raises(RuntimeError, match="evaluation mode"):
        optimizer.step()
    eval_mode(optimizer)  # twice: still the average
    train_mode(optimizer)
    assert _largest_difference([p.detach() for p in model.parameters()], weights) == 0.0
    assert _largest_difference([optimizer.state[p]["ax"] for p in model.parameters()],
                               averages) == 0.0


def test_a_training_run_reports_the_metric_at_the_average():
    """ASGD on the quadratic: the run's final metric is f at torch's average of the iterates,
    not at the last iterate (and the evaluations in between leave the training path alone)."""
    params = {"lr": 0.02, "t0": 10}
    result = train("quadratic", "asgd", params)
    x = torch.nn.Parameter(torch.tensor([4.0, 3.0]))
    reference = torch.optim.ASGD([x], **{**ASGD_DEFAULTS, "lr": 0.02, "t0": 10.0})
    for _ in range(100):
        reference.zero_grad()
        (x[0] ** 2 + 10 * x[1] ** 2).backward()
        reference.step()
    average = reference.state[x]["ax"]
    at_average = float(average[0] ** 2 + 10 * average[1] ** 2)
    at_last = float(x[0] ** 2 + 10 * x[1] ** 2)
    assert at_average > 10 * at_last  # the average lags behind: the two are far apart
    # float32 on both sides, the same operations: within 1e-5 relative
    assert result.final_metric == pytest.approx(at_average, rel=1e-5)
    assert result.trajectory[-1] == pytest.approx((float(x[0]), float(x[1])), rel=1e-5)
